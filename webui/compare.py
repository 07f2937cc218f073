"""Two runs side by side: the comparison page and its API.

Every answer is about the probe images both runs hold (the intersection of their probe ids; the count is in
each answer) and names the two steps it used. ``runs=a,b[,c...]`` lists the runs: the first two are compared,
all of them are offered as A and B and drawn in the curves.

- ``GET /compare?runs=a,b``: the page (its state is in the URL).
- ``GET /api/compare?runs=&match=``: both runs, the shared probe count, the matched steps with the agreement
  and both accuracies at each.
- ``GET /api/compare/step?runs=&step_a=&step_b=``: at one pair of steps: the agreement, the images right in one
  run and wrong in the other, each image's first stably correct step in both, both confusion matrices, their
  difference and the confusion pairs that differ most.
- ``GET /api/compare/embedding?runs=&step_a=&step_b=&layer_a=&layer_b=``: both PCA layouts of the shared images
  in one frame (B aligned to A by orthogonal Procrustes), as binary arrays.
- ``GET /api/compare/cka?runs=&step_a=&step_b=``: CKA of every layer of A against every layer of B.
- ``GET /api/compare/cka_timeline?runs=&match=&layer_a=&layer_b=``: CKA of one pair of layers at every matched step.
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify, render_template

from deepviz import analysis as A
from deepviz.analysis import compare as C
from deepviz.errors import ConfigurationError, NotFoundError

from .errors import ApiError
from .params import STEP_ERRORS, binary, db, get_choice, get_str, layer_of, run_id, step_param
from .runs import run_entry
from .state import state

bp = Blueprint("compare", __name__)

#: Runs one comparison link may name (A, B and the others drawn in the curves).
MAX_RUNS = 8
#: Confusion pairs listed, and images per gallery.
TOP_PAIRS = 10
GALLERY_MAX = 60


def _runs() -> list[str]:
    """The ``runs`` parameter: 2 to MAX_RUNS run ids or names, comma-separated, each resolved (404 when unknown)."""
    raw = get_str("runs", max_len=MAX_RUNS * 200)
    names = [r for r in (raw or "").split(",") if r]
    if not 2 <= len(names) <= MAX_RUNS:
        raise ApiError(f"Parameter 'runs' must name 2 to {MAX_RUNS} runs, comma-separated (run A first); got "
                       f"{len(names)}: {(raw or '')[:80]!r}. Pick them on the runs page.", 400)
    return [run_id(r) for r in names]


def _pair():
    """(run A, run B, shared probe ids, their rows in A, their rows in B); a 400 when nothing is shared."""
    ra, rb = _runs()[:2]
    pa, pb = db().probes(ra), db().probes(rb)
    try:
        shared, rows_a, rows_b = C.shared_probes(pa["probe_id"].to_numpy(), pb["probe_id"].to_numpy(),
                                                 pa["label"].to_numpy(), pb["label"].to_numpy())
    except ConfigurationError as exc:
        raise ApiError(str(exc), 400) from None
    return ra, rb, shared, rows_a, rows_b


def _timeline(rid: str) -> tuple[list[int], list[int]]:
    table = db().step_table(rid)
    if table.empty:
        raise NotFoundError(f"Run {rid!r} has no committed step yet; compare it once a first snapshot is written.")
    return table["step"].astype(int).tolist(), table["epoch"].astype(int).tolist()


def _matched(ra: str, rb: str):
    match = get_choice("match", C.MATCHES, "auto")
    try:
        return C.match_steps(*_timeline(ra), *_timeline(rb), by=match)
    except ConfigurationError as exc:
        raise ApiError(str(exc), 400) from None


@bp.get("/compare")
def compare_page():
    return render_template("compare.html")


@bp.get("/api/compare")
def summary():
    ra, rb, shared, rows_a, rows_b = _pair()
    mode, pairs = _matched(ra, rb)
    rows = []
    for r in pairs.itertuples():
        row = {k: (float(v) if k.startswith("fraction") else int(v)) for k, v in r._asdict().items() if k != "Index"}
        try:
            pa, pb = db().predictions(r.step_a, ra), db().predictions(r.step_b, rb)
        except STEP_ERRORS as exc:
            rows.append(row | {"error": str(exc)})
            continue
        row.update(agreement=C.agreement(pa["pred"][rows_a], pb["pred"][rows_b]),
                   acc_a=float(pa["correct"][rows_a].mean()), acc_b=float(pb["correct"][rows_b].mean()))
        rows.append(row)
    info = db().run_info(ra)
    return jsonify({
        "runs": [run_entry(r) for r in _runs()],
        "run_a": ra, "run_b": rb, "n_a": int(len(db().probes(ra))), "n_b": int(len(db().probes(rb))),
        "n_shared": int(shared.size), "match": mode, "matched": rows,
        "layers_a": db().layers(None, ra), "layers_b": db().layers(None, rb), "class_names": info["class_names"],
    })


def _history(rid: str, upto: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correct (S, N), steps (S,)) of a run's readable steps up to ``upto``, for the given probe rows."""
    steps, correct = [], []
    for s in db().steps(rid):
        if s > upto:
            break
        try:
            correct.append(db().predictions(s, rid)["correct"][rows])
        except STEP_ERRORS:
            continue
        steps.append(s)
    return np.vstack(correct), np.asarray(steps)


def _gallery(ids: np.ndarray, labels, pred_a, pred_b, names) -> dict:
    items = [{"probe_id": int(i), "label": names[int(y)], "pred_a": names[int(a)], "pred_b": names[int(b)]}
             for i, y, a, b in zip(ids[:GALLERY_MAX], labels, pred_a, pred_b)]
    return {"count": int(ids.size), "items": items}


