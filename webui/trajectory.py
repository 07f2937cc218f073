"""One probe image across the run: its trajectory over the steps and its nearest neighbours at a step."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify, request

from deepviz import analysis as A
from deepviz.analysis.search import smallest

from .errors import ApiError
from .search import search_index
from .params import STEP_ERRORS, db, get_choice, get_float, get_int, layer_of, probe_row, run_id, step_of
from .state import state

bp = Blueprint("trajectory", __name__, url_prefix="/api/runs/<run>")


@bp.get("/probes/<probe>/trajectory")
def trajectory(run: str, probe: str):
    """One image's class probabilities at every step, its flips and when it became right for good."""
    rid = run_id(run)
    pid, row = probe_row(rid, probe)
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


def _pixel_nearest(rid: str, row: int, k: int, metric: str, p_norm: float):
    """Pixel-space neighbours never change (the probe images are fixed) and are the
    costly search (3,072 values per CIFAR image), so they are cached on the app. The
    search runs over the stored codes a block at a time (``search_index``): at 100,000
    images the decoded pixels alone would be 1.2 GB."""

    def search():
        index = search_index(rid, None, None)
        idx, dist, median = index.query(index.row(row), k=k, metric=metric, p=p_norm, exclude=row)
        return idx, dist, A.similarity_percent(dist, metric, median if median > 0 else None)

    return state().results.get_or_compute(("pixel_nearest", rid, row, k, metric, p_norm), search)[0]


@bp.get("/steps/<step>/neighbours")
def neighbours(run: str, step: str):
    """Nearest neighbours of one image in a layer, among its predicted class, its true class and the
    other classes, and in pixel space, for contrast. The image itself is never its own neighbour."""
    rid = run_id(run)
    s = step_of(rid, step)
    if request.args.get("probe") in (None, ""):
        raise ApiError("Missing parameter 'probe': give the id of the selected probe image.", 400)
    pid, row = probe_row(rid, request.args["probe"])
    layer = layer_of(rid, s)
    metric = get_choice("metric", A.METRICS, "cosine")
    p_norm = get_float("p", 3.0, lo=1.0, hi=100.0)
    k = get_int("k", 8, lo=1, hi=100)
    preds = db().prediction_columns(s, ("label", "pred", "confidence"), rid)  # not the (N, C) probabilities
    labels, pred = preds["label"], preds["pred"]

    def described(found) -> list[dict]:
        idx, dist, sim = found
        return [
            {"probe_id": int(preds["probe_id"][i]), "label": int(labels[i]), "pred": int(pred[i]), "distance": float(dd), "similarity": float(v)}
            for i, dd, v in zip(idx, dist, sim)
        ]

    # One pass over the layer for every distance; each group is a pick among them. The layer is read
    # through the db's cache, not kept in a search index of its own: a 100,000 x 512 step is 205 MB.
    X = db().activations(s, layer, rid)
    d = A.distances(X[row], X, metric, p_norm)[0]
    others = np.ones(len(d), bool)
    others[row] = False
    median = float(np.median(d[others])) if others.any() else 0.0
    scale = median if median > 0 else None

    def among(candidates) -> list[dict]:
        idx, dist = smallest(d, k, np.flatnonzero(candidates & others))
        return described((idx, dist, A.similarity_percent(dist, metric, scale)))

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
            "among_pred": among(labels == pred[row]),
            "among_true": among(labels == labels[row]),
            "among_other": among(labels != labels[row]),
            "pixel": described(_pixel_nearest(rid, row, k, metric, p_norm)),
        }
    )
