"""The Embedding tab's API: aligned 2-D projections of a layer over a run's steps
(computed by ``webui.projections``) and a thumbnail sprite sheet for the mosaic.
Clusters are ``webui.clusters``.

    GET  /api/runs/<run>/projection/methods
    GET  /api/runs/<run>/projection?layer=&method=&seed=        progress
    POST /api/runs/<run>/projection?layer=&method=&seed=        queue, then progress
    GET  /api/runs/<run>/steps/<step>/projection?layer=&method=&seed=&format=   binary xy (N, 2):
         float32, or format=lean: uint16 quantised over each axis's range (webui/framing.py)
    GET  /api/runs/<run>/sprite.png?size=                        thumbnails on a grid
    GET  /api/runs/<run>/moved?layer=&a=&b=&k=&top=&rows=        images whose neighbourhood changed most
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request

from deepviz.analysis.neighbourhood import neighbour_drift, neighbourhood_change
from deepviz.analysis.projection import METHODS
from deepviz.sprite import sprite_cols, sprite_sheet

from .errors import ApiError
from . import framing
from .params import binary, db, get_choice, get_format, get_int, get_seed, get_str, layer_of, run_id, step_of, step_param
from .rowset import MAX_LEN as ROWS_MAX_LEN, decode_rows
from .projections import Projections, method_options  # noqa: F401  (method_options: bench/timeline.py)
from .state import state

bp = Blueprint("embedding", __name__, url_prefix="/api/runs/<run>")

METHOD_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
SPRITE_SIZES = (16, 24, 32, 48, 64)


def _projections() -> Projections:
    return Projections(db(), state(), int(current_app.config["PROJECTION_MAX_SEEDS"]))


def _method() -> str:
    return get_choice("method", METHODS, default="tsne")


@bp.get("/projection/methods")
def projection_methods(run: str):
    run_id(run)
    out = [{"id": m, "label": METHOD_LABELS.get(m, m), "available": True, "hint": None} for m in METHODS]
    return jsonify({"methods": out, "default": "tsne"})


@bp.route("/projection", methods=["GET", "POST"])
def projection_status(run: str):
    rid = run_id(run)
    layer = layer_of(rid)
    method, seed = _method(), get_seed()
    jobs = _projections()
    if request.method == "POST":
        jobs.start(rid, layer, method, seed)
    return jsonify(jobs.status(rid, layer, method, seed))


@bp.get("/steps/<step>/projection")
def projection_step(run: str, step: str):
    rid = run_id(run)
    s = step_of(rid, step)
    # Checked against the run's layers, not the step's folder: a cached layout
    # needs no activations, and a step missing the layer says so when computed.
    layer = layer_of(rid)
    method, seed = _method(), get_seed()
    fmt = get_format("binary", "lean")
    xy, meta = _projections().layout(rid, layer, method, seed, s)
    if xy is None:
        xy = np.zeros((0, 2), np.float32)
    out = framing.quantised(xy) if fmt == "lean" else xy
    return binary({"xy": out}, {"step": s, "layer": layer, "method": method, "seed": seed, "n": int(len(xy)), "format": fmt, **meta})


def _thumbnails_in_order(rid: str, ids: np.ndarray, chunk: int = 8192):
    """The PNG bytes of ``ids``, in order, read a few row groups at a time (at 100,000 images every
    thumbnail at once is over a gigabyte of Python bytes objects)."""
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        found = db().thumbnails_of(part, rid)
        yield from (found[int(pid)] for pid in part)


@bp.get("/sprite.png")
def sprite(run: str):
    rid = run_id(run)
    size = get_int("size", 32, lo=SPRITE_SIZES[0], hi=SPRITE_SIZES[-1])
    if size not in SPRITE_SIZES:
        raise ApiError(f"Parameter 'size' must be one of {', '.join(map(str, SPRITE_SIZES))}; got {size}.", 400)

    def draw() -> bytes:
        ids = db().probes(rid)["probe_id"].to_numpy()
        return sprite_sheet(_thumbnails_in_order(rid, ids), size, count=len(ids))

    png = state().heavy.get_or_compute(("sprite", rid, size), draw)[0]
    return Response(png, mimetype="image/png", headers={
        "Cache-Control": "public, max-age=86400, immutable",
        "X-Sprite-Cols": str(sprite_cols(len(db().probes(rid)))),
        "X-Sprite-Cell": str(size),
    })


@bp.get("/moved")
def moved(run: str):
    """The images whose k nearest neighbours in a layer changed most between steps a and b
    (1 - Jaccard of the two k-NN sets, cosine), most changed first; ties (many images share
    no neighbour at all) are broken by how far the old neighbours drifted (neighbour_drift).
    ``rows`` (the selection's compact form) ranks only those images."""
    rid = run_id(run)
    a, b = step_param(rid, "a"), step_param(rid, "b")
    layer = layer_of(rid, a)
    layer_of(rid, b)
    k = get_int("k", 10, lo=1, hi=50)
    top = get_int("top", 50, lo=1, hi=500)
    rows = get_str("rows", max_len=ROWS_MAX_LEN)
    stats = db()  # the computation runs on a worker thread, outside the request
    change, drift = state().computed(("moved", rid, layer, a, b, k), lambda: _moved(stats.activations(a, layer, rid), stats.activations(b, layer, rid), k))
    ids = stats.probes(rid)["probe_id"].to_numpy()
    scope = np.flatnonzero(decode_rows(rows, len(ids))) if rows is not None else np.arange(len(ids))
    order = scope[np.lexsort((-drift[scope], -change[scope]))][:top]
    return jsonify({
        "a": a, "b": b, "layer": layer, "k": k, "ranked": int(scope.size),
        "measure": f"1 − Jaccard of the {k} nearest neighbours (cosine) in {layer}: 0 = the same neighbours at both steps, 1 = none shared",
        "tie_break": f"ties ordered by drift: the mean distance at step {b} to the {k} neighbours at step {a}, "
                     "relative to the mean distance to all images (0 = still beside it, 1 = as far as a typical image)",
        "mean": float(change[scope].mean()) if scope.size else None,
        "probe_id": ids[order].astype(int).tolist(),
        "change": np.round(change[order], 4).tolist(),
        "drift": np.round(drift[order], 4).tolist(),
    })


def _moved(XA, XB, k: int) -> tuple[np.ndarray, np.ndarray]:
    return neighbourhood_change(XA, XB, k=k), neighbour_drift(XA, XB, k=k)
