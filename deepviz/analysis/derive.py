"""Derived tables of a run: layer quality over training, the data map, and CKA.

This module is the bridge between the pure functions of ``deepviz.analysis``
and the stats db: it reads through :class:`deepviz.StatsDB`, computes, and
caches with ``put_derived`` so nothing is computed twice.  ``deepviz analyze``
calls :func:`compute_all`; the web UI calls the single-item functions lazily.

What is stored where (see ``deepviz/schema.py`` for the columns):

- ``layer_quality``, one file per (step, layer), key ``step=<S>/layer=<L>``,
  metrics :data:`QUALITY_METRICS`.  A committed step never changes, so a
  cached file is never recomputed.
- The baselines do not depend on the step.  They are stored once, at the
  run's first step: layer ``pixels`` (the probe images as the model saw them,
  every metric above) and layer ``mean_image`` (metric ``accuracy``: the
  leave-one-out nearest-class-mean classifier on pixels).
- ``data_map``, one file per run.  It covers every step, so it is stored only
  once the run has ended; for a run still training it is computed on request
  and kept in memory for the steps seen so far.
- Linear CKA is not stored (it is a pair of steps or layers, cheap on the
  row subsample below); it is cached in memory per process.

Every measure uses a fixed ``random_state`` (0 unless given; a cached value is
reused whatever seed is passed later) and bounded row subsamples, so a
2,000-image, 10-step run takes a minute or two on two cores.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pandas as pd

from deepviz.errors import ConfigurationError, CorruptDataError, NotFoundError

from .cka import cka_matrix
from .colour import colour_features, neighbourhood_agreement
from .datamap import datamap
from .quality import class_purity, knn_accuracy, linear_probe_accuracy, mean_image_accuracy, silhouette

__all__ = [
    "QUALITY_METRICS", "BASELINES", "compute_all", "layer_quality", "baselines", "data_map",
    "quality_table", "missing_quality", "cka_steps", "cka_layers",
]

#: Metrics of the ``layer_quality`` table, per layer per step.
QUALITY_METRICS = ("knn_acc", "linear_acc", "silhouette", "purity", "colour_agreement", "class_agreement")
#: Pseudo-layers holding the baselines.
BASELINES = ("pixels", "mean_image")

KNN_K = 5  # neighbours of the leave-one-out k-NN vote
AGREEMENT_K = 10  # neighbourhood size of colour/class agreement
LINEAR_ROWS = 1000  # rows of the linear probe (logistic regression with 3-fold CV)
SILHOUETTE_ROWS = 1000  # rows the silhouette is estimated on
PURITY_ROWS = 2000  # rows k-means is fitted on
CKA_ROWS = 500  # images CKA is computed on

Progress = Callable[[int, int, str], None]


def _rows(n: int, cap: int, random_state: int) -> np.ndarray:
    """Deterministic sorted subsample of ``cap`` of ``n`` rows (all of them when n <= cap)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, cap, replace=False))


def _safe(fn, *args, **kwargs) -> float:
    """A measure that cannot be defined for these data (a constant layer, a class with one image) is NaN."""
    try:
        with warnings.catch_warnings():
            # lbfgs not fully converged after 300 iterations is still a fine estimate here.
            warnings.simplefilter("ignore")
            value = float(fn(*args, **kwargs))
    except ConfigurationError:
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def _measures(X: np.ndarray, y: np.ndarray, colour: np.ndarray, random_state: int) -> dict[str, float]:
    """Every metric of QUALITY_METRICS for one representation of the probe images."""
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread: these matrices are small, and on a busy machine
    # threads waiting for each other made the logistic regression and k-means
    # 3-7x slower than one thread; it also leaves cores to the web server.
    with threadpool_limits(limits=1):
        return _measures_1(X, y, colour, random_state)