@bp.get("/api/compare/step")
def at_step():
    ra, rb, shared, rows_a, rows_b = _pair()
    sa, sb = step_param(ra, "step_a"), step_param(rb, "step_b")
    pa, pb = db().predictions(sa, ra), db().predictions(sb, rb)
    names = db().run_info(ra)["class_names"]
    labels, pred_a, pred_b = pa["label"][rows_a], pa["pred"][rows_a], pb["pred"][rows_b]
    ok_a, ok_b = pa["correct"][rows_a], pb["correct"][rows_b]
    conf_a, conf_b = (A.confusion(labels, p, len(names)) for p in (pred_a, pred_b))
    pairs = C.confusion_pairs(conf_a, conf_b, names, TOP_PAIRS)
    learned = [C.first_stable_steps(*_history(rid, s, rows)) for rid, s, rows in ((ra, sa, rows_a), (rb, sb, rows_b))]
    only = {}
    for key, mask in (("right_a_wrong_b", ok_a & ~ok_b), ("wrong_a_right_b", ~ok_a & ok_b)):
        only[key] = _gallery(shared[mask], labels[mask], pred_a[mask], pred_b[mask], names)
    return jsonify({
        "run_a": ra, "run_b": rb, "step_a": sa, "step_b": sb, "n_shared": int(shared.size),
        "agreement": C.agreement(pred_a, pred_b), "acc_a": float(ok_a.mean()), "acc_b": float(ok_b.mean()),
        **only,
        "learned": {"probe_id": shared.tolist(), "label": labels.tolist(),
                    "a": [None if np.isnan(v) else int(v) for v in learned[0]],
                    "b": [None if np.isnan(v) else int(v) for v in learned[1]]},
        "confusion": {"class_names": names, "a": conf_a.tolist(), "b": conf_b.tolist(), "diff": (conf_b - conf_a).tolist()},
        "pairs": pairs.to_dict("records"),
    })


def _layout(pair: tuple[str, str], rid: str, step: int, layer: str, rows: np.ndarray) -> np.ndarray:
    """PCA of the shared images (``rows`` of run ``rid``, which the pair decides), on the bounded runner, cached."""
    store = db()
    return state().computed(("compare-pca", pair, rid, step, layer),
                            lambda: A.project(store.activations(step, layer, rid)[rows], "pca", random_state=0))


@bp.get("/api/compare/embedding")
def embedding():
    ra, rb, shared, rows_a, rows_b = _pair()
    sa, sb = step_param(ra, "step_a"), step_param(rb, "step_b")
    la, lb = layer_of(ra, sa, "layer_a"), layer_of(rb, sb, "layer_b")
    try:
        xy_a, xy_b, disparity = C.align_layouts(_layout((ra, rb), ra, sa, la, rows_a), _layout((ra, rb), rb, sb, lb, rows_b))
    except ConfigurationError as exc:
        raise ApiError(f"No layout to align at steps {sa} and {sb}: {exc}", 400) from None
    labels = db().predictions(sa, ra)["label"][rows_a]
    meta = {"run_a": ra, "run_b": rb, "step_a": sa, "step_b": sb, "layer_a": la, "layer_b": lb,
            "n_shared": int(shared.size), "disparity": disparity}
    return binary({"probe_id": shared.astype(np.int32), "label": labels.astype(np.int32),
                   "xy_a": xy_a.ravel(), "xy_b": xy_b.ravel()}, meta)


def _acts(store, rid: str, step: int, rows: np.ndarray) -> dict[str, np.ndarray]:
    return {layer: store.activations(step, layer, rid)[rows] for layer in store.layers(step, rid)}


def _cka(ra, rb, sa, sb, rows_a, rows_b, layers=None) -> np.ndarray:
    """Cross-run CKA at one pair of steps, computed on the bounded runner (outside the request) and cached."""
    store = db()

    def build():
        acts_a, acts_b = _acts(store, ra, sa, rows_a), _acts(store, rb, sb, rows_b)
        if layers:
            acts_a, acts_b = {layers[0]: acts_a[layers[0]]}, {layers[1]: acts_b[layers[1]]}
        return C.cross_cka(acts_a, acts_b)

    return state().computed(("compare-cka", ra, rb, sa, sb, layers), build)


def _finite(matrix: np.ndarray) -> list:
    return [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in matrix]


@bp.get("/api/compare/cka")
def cka():
    ra, rb, shared, rows_a, rows_b = _pair()
    sa, sb = step_param(ra, "step_a"), step_param(rb, "step_b")
    return jsonify({"run_a": ra, "run_b": rb, "step_a": sa, "step_b": sb, "n_shared": int(shared.size),
                    "layers_a": db().layers(sa, ra), "layers_b": db().layers(sb, rb),
                    "cka": _finite(_cka(ra, rb, sa, sb, rows_a, rows_b))})


@bp.get("/api/compare/cka_timeline")
def cka_timeline():
    ra, rb, shared, rows_a, rows_b = _pair()
    la, lb = layer_of(ra, None, "layer_a"), layer_of(rb, None, "layer_b")
    mode, pairs = _matched(ra, rb)
    points = []
    for r in pairs.itertuples():
        try:
            value = _cka(ra, rb, int(r.step_a), int(r.step_b), rows_a, rows_b, (la, lb))[0, 0]
        except STEP_ERRORS as exc:
            points.append({"step_a": int(r.step_a), "step_b": int(r.step_b), "cka": None, "error": str(exc)})
            continue
        points.append({"step_a": int(r.step_a), "step_b": int(r.step_b), "cka": None if not np.isfinite(value) else float(value)})
    return jsonify({"run_a": ra, "run_b": rb, "layer_a": la, "layer_b": lb, "match": mode,
                    "n_shared": int(shared.size), "points": points})
