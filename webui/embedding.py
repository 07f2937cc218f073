"""The Embedding tab's API: aligned 2-D projections of a layer over a run's steps,
a thumbnail sprite sheet for the mosaic, and clusters of a layer at a step.

Projections. A (layer, method, seed) sequence is computed in one background
thread per key, step after step, each step starting from (t-SNE) or rotated
onto (PCA, UMAP) the step before it, exactly as
``deepviz.analysis.projection.aligned_layouts`` does; each step is written to
the derived table ``projections`` as soon as it is done and never recomputed.
The sequence therefore depends only on the seed, not on the order in which
the browser asked for steps. A step asked for before the thread reaches it is
computed on demand from its nearest cached step and kept only in this process
(``provisional`` in the reply): it is not stored, so it cannot change the
canonical sequence.

    GET  /api/runs/<run>/projection/methods
    GET  /api/runs/<run>/projection?layer=&method=&seed=        progress
    POST /api/runs/<run>/projection?layer=&method=&seed=        start, then progress
    GET  /api/runs/<run>/steps/<step>/projection?layer=&method=&seed=   binary xy (N, 2)
    GET  /api/runs/<run>/sprite.png?size=                        thumbnails on a grid
    GET  /api/runs/<run>/steps/<step>/clusters?layer=&method=&k=&seed=
    GET  /api/runs/<run>/steps/<step>/subclusters?layer=&cls=&k=&seed=
    GET  /api/runs/<run>/clusters/purity?layer=&method=&k=&seed=
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request

from deepviz import StatsDB
from deepviz.analysis import clusters as C
from deepviz.analysis.projection import METHODS, project
from deepviz.derived import read_derived

from .errors import ApiError
from .params import binary, db, get_choice, get_int, layer_of, run_id, step_of

bp = Blueprint("embedding", __name__, url_prefix="/api/runs/<run>")
log = logging.getLogger(__name__)

METHOD_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
CLUSTER_METHODS = ("kmeans", "hdbscan")
SEED_MAX = 2**31 - 1
SPRITE_SIZES = (16, 24, 32, 48, 64)


class LRU:
    """A small thread-safe least-recently-used cache (per process, never persisted)."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


# --------------------------------------------------------------------------- projections


def _umap_available() -> bool:
    return importlib.util.find_spec("umap") is not None


def method_options(method: str, n: int) -> dict:
    """Extra options for ``project``: a fixed function of (method, N), so a sequence stays reproducible.

    t-SNE runs in a server thread beside the request handlers: one thread
    (openTSNE's default of all cores spins badly on a loaded machine: 20x
    slower measured on 2 cores), and Barnes-Hut below 10k points, where it
    beats the FFT method's fixed grid cost (openTSNE's own advice).
    """
    if method != "tsne":
        return {}
    return {"n_jobs": 1, "negative_gradient_method": "bh" if n < 10_000 else "fft"}


def _derived_key(layer: str, method: str, seed: int, step: int) -> dict:
    return {"layer": layer, "method": method, "seed": seed, "step": step}


def _frame_xy(frame) -> np.ndarray:
    # Written in probe order; sort anyway if a file from elsewhere is not.
    if not frame["probe_id"].is_monotonic_increasing:
        frame = frame.sort_values("probe_id", kind="stable")
    return np.column_stack([frame["x"].to_numpy(np.float32), frame["y"].to_numpy(np.float32)])


