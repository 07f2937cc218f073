"""Per-step data of a run: probes, thumbnails, predictions, and the panels built on them.

Confusion matrix (and its change from the previous step), the images of a
cell, flows between two steps, one image's trajectory over all steps, its
nearest neighbours, metric series, and the conv filters as a PNG grid. The
numbers come from ``deepviz.analysis``; this module only reads through the
store, checks parameters and shapes the answers.

A step whose snapshot file is corrupt or missing answers with an error for
that step only; the routes that span all steps (trajectory, metrics) skip it
and list it under ``errors``, so the rest of the timeline keeps working.
"""

from __future__ import annotations

import io
import math

import numpy as np
from flask import Blueprint, Response, jsonify, request

from deepviz import analysis as A
from deepviz.errors import CorruptDataError, NotFoundError

from .errors import ApiError
from .params import binary, db, get_choice, get_float, get_int, layer_of, run_id, step_of

bp = Blueprint("snapshots", __name__, url_prefix="/api/runs/<run>")

#: Errors of one step's files that must not take the other steps down.
STEP_ERRORS = (CorruptDataError, NotFoundError)


@bp.get("/probes")
def probes(run: str):
    rid = run_id(run)
    frame = db().probes(rid)
    return jsonify({"probe_id": frame["probe_id"].tolist(), "label": frame["label"].tolist()})


@bp.get("/probes/<int:probe_id>/thumbnail.png")
def thumbnail(run: str, probe_id: int):
    png = db().thumbnail(probe_id, run_id(run))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "public, max-age=86400, immutable"})


@bp.get("/steps/<step>/predictions")
def predictions(run: str, step: str):
    rid = run_id(run)
    s = step_of(rid, step)
    p = db().predictions(s, rid)
    return binary(
        {"pred": p["pred"], "probs": p["probs"], "loss": p["loss"], "correct": p["correct"], "confidence": p["confidence"]},
        {"step": s, "n": int(len(p["pred"]))},
    )


# --------------------------------------------------------------------------- helpers


def _n_classes(rid: str) -> int:
    return len(db().run_info(rid)["class_names"])


def _previous_step(rid: str, step: int) -> int | None:
    steps = db().steps(rid)
    i = steps.index(step)
    return steps[i - 1] if i > 0 else None


