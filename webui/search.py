"""Similarity search: the probe images nearest to a probe image or to an uploaded one.

Routes, under ``/api/runs/<run>/analysis``:

- ``GET search?probe=&step=&layer=&metric=&p=&k=&space=``: the probe images
  nearest to a probe image, in the layer (``results``) and in pixel space
  (``pixel``, for contrast); ``space=layer`` or ``pixels`` answers one of them.
- ``POST search`` (multipart, field ``image``): the same for an uploaded
  image, run through the model as it was at ``step``; the answer's
  ``weights`` says which weights that was.
"""

from __future__ import annotations

import io
import time

import numpy as np
from flask import Blueprint, jsonify, request

from deepviz import analysis as A
from deepviz.analysis.search import SearchIndex

from .errors import ApiError
from .models import model_at
from .params import db, get_choice, get_float, get_int, layer_of, run_id, step_of
from .state import state

bp = Blueprint("search", __name__, url_prefix="/api/runs/<run>/analysis")

#: Largest image file accepted for a search (bytes).
MAX_UPLOAD = 8 * 1024 * 1024
#: Largest decoded image accepted (pixels); keeps a small file that decodes huge out.
MAX_PIXELS = 40_000_000

def search_index(rid: str, step: int | None, layer: str | None) -> SearchIndex:
    """The search index of a layer at a step (or of the probe pixels when layer is None), built once per app.
    The pixels' index holds the stored codes (uint8 for most images), decoded a block at a time by each query."""

    def build() -> SearchIndex:
        return SearchIndex(db().activations(step, layer, rid))

    if layer is None:
        # The codes are in the db's cache (307 MB at 100,000 CIFAR images, more than the heavy cache
        # holds); only their norms, a pass over all of them, are kept here.
        inputs = db().stored_inputs(rid)
        norms = state().results.get_or_compute(("pixel_sq_norms", rid), lambda: SearchIndex(inputs.codes, inputs.divisor).sq_norms)[0]
        return SearchIndex(inputs.codes, inputs.divisor, sq_norms=norms)
    return state().heavy.get_or_compute(("search_index", rid, step, layer), build)[0]


def _search(index: SearchIndex, q: np.ndarray, k: int, metric: str, p: float, self_row: int | None, preds: dict) -> list[dict]:
    """Top-k rows nearest to q, the query's own row left out, with similarity percentages."""
    if q.shape[-1] != index.X.shape[1]:
        raise ApiError(f"The query has {q.shape[-1]} features but the stored rows have {index.X.shape[1]}; "
                       "the model does not match the run.", 500)
    idx, dist, median = index.query(q, k=k, metric=metric, p=p, exclude=self_row)
    # Cosine has its own scale; the others are shown relative to the query's median
    # distance to the probe images, so 0 % is "as far as a typical image".
    scale = None if metric == "cosine" or not median > 0 else median
    sim = A.similarity_percent(dist, metric, scale)
    return [
        {
            "rank": r + 1,
            "probe_id": int(preds["probe_id"][i]),
            "label": int(preds["label"][i]),
            "pred": int(preds["pred"][i]),
            "correct": bool(preds["correct"][i]),
            "distance": float(d),
            "similarity": float(v),
        }
        for r, (i, d, v) in enumerate(zip(idx, dist, sim))
    ]


SPACES = ("both", "layer", "pixels")


def _search_params(rid: str):
    s = get_int("step", None)
    if s is None:
        steps = db().steps(rid)
        if not steps:
            raise ApiError(f"Run {rid!r} has no committed steps yet.", 404)
        s = steps[-1]
    s = step_of(rid, s)
    layer = layer_of(rid, s)
    metric = get_choice("metric", A.METRICS, "cosine")
    p = get_float("p", 3.0, lo=1.0, hi=100.0)
    k = get_int("k", 12, lo=1, hi=100)
    space = get_choice("space", SPACES, "both")
    return s, layer, metric, p, k, space


def _answer(rid, s, layer, metric, p, k, space, query: dict, q_layer, q_pixels, self_row, t0) -> dict:
    preds = db().predictions(s, rid)
    out = {"step": s, "layer": layer, "metric": metric, "p": p, "k": k, "space": space, "n": int(len(preds["probe_id"])), "query": query}
    if space in ("both", "layer"):
        out["results"] = _search(search_index(rid, s, layer), q_layer, k, metric, p, self_row, preds)
    if space in ("both", "pixels"):
        out["pixel"] = _search(search_index(rid, None, None), q_pixels, k, metric, p, self_row, preds)
    out["ms"] = round((time.perf_counter() - t0) * 1000, 2)
    return out