@dataclass
class Job:
    steps: list[int]
    done: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    error: str | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Projections:
    """Computes and caches aligned projection sequences for one ``StatsDB``."""

    def __init__(self, stats: StatsDB):
        self.db = stats
        self.jobs: dict[tuple, Job] = {}
        self.provisional = LRU(64)
        # Stored layouts never change, so once read they are kept as arrays:
        # a step switch then costs no file access and no pandas (the 50 ms budget).
        self.layouts = LRU(512)
        self._lock = threading.Lock()

    def cached(self, run: str, layer: str, method: str, seed: int, step: int) -> np.ndarray | None:
        key = (run, layer, method, seed, step)
        xy = self.layouts.get(key)
        if xy is None:
            frame = read_derived(self.db, "projections", _derived_key(layer, method, seed, step), run)
            xy = None if frame is None else self.layouts.put(key, _frame_xy(frame))
        return xy

    def status(self, run: str, layer: str, method: str, seed: int) -> dict:
        steps = self.db.steps(run)
        cached = [s for s in steps if read_derived(self.db, "projections", _derived_key(layer, method, seed, s), run) is not None]
        job = self.jobs.get((run, layer, method, seed))
        failed = {s: msg for s, msg in (job.failed.items() if job else ()) if s not in cached}
        return {
            "layer": layer,
            "method": method,
            "seed": seed,
            "total": len(steps),
            "done": len(cached),
            "cached_steps": cached,
            "failed": {str(s): msg for s, msg in failed.items()},
            "running": bool(job and job.running),
            "error": job.error if job else None,
        }

    def start(self, run: str, layer: str, method: str, seed: int) -> None:
        """Start computing the missing steps of a sequence, unless that is already under way."""
        key = (run, layer, method, seed)
        with self._lock:
            job = self.jobs.get(key)
            if job and job.running:
                return
            steps = self.db.steps(run)
            if all(read_derived(self.db, "projections", _derived_key(layer, method, seed, s), run) is not None for s in steps):
                return
            job = Job(steps=steps)
            job.thread = threading.Thread(target=self._work, args=(key, job), name=f"projection-{method}-{layer}", daemon=True)
            self.jobs[key] = job
            job.thread.start()

    def _work(self, key: tuple, job: Job) -> None:
        run, layer, method, seed = key
        prev = None
        try:
            for step in job.steps:
                xy = self.cached(run, layer, method, seed, step)
                if xy is None:
                    try:
                        xy = self._compute(run, layer, method, seed, step, prev)
                    except (LookupError, OSError, ValueError) as exc:
                        # A corrupt or missing snapshot: the step shows its error,
                        # the sequence goes on from the last good layout.
                        job.failed[step] = str(exc)
                        log.warning("projection of %s step %s failed: %s", key, step, exc)
                        continue
                    frame = {
                        "probe_id": self.db.predictions(step, run)["probe_id"],
                        "x": xy[:, 0],
                        "y": xy[:, 1],
                    }
                    self.db.put_derived("projections", _derived_key(layer, method, seed, step), frame, run)
                prev = xy
                job.done += 1
        except Exception as exc:  # pragma: no cover - reported through the progress endpoint
            log.exception("projection job %s failed", key)
            job.error = f"{type(exc).__name__}: {exc}"

    def _compute(self, run, layer, method, seed, step, init) -> np.ndarray:
        X = self.db.activations(step, layer, run)
        if init is not None and len(init) != len(X):
            init = None  # the probe set changed size: start afresh rather than fail
        return project(X, method, init=init, random_state=seed, **method_options(method, len(X)))

    def layout(self, run: str, layer: str, method: str, seed: int, step: int) -> tuple[np.ndarray | None, dict]:
        """The layout of one step: cached, else provisional from the nearest cached step.

        Returns ``(None, meta)`` while the sequence has no cached step to start
        from yet and its job is running (the caller shows progress and asks again).
        """
        xy = self.cached(run, layer, method, seed, step)
        if xy is not None:
            return xy, {"provisional": False, "aligned_to": None}
        self.start(run, layer, method, seed)
        pkey = (run, layer, method, seed, step)
        hit = self.provisional.get(pkey)
        if hit is not None:
            return hit
        steps = self.db.steps(run)
        here = steps.index(step)
        # Nearest cached neighbour by position on the timeline; ties go to the earlier step.
        neighbour, init = None, None
        for s in sorted(steps, key=lambda s: (abs(steps.index(s) - here), s)):
            if s != step:
                init = self.cached(run, layer, method, seed, s)
                if init is not None:
                    neighbour = s
                    break
        job = self.jobs.get((run, layer, method, seed))
        if init is None and job is not None and job.running:
            return None, {"provisional": True, "aligned_to": None, "pending": True}
        xy = self._compute(run, layer, method, seed, step, init)
        return self.provisional.put(pkey, (xy, {"provisional": True, "aligned_to": neighbour}))


def _projections() -> Projections:
    ext = current_app.extensions
    if "deepviz_projections" not in ext:
        ext["deepviz_projections"] = Projections(db())
    return ext["deepviz_projections"]


def _method() -> str:
    method = get_choice("method", METHODS, default="tsne")
    if method == "umap" and not _umap_available():
        raise ApiError("Method 'umap' needs the umap-learn package, which is not installed on the server. "
                       "Install it with `pip install umap-learn` and restart, or use method=tsne or pca.", 400)
    return method


def _seed() -> int:
    return get_int("seed", 0, lo=0, hi=SEED_MAX)


@bp.get("/projection/methods")
def projection_methods(run: str):
    run_id(run)
    out = []
    for m in METHODS:
        available = m != "umap" or _umap_available()
        out.append({
            "id": m,
            "label": METHOD_LABELS.get(m, m),
            "available": available,
            "hint": None if available else "Install umap-learn on the server (pip install umap-learn) and restart deepviz serve.",
        })
    return jsonify({"methods": out, "default": "tsne"})


@bp.route("/projection", methods=["GET", "POST"])
def projection_status(run: str):
    rid = run_id(run)
    layer = layer_of(rid)
    method, seed = _method(), _seed()
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
    method, seed = _method(), _seed()
    xy, meta = _projections().layout(rid, layer, method, seed, s)
    if xy is None:
        xy = np.zeros((0, 2), np.float32)
    return binary({"xy": xy}, {"step": s, "layer": layer, "method": method, "seed": seed, "n": int(len(xy)), **meta})


# --------------------------------------------------------------------------- sprite sheet


