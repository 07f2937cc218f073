"""One probe image across the run: its trajectory over the steps and its nearest neighbours at a step."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify, request

from deepviz import analysis as A

from .errors import ApiError
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


def _typical_distance(X: np.ndarray, row: int, metric: str, p_norm: float) -> float | None:
    """Median distance from row ``row`` to every other row: the scale of the similarity
    percentages, so they compare across groups (cosine has its own absolute scale)."""
    pool = np.delete(A.distances(X[row], X, metric, p_norm)[0], row)
    median = float(np.median(pool)) if pool.size else 0.0
    return median if median > 0 else None


def _nearest(X: np.ndarray, row: int, candidates, k: int, metric: str, p_norm: float, scale: float | None):
    """(rows, distances, similarity %) of the k rows nearest to ``row``, never ``row`` itself."""
    # One extra neighbour and drop the image itself, rather than ``exclude``:
    # excluding a row makes ``nearest`` copy X without it (24 MB for 2,000
    # CIFAR images) on every request.
    idx, dist = A.nearest(X[row], X, k=k + 1, metric=metric, p=p_norm, candidates=candidates)
    keep = idx != row
    idx, dist = idx[keep][:k], dist[keep][:k]
    return idx, dist, A.similarity_percent(dist, metric, scale)


def _pixel_nearest(rid: str, row: int, k: int, metric: str, p_norm: float):
    """Pixel-space neighbours never change (the probe images are fixed) and are the
    costly search (3,072 values per CIFAR image), so they are cached on the app."""

    def search():
        pixels = db().probe_inputs(rid)
        pixels = pixels.reshape(len(pixels), -1)
        return _nearest(pixels, row, None, k, metric, p_norm, _typical_distance(pixels, row, metric, p_norm))

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
            {"probe_id": int(preds["probe_id"][i]), "label": int(labels[i]), "pred": int(pred[i]), "distance": float(d), "similarity": float(v)}
            for i, d, v in zip(idx, dist, sim)
        ]

    X = db().activations(s, layer, rid)
    scale = _typical_distance(X, row, metric, p_norm)

    def among(candidates) -> list[dict]:
        return described(_nearest(X, row, np.flatnonzero(candidates), k, metric, p_norm, scale))

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
