"""The Analysis tab: similarity search, layer quality over training, CKA, the data map, colour vs class.

The numbers come from ``deepviz.analysis`` (pure functions) and
``deepviz.derived`` (the cached derived tables); this module reads
through the store, checks parameters, runs the one background job per run that
fills the ``layer_quality`` table, and shapes the answers.

Routes, under ``/api/runs/<run>/analysis``:

- ``GET search?probe=&step=&layer=&metric=&p=&k=&space=``: the probe images
  nearest to a probe image, in the layer (``results``) and in pixel space
  (``pixel``, for contrast); ``space=layer`` or ``pixels`` answers one of them.
- ``POST search`` (multipart, field ``image``): the same for an uploaded
  image, run through the model as it was at ``step``.
- ``GET quality``: every cached ``layer_quality`` value, per metric and layer,
  aligned with the run's steps, plus the baselines and the job's progress.
- ``POST compute``: start the background job computing what is missing.
- ``GET progress``: that job's progress.
- ``GET cka?mode=steps&layer=`` or ``cka?mode=layers&step=``: linear CKA matrices.
- ``GET datamap``: the data map, as binary arrays.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict

import numpy as np
from flask import Blueprint, jsonify, request

from deepviz import analysis as A
from deepviz.analysis.cartography import AMBIGUOUS_VARIABILITY, EASY_CONFIDENCE, data_map_region
from deepviz.derived import AGREEMENT_K, CKA_ROWS, QUALITY_METRICS
from deepviz.analysis.search import SearchIndex

from .errors import ApiError
from .params import binary, db, derived, get_choice, get_float, get_int, layer_of, run_id, step_of

bp = Blueprint("analysis", __name__, url_prefix="/api/runs/<run>/analysis")

#: Largest image file accepted for a search (bytes).
MAX_UPLOAD = 8 * 1024 * 1024
#: Largest decoded image accepted (pixels); keeps a small file that decodes huge out.
MAX_PIXELS = 40_000_000

# --------------------------------------------------------------------------- search


_indexes: OrderedDict[tuple, SearchIndex] = OrderedDict()
_indexes_lock = threading.Lock()
_INDEX_CACHE = 16


def _index(rid: str, step: int | None, layer: str | None) -> SearchIndex:
    """The search index of a layer at a step (or of the probe pixels when layer is None), built once per process."""
    key = (str(db().root), rid, step, layer)
    with _indexes_lock:
        if key in _indexes:
            _indexes.move_to_end(key)
            return _indexes[key]
    if layer is None:
        pixels = db().probe_inputs(rid)
        index = SearchIndex(pixels.reshape(len(pixels), -1))
    else:
        index = SearchIndex(db().activations(step, layer, rid))
    with _indexes_lock:
        _indexes[key] = index
        while len(_indexes) > _INDEX_CACHE:
            _indexes.popitem(last=False)
    return index


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
        out["results"] = _search(_index(rid, s, layer), q_layer, k, metric, p, self_row, preds)
    if space in ("both", "pixels"):
        out["pixel"] = _search(_index(rid, None, None), q_pixels, k, metric, p, self_row, preds)
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
    q_layer = _index(rid, s, layer).X[row] if space != "pixels" else None
    q_pixels = _index(rid, None, None).X[row] if space != "layer" else None
    return jsonify(_answer(rid, s, layer, metric, p, k, space, query, q_layer, q_pixels, row, t0))


# ---- uploaded images

_models: OrderedDict[tuple, tuple] = OrderedDict()
_models_lock = threading.Lock()
_MODEL_CACHE = 3


def _model(rid: str, step: int):
    """The run's model at a step, with a lock: capture's hooks must not see another request's forward pass."""
    key = (str(db().root), rid, step)
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    entry = (db().load_model(step, rid), threading.Lock())
    with _models_lock:
        _models[key] = entry
        while len(_models) > _MODEL_CACHE:
            _models.popitem(last=False)
    return entry


def _decode(file, shape: list[int], probe_pixels: np.ndarray) -> np.ndarray:
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
    if probe_pixels.min() < -1e-3 or probe_pixels.max() > 1 + 1e-3:
        axes = (0, 2, 3)
        mean, std = probe_pixels.mean(axis=axes), probe_pixels.std(axis=axes)
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
    pixels = db().probe_inputs(rid)
    x = _decode(file, list(info["input_shape"]), pixels)
    model, lock = _model(rid, s)
    with lock:
        out = capture(model, torch.from_numpy(x[None]), torch.zeros(1, dtype=torch.long), [layer])
    probs = out.probs[0]
    pred = int(probs.argmax())
    query = {"kind": "upload", "filename": file.filename or "", "pred": pred, "confidence": float(probs[pred])}
    return jsonify(_answer(rid, s, layer, metric, p, k, space, query, out.activations[layer][0], x.ravel(), None, t0))


# --------------------------------------------------------------------------- background job


class _Job:
    def __init__(self):
        self.done, self.total, self.message = 0, 0, "starting"
        self.running, self.error = True, None
        self.started, self.finished = time.time(), None

    def as_dict(self) -> dict:
        return {"running": self.running, "done": self.done, "total": self.total, "message": self.message,
                "error": self.error, "seconds": round((self.finished or time.time()) - self.started, 1)}


_jobs: dict[tuple, _Job] = {}
_jobs_lock = threading.Lock()