def sprite_sheet(stats: StatsDB, run: str, size: int) -> bytes:
    """All probe thumbnails, in probe order, as one PNG grid of ``size``-px cells.

    ``ceil(sqrt(N))`` columns; image i sits at column i % cols, row i // cols.
    """
    from PIL import Image

    ids = stats.probes(run)["probe_id"].tolist()
    thumbs = stats.thumbnails(run)
    cols = max(1, math.ceil(math.sqrt(len(ids))))
    rows = max(1, math.ceil(len(ids) / cols))
    sheet = Image.new("RGB", (cols * size, rows * size), (238, 238, 238))
    for i, pid in enumerate(ids):
        with Image.open(io.BytesIO(thumbs[pid])) as img:
            cell = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        sheet.paste(cell, ((i % cols) * size, (i // cols) * size))
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=False)
    return out.getvalue()


@bp.get("/sprite.png")
def sprite(run: str):
    rid = run_id(run)
    size = get_int("size", 32, lo=SPRITE_SIZES[0], hi=SPRITE_SIZES[-1])
    if size not in SPRITE_SIZES:
        raise ApiError(f"Parameter 'size' must be one of {', '.join(map(str, SPRITE_SIZES))}; got {size}.", 400)
    cache = current_app.extensions.setdefault("deepviz_sprites", LRU(4))
    key = (rid, size)
    png = cache.get(key) or cache.put(key, sprite_sheet(db(), rid, size))
    n = len(db().probes(rid))
    return Response(png, mimetype="image/png", headers={
        "Cache-Control": "public, max-age=86400, immutable",
        "X-Sprite-Cols": str(max(1, math.ceil(math.sqrt(n)))),
        "X-Sprite-Cell": str(size),
    })


# --------------------------------------------------------------------------- clusters


def _cluster_method() -> str:
    return get_choice("method", CLUSTER_METHODS, default="kmeans")


def _k(default: int = 8, hi: int = 50) -> int:
    return get_int("k", default, lo=2, hi=hi)


def cluster_labels(stats: StatsDB, run: str, step: int, layer: str, method: str, k: int, seed: int) -> np.ndarray:
    """Cluster ids of the probe images (probe order; -1 = noise), cached per process."""
    cache = current_app.extensions.setdefault("deepviz_clusters", LRU(256))
    key = (str(stats.root), run, step, layer, method, k if method == "kmeans" else None, seed)
    labels = cache.get(key)
    if labels is None:
        X = stats.activations(step, layer, run)
        if method == "kmeans":
            labels = C.kmeans(X, k, random_state=seed)
        else:
            labels = C.hdbscan(X)
        labels = cache.put(key, np.asarray(labels, dtype=np.int32))
    return labels


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
    method, k, seed = _cluster_method(), _k(), _seed()
    labels = cluster_labels(db(), rid, s, layer, method, k, seed)
    p = db().predictions(s, rid)
    n_classes = len(db().run_info(rid)["class_names"])
    meta = {
        "step": s, "layer": layer, "method": method, "k": k, "seed": seed,
        "clusters": _summary(labels, p["label"], p["correct"], p["confidence"], n_classes),
        "noise": int((labels < 0).sum()),
        "purity": float(C.purity(labels, p["label"])),
    }
    return binary({"labels": labels}, meta)


@bp.get("/steps/<step>/subclusters")
def subclusters(run: str, step: str):
    rid = run_id(run)
    s = step_of(rid, step)
    layer = layer_of(rid, s)
    names = db().run_info(rid)["class_names"]
    cls = get_int("cls", lo=0, hi=len(names) - 1, required=True)
    k, seed = _k(default=3, hi=20), _seed()
    p = db().predictions(s, rid)
    index = np.flatnonzero(p["label"] == cls)
    cache = current_app.extensions.setdefault("deepviz_clusters", LRU(256))
    key = (str(db().root), rid, s, layer, "sub", cls, k, seed)
    labels = cache.get(key)
    if labels is None:
        X = db().activations(s, layer, rid)
        labels = cache.put(key, np.asarray(C.subclusters(X, p["label"], cls, k, random_state=seed), dtype=np.int32))
    meta = {
        "step": s, "layer": layer, "cls": cls, "class_name": names[cls], "k": k, "seed": seed,
        "clusters": _summary(labels, p["pred"][index], p["correct"][index], p["confidence"][index], len(names)),
    }
    return binary({"index": index.astype(np.int32), "labels": labels}, meta)


@bp.get("/clusters/purity")
def purity_timeline(run: str):
    rid = run_id(run)
    layer = layer_of(rid)
    method, k, seed = _cluster_method(), _k(), _seed()
    steps, values, errors = [], [], {}
    for s in db().steps(rid):
        try:
            labels = cluster_labels(db(), rid, s, layer, method, k, seed)
            values.append(float(C.purity(labels, db().predictions(s, rid)["label"])))
        except (LookupError, OSError) as exc:
            # One unreadable step leaves a gap in the line, not an error for the whole chart.
            errors[str(s)] = str(exc)
            values.append(None)
        steps.append(s)
    return jsonify({"layer": layer, "method": method, "k": k, "seed": seed, "steps": steps, "purity": values, "errors": errors})