@bp.get("/search")
def search(run: str):
    """Nearest probe images to a probe image, in a layer and in pixel space."""
    t0 = time.perf_counter()
    rid = run_id(run)
    s, layer, metric, p, k, space = _search_params(rid)
    probe = get_int("probe", None, required=True)
    preds = db().predictions(s, rid)
    rows = np.flatnonzero(preds["probe_id"] == probe)
    if rows.size == 0:
        raise ApiError(f"Unknown probe image {probe}; the run has {len(preds['probe_id'])} probe images "
                       f"(ids {int(preds['probe_id'].min())}..{int(preds['probe_id'].max())}).", 404)
    row = int(rows[0])
    query = {
        "kind": "probe",
        "probe_id": probe,
        "label": int(preds["label"][row]),
        "pred": int(preds["pred"][row]),
        "confidence": float(preds["confidence"][row]),
    }
    q_layer = search_index(rid, s, layer).row(row) if space != "pixels" else None
    q_pixels = search_index(rid, None, None).row(row) if space != "layer" else None
    return jsonify(_answer(rid, s, layer, metric, p, k, space, query, q_layer, q_pixels, row, t0))


# ---- uploaded images

def _decode(file, shape: list[int], probe_stats: dict[str, np.ndarray]) -> np.ndarray:
    """An uploaded file as one model input (C, H, W): centre-cropped, resized, in [0, 1].

    When the run's probe inputs are not in [0, 1] (the model was trained on
    normalised images), each channel is standardised to the probe set's mean
    and standard deviation, the closest guess at the normalisation used.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    c, h, w = shape
    if c not in (1, 3):
        raise ApiError(f"Searching with an uploaded image needs a model with 1 or 3 input channels; this run has {c}.", 400)
    data = file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise ApiError(f"The image file is larger than {MAX_UPLOAD // (1024 * 1024)} MB; upload a smaller one.", 400)
    if not data:
        raise ApiError("The uploaded file is empty; choose a PNG, JPEG, GIF, BMP or WebP image.", 400)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ApiError(f"The image is {im.width}x{im.height} pixels; at most {MAX_PIXELS:,} pixels are accepted.", 400)
            im = ImageOps.fit(im.convert("L" if c == 1 else "RGB"), (w, h), Image.Resampling.BILINEAR)
            x = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(f"The uploaded file {file.filename or ''!r} is not an image Pillow can read ({type(exc).__name__}); "
                       "choose a PNG, JPEG, GIF, BMP or WebP image.", 400) from None
    x = x[None] if c == 1 else x.transpose(2, 0, 1)
    if probe_stats["min"].min() < -1e-3 or probe_stats["max"].max() > 1 + 1e-3:
        mean, std = probe_stats["mean"], probe_stats["std"]
        x = (x - x.mean(axis=(1, 2), keepdims=True)) / np.maximum(x.std(axis=(1, 2), keepdims=True), 1e-6)
        x = x * std[:, None, None] + mean[:, None, None]
    return x.astype(np.float32)


@bp.post("/search")
def search_upload(run: str):
    """Nearest probe images to an uploaded image run through the model at ``step``."""
    import torch

    from deepviz.capture import capture

    t0 = time.perf_counter()
    rid = run_id(run)
    s, layer, metric, p, k, space = _search_params(rid)
    file = request.files.get("image")
    if file is None:
        raise ApiError("Missing file field 'image': POST the image as multipart/form-data.", 400)
    info = db().run_info(rid)
    x = _decode(file, list(info["input_shape"]), db().stored_inputs(rid).channel_stats())
    loaded = model_at(rid, s)
    with loaded.lock:
        out = capture(loaded.model, torch.from_numpy(x[None]), torch.zeros(1, dtype=torch.long), [layer])
    probs = out.probs[0]
    pred = int(probs.argmax())
    query = {"kind": "upload", "filename": file.filename or "", "pred": pred, "confidence": float(probs[pred])}
    answer = _answer(rid, s, layer, metric, p, k, space, query, out.activations[layer][0], x.ravel(), None, t0)
    return jsonify(answer | {"weights": loaded.weights})