def _measures_1(X: np.ndarray, y: np.ndarray, colour: np.ndarray, random_state: int) -> dict[str, float]:
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    n = X.shape[0]
    lin = _rows(n, LINEAR_ROWS, random_state)
    pur = _rows(n, PURITY_ROWS, random_state)
    out = {
        "knn_acc": _safe(knn_accuracy, X, y, k=min(KNN_K, n - 1), metric="cosine"),
        "linear_acc": _safe(linear_probe_accuracy, X[lin], y[lin], random_state=random_state),
        "silhouette": _safe(silhouette, X, y, random_state=random_state, sample_size=SILHOUETTE_ROWS),
        "purity": _safe(class_purity, X[pur], y[pur], random_state=random_state),
    }
    try:
        agree = neighbourhood_agreement(X, y, colour, k=min(AGREEMENT_K, n - 1))
        out["colour_agreement"], out["class_agreement"] = agree["colour"], agree["class"]
    except ConfigurationError:
        out["colour_agreement"] = out["class_agreement"] = float("nan")
    return out


def _frame(values: dict[str, float], step: int, layer: str) -> pd.DataFrame:
    return pd.DataFrame({
        "step": np.full(len(values), step, dtype=np.int64),
        "layer": [layer] * len(values),
        "metric": list(values),
        "value": np.asarray(list(values.values()), dtype=np.float64),
    })


class _RunData:
    """What every measure of a run needs: labels and the colour features of the probe images."""

    def __init__(self, db, run_id: str):
        probes = db.probes(run_id)
        self.labels = probes["label"].to_numpy().astype(np.int64)
        self._db, self._run_id = db, run_id
        self._colour = None

    @property
    def colour(self) -> np.ndarray:
        if self._colour is None:
            self._colour = colour_features(self._db.probe_inputs(self._run_id), channels_last=False)
        return self._colour


def _first_step(db, run_id: str) -> int:
    steps = db.steps(run_id)
    if not steps:
        raise NotFoundError(f"Run {run_id!r} has no committed steps yet; nothing to analyse.")
    return steps[0]


def baselines(db, run: str | None = None, *, random_state: int = 0, _data: _RunData | None = None) -> pd.DataFrame:
    """Rows of the baselines ``pixels`` (every metric) and ``mean_image`` (``accuracy``), computed once."""
    run_id = db.resolve_run(run)
    step = _first_step(db, run_id)
    frames = []
    for layer in BASELINES:
        cached = db.get_derived("layer_quality", {"step": step, "layer": layer}, run_id)
        if cached is None:
            data = _data or _RunData(db, run_id)
            pixels = db.probe_inputs(run_id)
            if layer == "pixels":
                values = _measures(pixels, data.labels, data.colour, random_state)
            else:
                values = {"accuracy": _safe(mean_image_accuracy, pixels.reshape(len(pixels), -1), data.labels)}
            db.put_derived("layer_quality", {"step": step, "layer": layer}, _frame(values, step, layer), run_id)
            cached = db.get_derived("layer_quality", {"step": step, "layer": layer}, run_id)
        frames.append(cached)
    return pd.concat(frames, ignore_index=True)


def layer_quality(db, step: int, layer: str, run: str | None = None, *, random_state: int = 0,
                  _data: _RunData | None = None) -> pd.DataFrame:
    """The ``layer_quality`` rows (step, layer, metric, value) of one layer at one step; computed once.

    ``layer`` may also be a baseline (``pixels``, ``mean_image``): its rows,
    stored at the first step, are returned whatever ``step`` is.
    """
    run_id = db.resolve_run(run)
    if layer in BASELINES:
        frame = baselines(db, run_id, random_state=random_state, _data=_data)
        return frame[frame["layer"] == layer].reset_index(drop=True)
    step = db.require_step(run_id, step)
    key = {"step": step, "layer": layer}
    cached = db.get_derived("layer_quality", key, run_id)
    if cached is not None:
        return cached
    X = db.activations(step, layer, run_id)  # NotFoundError naming the available layers
    data = _data or _RunData(db, run_id)
    db.put_derived("layer_quality", key, _frame(_measures(X, data.labels, data.colour, random_state), step, layer), run_id)
    return db.get_derived("layer_quality", key, run_id)