def _job_key(rid: str) -> tuple:
    return (str(db().root.resolve()), rid)


def _start(rid: str) -> _Job:
    """Start the run's compute job unless one is running; returns it."""
    service = derived()
    key = _job_key(rid)
    with _jobs_lock:
        job = _jobs.get(key)
        if job is not None and job.running:
            return job
        job = _jobs[key] = _Job()

    def report(done, total, message):
        job.done, job.total, job.message = done, total, message

    def work():
        try:
            service.compute_all(rid, progress=report)
            job.message = "done"
        except Exception as exc:  # shown in the UI; the next request may start it again
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.running, job.finished = False, time.time()

    threading.Thread(target=work, name=f"deepviz-analyze-{rid}", daemon=True).start()
    return job


def _progress(rid: str, missing: int) -> dict:
    job = _jobs.get(_job_key(rid))
    if job is None:
        return {"running": False, "done": 0, "total": missing, "message": "not started", "error": None, "missing": missing}
    return job.as_dict() | {"missing": missing}


@bp.post("/compute")
def compute(run: str):
    rid = run_id(run)
    missing = len(derived().missing_quality(rid))
    if missing:
        _start(rid)
    return jsonify(_progress(rid, missing))


@bp.get("/progress")
def progress(run: str):
    rid = run_id(run)
    return jsonify(_progress(rid, len(derived().missing_quality(rid))))


# --------------------------------------------------------------------------- quality


def _num(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


@bp.get("/quality")
def quality(run: str):
    """Every cached layer_quality value: values[metric][layer] is aligned with steps (null = not yet)."""
    rid = run_id(run)
    steps = db().steps(rid)
    if not steps:
        raise ApiError(f"Run {rid!r} has no committed steps yet.", 404)
    layers = db().layers(None, rid)
    table = derived().quality_table(rid)
    pos = {s: i for i, s in enumerate(steps)}
    values = {m: {layer: [None] * len(steps) for layer in layers} for m in QUALITY_METRICS}
    base = {m: {} for m in QUALITY_METRICS}
    for row in table.itertuples(index=False):
        if row.layer == "pixels" and row.metric in base:
            base[row.metric]["pixels"] = _num(row.value)
        elif row.layer == "mean_image":
            for m in ("knn_accuracy", "linear_probe_accuracy"):  # a classifier's accuracy: comparable to these two
                base[m]["mean_image"] = _num(row.value)
        elif row.metric in values and row.layer in values[row.metric] and row.step in pos:
            values[row.metric][row.layer][pos[row.step]] = _num(row.value)
    labels = db().probes(rid)["label"].to_numpy()
    shares = np.bincount(labels) / max(1, labels.size)
    n = labels.size
    chance = {
        "class_agreement": float((shares**2).sum()),
        "colour_agreement": min(AGREEMENT_K, n - 1) / max(1, n - 1),
        "knn_accuracy": float(shares.max()) if n else None,
        "linear_probe_accuracy": float(shares.max()) if n else None,
    }
    missing = len(derived().missing_quality(rid))
    return jsonify({"steps": steps, "layers": layers, "metrics": list(QUALITY_METRICS), "values": values,
                    "baselines": base, "chance": chance, "progress": _progress(rid, missing)})


# --------------------------------------------------------------------------- CKA


@bp.get("/cka")
def cka(run: str):
    """Linear CKA: steps x steps of one layer (mode=steps) or layers x layers at one step (mode=layers)."""
    rid = run_id(run)
    mode = get_choice("mode", ("steps", "layers"), "steps")
    if mode == "steps":
        layer = layer_of(rid)
        labels, matrix = derived().cka_steps(layer, rid)
        extra = {"layer": layer}
    else:
        s = get_int("step", None, required=True)
        s = step_of(rid, s)
        labels, matrix = derived().cka_layers(s, rid)
        extra = {"step": s}
    return jsonify({"mode": mode, "labels": labels, "matrix": [[_num(v) for v in row] for row in matrix],
                    "rows": min(len(db().probes(rid)), CKA_ROWS)} | extra)


# --------------------------------------------------------------------------- data map


@bp.get("/datamap")
def datamap_route(run: str):
    """The data map as binary arrays (probe order) with the region thresholds and counts."""
    rid = run_id(run)
    frame = derived().data_map(rid)
    labels = db().probes(rid).set_index("probe_id")["label"]
    conf = frame["confidence"].to_numpy()
    var = frame["variability"].to_numpy()
    regions = data_map_region(conf, var) if len(frame) else np.array([], dtype=object)
    counts = {r: int((regions == r).sum()) for r in ("easy", "ambiguous", "hard")}
    return binary(
        {
            "probe_id": frame["probe_id"].to_numpy().astype(np.int32),
            "label": labels.reindex(frame["probe_id"]).to_numpy().astype(np.int32),
            "confidence": conf.astype(np.float32),
            "variability": var.astype(np.float32),
            "correctness": frame["correctness"].to_numpy().astype(np.float32),
            "forgetting_events": frame["forgetting_events"].to_numpy().astype(np.int32),
        },
        {"ambiguous_variability": AMBIGUOUS_VARIABILITY, "easy_confidence": EASY_CONFIDENCE, "counts": counts,
         "n_steps": len(db().steps(rid))},
    )