def _step_param(rid: str, name: str, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ApiError(f"Missing parameter '{name}': give a step of the run.", 400)
        return default
    try:
        int(raw)
    except ValueError:
        raise ApiError(f"Parameter '{name}' must be a step (an integer), got {raw[:50]!r}.", 400) from None
    return step_of(rid, raw)


def _probe_row(rid: str, probe) -> tuple[int, int]:
    """(probe id, row in probe order) of a probe id given in a URL."""
    try:
        pid = int(probe)
    except (TypeError, ValueError):
        raise ApiError(f"Parameter 'probe' must be a probe image id (an integer), got {str(probe)[:50]!r}.", 400) from None
    ids = db().probes(rid)["probe_id"].to_numpy()
    row = int(np.searchsorted(ids, pid))
    if row >= len(ids) or ids[row] != pid:
        raise NotFoundError(f"Unknown probe image {pid} in run {rid!r}; it has {len(ids)} probe images (ids {ids[0]}..{ids[-1]}).")
    return pid, row


def _finite(values) -> list:
    """Floats as JSON numbers, NaN/Inf as null."""
    return [None if v is None or not math.isfinite(float(v)) else float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


# --------------------------------------------------------------------------- confusion


@bp.get("/steps/<step>/confusion")
def confusion(run: str, step: str):
    """The confusion matrix at a step (rows = true class) and its change from ``prev``."""
    rid = run_id(run)
    s = step_of(rid, step)
    prev = _step_param(rid, "prev", default=-1)
    prev = _previous_step(rid, s) if prev == -1 else prev
    n_classes = _n_classes(rid)
    p = db().predictions(s, rid)
    matrix = A.confusion(p["label"], p["pred"], n_classes)
    out = {
        "step": s,
        "prev_step": prev,
        "n": int(matrix.sum()),
        "correct": int(np.trace(matrix)),
        "matrix": matrix.tolist(),
        "prev": None,
        "delta": None,
        "prev_error": None,
    }
    if prev is not None:
        try:
            q = db().predictions(prev, rid)
        except STEP_ERRORS as exc:
            out["prev_error"] = str(exc)
        else:
            before = A.confusion(q["label"], q["pred"], n_classes)
            out["prev"] = before.tolist()
            out["delta"] = A.confusion_delta(before, matrix).tolist()
    return jsonify(out)


SORTS = ("confidence", "loss", "probe_id")


@bp.get("/steps/<step>/images")
def images(run: str, step: str):
    """The probe images at a step, filtered by true class, predicted class and correctness.

    ``sort`` (confidence | loss | probe_id) and ``order`` (desc | asc) order
    them; ``limit`` caps the list (``total`` says how many matched).
    """
    rid = run_id(run)
    s = step_of(rid, step)
    n_classes = _n_classes(rid)
    true = get_int("true", lo=0, hi=n_classes - 1)
    pred = get_int("pred", lo=0, hi=n_classes - 1)
    correct = get_choice("correct", ("0", "1", "any"), "any")
    sort = get_choice("sort", SORTS, "confidence")
    order = get_choice("order", ("desc", "asc"), "desc")
    limit = get_int("limit", 500, lo=1, hi=10_000)
    p = db().predictions(s, rid)
    keep = np.ones(len(p["pred"]), dtype=bool)
    if true is not None:
        keep &= p["label"] == true
    if pred is not None:
        keep &= p["pred"] == pred
    if correct != "any":
        keep &= p["correct"] == (correct == "1")
    rows = np.flatnonzero(keep)
    key = p[sort][rows] if sort != "probe_id" else p["probe_id"][rows]
    rows = rows[np.argsort(-key if order == "desc" else key, kind="stable")][:limit]
    return jsonify(
        {
            "step": s,
            "total": int(keep.sum()),
            "probe_id": p["probe_id"][rows].tolist(),
            "label": p["label"][rows].tolist(),
            "pred": p["pred"][rows].tolist(),
            "confidence": _finite(p["confidence"][rows]),
            "loss": _finite(p["loss"][rows]),
        }
    )


@bp.get("/flows")
def flows(run: str):
    """Which images changed predicted class between steps ``a`` and ``b`` (default: the last two)."""
    rid = run_id(run)
    steps = db().steps(rid)
    if not steps:
        raise NotFoundError(f"Run {rid!r} has no steps yet.")
    b = _step_param(rid, "b", default=steps[-1])
    before_b = _previous_step(rid, b)
    a = _step_param(rid, "a", default=b if before_b is None else before_b)
    pa, pb = db().predictions(a, rid), db().predictions(b, rid)
    if not np.array_equal(pa["probe_id"], pb["probe_id"]):
        raise CorruptDataError(f"Steps {a} and {b} of run {rid!r} hold different probe images; their predictions cannot be compared.")
    table = A.flows(pa["pred"], pb["pred"], pa["label"], pa["probe_id"])
    counts = {(int(r.from_pred), int(r.to_pred)): int(r.count) for r in table.itertuples()}
    rows = [
        {
            "from_pred": int(r.from_pred),
            "to_pred": int(r.to_pred),
            "count": int(r.count),
            "fixed": int(r.fixed),
            "broken": int(r.broken),
            "back": counts.get((int(r.to_pred), int(r.from_pred)), 0),
            "probe_ids": [int(i) for i in r.probe_ids],
        }
        for r in table.itertuples()
    ]
    return jsonify(
        {
            "a": a,
            "b": b,
            "n": int(len(pa["pred"])),
            "changed": int(sum(r["count"] for r in rows)),
            "fixed": int(sum(r["fixed"] for r in rows)),
            "broken": int(sum(r["broken"] for r in rows)),
            "rows": rows,
        }
    )


# --------------------------------------------------------------------------- one image


@bp.get("/probes/<probe>/trajectory")
def trajectory(run: str, probe: str):
    """One image's class probabilities at every step, its flips and when it became right for good."""
    rid = run_id(run)
    pid, row = _probe_row(rid, probe)
    label = int(db().probes(rid)["label"].iloc[row])
    steps, probs, errors = [], [], []
    for s in db().steps(rid):
        try:
            p = db().predictions(s, rid)
        except STEP_ERRORS as exc:
            errors.append({"step": s, "error": str(exc)})
            continue
        steps.append(s)
        probs.append(p["probs"][row])
    out = {"probe_id": pid, "label": label, "steps": steps, "probs": [], "pred": [], "correct": [], "flips": [], "first_stable_correct": None, "errors": errors}
    if steps:
        probs = np.vstack(probs)
        table = A.trajectory(probs, label, np.asarray(steps))
        first = A.first_stable_correct(probs, label)
        out.update(
            probs=np.round(probs.astype(np.float64), 6).tolist(),
            pred=table["pred"].astype(int).tolist(),
            correct=table["correct"].astype(bool).tolist(),
            flips=[steps[i] for i in A.flip_steps(probs)],
            first_stable_correct=None if first is None else steps[first],
        )
    return jsonify(out)


@bp.get("/steps/<step>/neighbours")
def neighbours(run: str, step: str):
    """Nearest neighbours of one image in a layer, among its predicted class, its true class and the
    other classes, and in pixel space, for contrast. The image itself is never its own neighbour."""
    rid = run_id(run)
    s = step_of(rid, step)
    if request.args.get("probe") in (None, ""):
        raise ApiError("Missing parameter 'probe': give the id of the selected probe image.", 400)
    pid, row = _probe_row(rid, request.args["probe"])
    layer = layer_of(rid, s)
    metric = get_choice("metric", A.METRICS, "cosine")
    p_norm = get_float("p", 3.0, lo=1.0, hi=100.0)
    k = get_int("k", 8, lo=1, hi=100)
    preds = db().predictions(s, rid)
    labels, pred = preds["label"], preds["pred"]

    def search(X: np.ndarray, candidates: np.ndarray) -> list[dict]:
        idx, dist = A.nearest(X[row], X, k=k, metric=metric, p=p_norm, candidates=candidates, exclude=[row])
        # Percentages relative to the median distance to all other images, so
        # they compare across the groups (cosine has its own absolute scale).
        pool = np.delete(A.distances(X[row], X, metric, p_norm)[0], row)
        scale = float(np.median(pool)) if pool.size and np.median(pool) > 0 else None
        sim = A.similarity_percent(dist, metric, scale)
        return [
            {"probe_id": int(preds["probe_id"][i]), "label": int(labels[i]), "pred": int(pred[i]), "distance": float(d), "similarity": float(v)}
            for i, d, v in zip(idx, dist, sim)
        ]

    X = db().activations(s, layer, rid)
    pixels = db().probe_inputs(rid).reshape(len(labels), -1)
    everyone = np.arange(len(labels))
    return jsonify(
        {
            "probe_id": pid,
            "step": s,
            "layer": layer,
            "metric": metric,
            "p": p_norm,
            "k": k,
            "label": int(labels[row]),
            "pred": int(pred[row]),
            "confidence": float(preds["confidence"][row]),
            "among_pred": search(X, np.flatnonzero(labels == pred[row])),
            "among_true": search(X, np.flatnonzero(labels == labels[row])),
            "among_other": search(X, np.flatnonzero(labels != labels[row])),
            "pixel": search(pixels, everyone),
        }
    )


# --------------------------------------------------------------------------- metrics


_NOT_SERIES = {"run_id", "step", "epoch", "wall_time", "trigger", "n_probe", "layers", "nonfinite_layers", "has_state", "checkpoint", "error"}


@bp.get("/metrics")
def metrics(run: str):
    """Every logged metric per step, and per-class accuracy on the probe set (classes x steps)."""
    rid = run_id(run)
    table = db().step_table(rid)
    steps = [int(s) for s in table["step"]] if len(table) else []
    series = {}
    for name in table.columns if len(table) else []:
        if name in _NOT_SERIES:
            continue
        values = np.asarray(table[name].to_numpy(dtype=np.float64, na_value=np.nan))
        series[name] = _finite(values)
    n_classes = _n_classes(rid)
    per_class, errors = [], []
    for s in steps:
        try:
            p = db().predictions(s, rid)
        except STEP_ERRORS as exc:
            errors.append({"step": s, "error": str(exc)})
            per_class.append([None] * n_classes)
            continue
        per_class.append(_finite(A.per_class_accuracy(p["label"], p["pred"], n_classes)))
    return jsonify(
        {
            "steps": steps,
            "epochs": [int(e) for e in table["epoch"]] if len(table) else [],
            "series": series,
            # classes x steps, like the heatmap draws it
            "per_class_acc": [list(col) for col in zip(*per_class)] if per_class else [[] for _ in range(n_classes)],
            "errors": errors,
        }
    )


# --------------------------------------------------------------------------- filters

CELL_PX = 30  # a filter is drawn about this many pixels wide, whatever its kernel size
GAP_PX = 2


def _conv_param(rid: str) -> str:
    convs = list(db().run_info(rid)["conv_layers"] or [])
    name = request.args.get("conv") or None
    if not convs:
        raise NotFoundError(f"Run {rid!r} stored no conv layer weights, so there are no filters to show.")
    if name is None:
        return convs[0]
    if name not in convs:
        raise NotFoundError(f"Unknown conv layer {name[:50]!r}. Available: {', '.join(convs)}.")
    return name


def _filter_images(weights: np.ndarray, rgb: bool) -> np.ndarray:
    """(O, kh, kw, 3) float in 0..1, each filter scaled to its own range.

    RGB when the filters read the three input colour channels; otherwise the
    mean over input channels, in grey.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        raise CorruptDataError(f"Conv weights must be (out, in, kh, kw); got shape {w.shape}.")
    img = np.transpose(w, (0, 2, 3, 1)) if rgb else np.repeat(w.mean(axis=1)[..., None], 3, axis=3)
    lo = img.min(axis=(1, 2, 3), keepdims=True)
    span = img.max(axis=(1, 2, 3), keepdims=True) - lo
    return np.where(span > 0, (img - lo) / np.where(span > 0, span, 1), 0.5)


def _layout(weights: np.ndarray) -> dict:
    n, _, kh, kw = weights.shape
    zoom = max(1, math.ceil(CELL_PX / max(kh, kw)))
    cols = max(1, math.ceil(math.sqrt(n)))
    return {"n_filters": int(n), "cols": cols, "rows": math.ceil(n / cols), "zoom": zoom, "cell_w": kw * zoom, "cell_h": kh * zoom, "gap": GAP_PX}


def _is_rgb(rid: str, weights: np.ndarray) -> bool:
    shape = db().run_info(rid)["input_shape"] or []
    return weights.shape[1] == 3 and len(shape) == 3 and shape[0] == 3


@bp.get("/steps/<step>/filters")
def filters(run: str, step: str):
    """The layout of the filter grid and each filter's relative L2 change since the previous step."""
    rid = run_id(run)
    s = step_of(rid, step)
    conv = _conv_param(rid)
    w = db().weights(s, conv, rid)
    prev = _previous_step(rid, s)
    change, prev_error = None, None
    if prev is not None:
        try:
            before = db().weights(prev, conv, rid)
        except STEP_ERRORS as exc:
            prev_error = str(exc)
        else:
            if before.shape == w.shape:
                diff = np.linalg.norm((w - before).reshape(len(w), -1), axis=1)
                base = np.linalg.norm(before.reshape(len(w), -1), axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    change = _finite(np.where(base > 0, diff / np.where(base > 0, base, 1), np.nan))
    return jsonify(
        {
            "step": s,
            "conv": conv,
            "conv_layers": list(db().run_info(rid)["conv_layers"] or []),
            "shape": list(w.shape),
            "rgb": _is_rgb(rid, w),
            "prev_step": prev,
            "prev_error": prev_error,
            "change": change,
            "norm": _finite(np.linalg.norm(w.reshape(len(w), -1), axis=1)),
            **_layout(w),
        }
    )


@bp.get("/steps/<step>/filters.png")
def filters_png(run: str, step: str):
    """The filters of a conv layer at a step as one PNG grid (row-major, layout as in ``filters``)."""
    from PIL import Image

    rid = run_id(run)
    s = step_of(rid, step)
    conv = _conv_param(rid)
    w = db().weights(s, conv, rid)
    lay = _layout(w)
    tiles = (_filter_images(w, _is_rgb(rid, w)) * 255).round().astype(np.uint8)
    tiles = tiles.repeat(lay["zoom"], axis=1).repeat(lay["zoom"], axis=2)
    gap, ch, cw = lay["gap"], lay["cell_h"], lay["cell_w"]
    canvas = np.full((gap + lay["rows"] * (ch + gap), gap + lay["cols"] * (cw + gap), 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, lay["cols"])
        y, x = gap + r * (ch + gap), gap + c * (cw + gap)
        canvas[y : y + ch, x : x + cw] = tile
    buf = io.BytesIO()
    Image.fromarray(canvas, "RGB").save(buf, format="PNG", optimize=True)
    # Weights of a committed step never change.
    return Response(buf.getvalue(), mimetype="image/png", headers={"Cache-Control": "public, max-age=86400, immutable"})