def _step_layers(db, run_id: str) -> list[tuple[int, str]]:
    out = []
    for step in db.steps(run_id):
        try:
            out += [(step, layer) for layer in db.layers(step, run_id)]
        except (CorruptDataError, NotFoundError):
            continue
    return out


def missing_quality(db, run: str | None = None) -> list[tuple[int, str]]:
    """(step, layer) pairs of the run whose ``layer_quality`` is not cached yet (baselines as (first step, name))."""
    run_id = db.resolve_run(run)
    first = _first_step(db, run_id)
    todo = [(first, b) for b in BASELINES] + _step_layers(db, run_id)
    return [(s, layer) for s, layer in todo
            if db.get_derived("layer_quality", {"step": s, "layer": layer}, run_id) is None]


def quality_table(db, run: str | None = None) -> pd.DataFrame:
    """Every cached ``layer_quality`` row of the run (nothing is computed)."""
    run_id = db.resolve_run(run)
    first = _first_step(db, run_id)
    frames = []
    for s, layer in [(first, b) for b in BASELINES] + _step_layers(db, run_id):
        f = db.get_derived("layer_quality", {"step": s, "layer": layer}, run_id)
        if f is not None:
            frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["run_id", "step", "layer", "metric", "value"])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- data map

_live_maps: dict[tuple, pd.DataFrame] = {}
_live_lock = threading.Lock()


def _compute_data_map(db, run_id: str) -> pd.DataFrame:
    probe_ids = db.probes(run_id)["probe_id"].to_numpy()
    labels = db.probes(run_id)["label"].to_numpy()
    probs = []
    for step in db.steps(run_id):
        try:
            p = db.predictions(step, run_id)
        except (CorruptDataError, NotFoundError):
            continue  # one unreadable step must not take the whole map down
        if len(p["probe_id"]) == len(probe_ids) and np.array_equal(p["probe_id"], probe_ids):
            probs.append(p["probs"])
    if not probs:
        raise NotFoundError(f"Run {run_id!r} has no readable predictions yet; the data map needs at least one step.")
    frame = datamap(np.stack(probs), labels)
    frame.insert(0, "probe_id", probe_ids.astype(np.int64))
    frame["forgetting_events"] = frame["forgetting_events"].astype(np.int32)
    return frame


def data_map(db, run: str | None = None) -> pd.DataFrame:
    """The ``data_map`` rows of a run (probe_id, confidence, variability, correctness, forgetting_events).

    Stored in the db once the run has ended (it spans every step); while it
    trains, computed for the steps so far and kept in memory.
    """
    run_id = db.resolve_run(run)
    cached = db.get_derived("data_map", {}, run_id)
    if cached is not None:
        return cached
    ended = db.run_info(run_id).get("ended_at") is not None
    if ended:
        db.put_derived("data_map", {}, _compute_data_map(db, run_id), run_id)
        return db.get_derived("data_map", {}, run_id)
    key = (str(db.root), run_id, tuple(db.steps(run_id)))
    with _live_lock:
        frame = _live_maps.get(key)
    if frame is None:
        frame = _compute_data_map(db, run_id)
        frame.insert(0, "run_id", run_id)
        with _live_lock:
            for k in [k for k in _live_maps if k[:2] == key[:2]]:
                del _live_maps[k]
            _live_maps[key] = frame
    return frame


# --------------------------------------------------------------------------- CKA

_cka_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cka_lock = threading.Lock()
_CKA_CACHE_SIZE = 64


