"""Clusters of a layer at a step, sub-clusters of one class, and cluster purity over the steps.

    GET  /api/runs/<run>/steps/<step>/clusters?layer=&method=&k=&seed=&min_cluster_size=&min_samples=
    GET  /api/runs/<run>/steps/<step>/subclusters?layer=&cls=&k=&seed=
    GET  /api/runs/<run>/steps/<step>/subclusters/separation?layer=&cls=&k=&seed=&metric=
    GET  /api/runs/<run>/clusters/purity?layer=&method=&k=&seed=&min_cluster_size=&min_samples=

``k`` is k-means' number of clusters; ``min_cluster_size`` and ``min_samples``
are HDBSCAN's (each ignored by the other method). Clusters and the purity
timeline are computed by background jobs (``webui.cluster_jobs``): until
they are done the answer is a 202 with ``pending``, the job's id and its
progress (the clusters route as a binary answer with no labels), and the
browser asks again.
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify

from deepviz.analysis import clusters as C
from deepviz.analysis import separation as S

from .cluster_jobs import ClusterJobs, pending_meta
from .params import binary, class_count, db, get_choice, get_int, get_seed, layer_of, run_id, step_of
from .state import state

bp = Blueprint("clusters", __name__, url_prefix="/api/runs/<run>")

CLUSTER_METHODS = ("kmeans", "hdbscan")
#: HDBSCAN's defaults here: on the CIFAR-10 subset run (alexnet-small, 3 epochs, 932 probes) they give
#: 2 to 15 clusters in each of fc1-fc3 at every step (step 0 included), where (10, 5) left step 0's fc3
#: all noise and (5, None) gave 2 clusters with one of 864 images.
MIN_CLUSTER_SIZE, MIN_SAMPLES = 10, 3
MAX_HDBSCAN_PARAM = 500


def _cluster_method() -> str:
    return get_choice("method", CLUSTER_METHODS, default="kmeans")


def _method_params(method: str) -> tuple:
    """The chosen method's own parameters, parsed and bounded: (k,) or (min_cluster_size, min_samples)."""
    if method == "kmeans":
        return (_k(),)
    return (get_int("min_cluster_size", MIN_CLUSTER_SIZE, lo=2, hi=MAX_HDBSCAN_PARAM),
            get_int("min_samples", MIN_SAMPLES, lo=1, hi=MAX_HDBSCAN_PARAM))


def _k(default: int = 8, hi: int = 50) -> int:
    return get_int("k", default, lo=2, hi=hi)


def _jobs() -> ClusterJobs:
    return ClusterJobs(db(), state())


def _params_meta(method: str, params: tuple) -> dict:
    if method == "kmeans":
        return {"k": params[0]}
    return {"min_cluster_size": params[0], "min_samples": params[1]}


def _summary(labels: np.ndarray, true: np.ndarray, correct: np.ndarray, confidence: np.ndarray, n_classes: int) -> list[dict]:
    out = []
    for c in np.unique(labels[labels >= 0]):
        members = labels == c
        counts = np.bincount(true[members], minlength=n_classes)
        out.append({
            "id": int(c),
            "size": int(members.sum()),
            "majority": int(counts.argmax()),
            "purity": float(counts.max() / members.sum()),
            "accuracy": float(correct[members].mean()),
            "confidence": float(confidence[members].mean()),
        })
    return out


@bp.get("/steps/<step>/clusters")
def clusters(run: str, step: str):
    rid = run_id(run)
    s = step_of(rid, step)
    layer = layer_of(rid, s)
    method, seed = _cluster_method(), get_seed()
    params = _method_params(method)
    asked = {"step": s, "layer": layer, "method": method, **_params_meta(method, params), "seed": seed}
    labels, job = _jobs().labels(rid, s, layer, method, params, seed)
    if job is not None:
        response = binary({"labels": np.zeros(0, np.int32)}, {**asked, **pending_meta(job)})
        response.status_code = 202
        return response
    p = db().predictions(s, rid)
    n_classes = len(db().run_info(rid)["class_names"])
    meta = {
        **asked, "pending": False,
        "clusters": _summary(labels, p["label"], p["correct"], p["confidence"], n_classes),
        "noise": int((labels < 0).sum()),
        "purity": float(C.purity(labels, p["label"])),
    }
    return binary({"labels": labels}, meta)


def _subclusters(rid: str, s: int, layer: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """The sub-clusters of the class ``cls`` at step ``s``: (params, the class's probe rows, their labels)."""
    names = db().run_info(rid)["class_names"]
    cls = get_int("cls", lo=0, hi=len(names) - 1, required=True)
    k, seed = _k(default=3, hi=20), get_seed()
    p = db().predictions(s, rid)
    store = db()  # the job runs on a worker thread, outside this request's app context

    def fit() -> np.ndarray:
        X = store.activations(s, layer, rid)
        return np.asarray(C.subclusters(X, p["label"], cls, k, random_state=seed), dtype=np.int32)

    labels = state().computed(("subclusters", rid, s, layer, cls, k, seed), fit)
    params = {"step": s, "layer": layer, "cls": cls, "class_name": names[cls], "k": k, "seed": seed}
    return params, np.flatnonzero(p["label"] == cls), labels


@bp.get("/steps/<step>/subclusters")
def subclusters(run: str, step: str):
    rid = run_id(run)
    s = step_of(rid, step)
    params, index, labels = _subclusters(rid, s, layer_of(rid, s))
    p = db().predictions(s, rid)
    meta = {**params, "clusters": _summary(labels, p["pred"][index], p["correct"][index], p["confidence"][index],
                                           class_count(rid))}
    return binary({"index": index.astype(np.int32), "labels": labels}, meta)


@bp.get("/steps/<step>/subclusters/separation")
def subcluster_separation(run: str, step: str):
    """How far apart the sub-clusters found at ``step`` lie at every step (each step's own activations)."""
    rid = run_id(run)
    s = step_of(rid, step)
    layer = layer_of(rid, s)
    metric = get_choice("metric", S.SEPARATION_METRICS, default="cosine")
    params, index, labels = _subclusters(rid, s, layer)
    store, steps = db(), db().steps(rid)

    def measure() -> tuple[list, dict]:
        activations, errors = [], {}
        for t in steps:
            try:
                activations.append(store.activations(t, layer, rid)[index])
            except (LookupError, OSError) as exc:
                # One unreadable step leaves a gap in the line, not an error for the whole chart.
                errors[str(t)] = str(exc)
                activations.append(None)
        return S.separation_over_steps(activations, labels, metric), errors

    values, errors = state().computed(("subseparation", rid, *params.values(), metric), measure)
    return jsonify({**params, "measure": S.SEPARATION_MEASURE, "metric": metric, "range": [-1, 1],
                    "threshold": S.SEPARATED, "steps": steps, "values": values, "errors": errors})


@bp.get("/clusters/purity")
def purity_timeline(run: str):
    rid = run_id(run)
    layer = layer_of(rid)
    method, seed = _cluster_method(), get_seed()
    params = _method_params(method)
    steps, values, errors, job = _jobs().purity(rid, layer, method, params, seed)
    body = {"layer": layer, "method": method, **_params_meta(method, params), "seed": seed, "steps": steps,
            "purity": values, "errors": errors, **(pending_meta(job) if job else {"pending": False})}
    return jsonify(body), 202 if job else 200