def _cka_cached(key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
    with _cka_lock:
        if key in _cka_cache:
            _cka_cache.move_to_end(key)
            return _cka_cache[key]
    value = compute()
    with _cka_lock:
        _cka_cache[key] = value
        while len(_cka_cache) > _CKA_CACHE_SIZE:
            _cka_cache.popitem(last=False)
    return value


def _cka(reps: list[np.ndarray]) -> np.ndarray:
    try:
        return cka_matrix(reps)
    except ConfigurationError:
        # A constant representation (e.g. a dead ReLU layer at step 0) has no CKA:
        # compute pair by pair and leave its row and column NaN.
        n = len(reps)
        out = np.full((n, n), np.nan)
        ok = [i for i, r in enumerate(reps) if np.ptp(r, axis=0).any()]
        if ok:
            out[np.ix_(ok, ok)] = cka_matrix([reps[i] for i in ok])
        return out


def cka_steps(db, layer: str, run: str | None = None, steps: list[int] | None = None, *,
              random_state: int = 0) -> tuple[list[int], np.ndarray]:
    """Linear CKA of ``layer`` between every pair of steps: ``(steps, (S, S) matrix)``.

    On a seeded subsample of :data:`CKA_ROWS` probe images; cached per process.
    Over the whole run (``steps=None``) a step whose file cannot be read is
    left out, as the other timeline views do, and the steps returned say which
    remain; steps asked for by name must all be readable.
    """
    run_id = db.resolve_run(run)
    explicit = steps is not None
    steps = db.steps(run_id) if steps is None else [db.require_step(run_id, s) for s in steps]
    if not steps:
        raise NotFoundError(f"Run {run_id!r} has no committed steps yet.")
    rows = _rows(len(db.probes(run_id)), CKA_ROWS, random_state)

    def compute():
        kept, reps = [], []
        for s in steps:
            try:
                reps.append(db.activations(s, layer, run_id)[rows])
            except (CorruptDataError, NotFoundError):
                if explicit:
                    raise
                continue
            kept.append(s)
        if not kept:
            raise CorruptDataError(f"No step of run {run_id!r} has readable activations of layer {layer!r}.")
        return kept, _cka(reps)

    return _cka_cached((str(db.root), run_id, "steps", layer, tuple(steps), random_state), compute)


def cka_layers(db, step: int, run: str | None = None, layers: list[str] | None = None, *,
               random_state: int = 0) -> tuple[list[str], np.ndarray]:
    """Linear CKA between every pair of layers at one step: ``(layers, (L, L) matrix)``."""
    run_id = db.resolve_run(run)
    step = db.require_step(run_id, step)
    layers = db.layers(step, run_id) if layers is None else list(layers)
    if not layers:
        raise NotFoundError(f"Step {step} of run {run_id!r} holds no layers.")
    rows = _rows(len(db.probes(run_id)), CKA_ROWS, random_state)

    def compute():
        return _cka([db.activations(step, layer, run_id)[rows] for layer in layers])

    return layers, _cka_cached((str(db.root), run_id, "layers", step, tuple(layers), random_state), compute)


# --------------------------------------------------------------------------- everything


def compute_all(db, run: str | None = None, *, progress: Progress | None = None, random_state: int = 0) -> dict:
    """Compute and cache every derived table of a run that is not cached yet.

    Order: the data map (cheap), the baselines, then each step's layers in step
    order.  ``progress(done, total, message)`` is called before each item and
    once at the end.  Returns a summary: ``run_id``, ``computed`` and
    ``cached`` item counts, ``data_map`` (``stored``, ``cached`` or
    ``in_memory`` for a run still training) and ``seconds``.
    """
    t0 = time.perf_counter()
    run_id = db.resolve_run(run)
    report = progress or (lambda done, total, message: None)
    all_items = [(_first_step(db, run_id), b) for b in BASELINES] + _step_layers(db, run_id)
    todo = missing_quality(db, run_id)
    total = len(todo) + 1
    report(0, total, "data map")
    had_map = db.get_derived("data_map", {}, run_id) is not None
    data_map(db, run_id)
    if had_map:
        map_state = "cached"
    else:
        map_state = "stored" if db.get_derived("data_map", {}, run_id) is not None else "in_memory"
    data = _RunData(db, run_id)
    for i, (step, layer) in enumerate(todo, start=1):
        report(i, total, f"{layer} at step {step}")
        layer_quality(db, step, layer, run_id, random_state=random_state, _data=data)
    report(total, total, "done")
    return {
        "run_id": run_id,
        "computed": len(todo),
        "cached": len(all_items) - len(todo),
        "data_map": map_state,
        "seconds": round(time.perf_counter() - t0, 3),
    }
