"""``Derived``: the derived tables of one stats db, computed on demand and cached.

What is stored where (see ``deepviz/schema.py`` for the columns):

- ``layer_quality``, one file per (step, layer), computed once
  (:mod:`deepviz.derived.quality`).
- ``data_map``, one file per run, recording the steps it covers
  (:mod:`deepviz.derived.cartography`).  It is stored once the run has ended;
  for a run still training it is computed for the steps so far and kept in
  this object's memory until the run has more steps.  A stored map that no
  longer covers the run's steps (the run was resumed) is recomputed.
- Linear CKA is not stored (a pair of steps or layers, cheap on a row
  subsample); a bounded number of matrices is kept in memory.

Every cache lives on the ``Derived`` object, so two databases, or two tests,
never share one; the web UI keeps one ``Derived`` per app.  Every measure
uses a fixed ``random_state`` (0 unless given; a stored value is reused
whatever seed is passed later).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from deepviz.analysis import cka_matrix_or_nan, subsample_rows
from deepviz.cache import Cache
from deepviz.errors import CorruptDataError, NotFoundError

from . import cartography, quality, units
from .quality import BASELINES, RunData, first_step, read_quality, step_layers
from .tables import read_derived

__all__ = ["CKA_ROWS", "Derived", "compute_all"]

CKA_ROWS = 500  # images CKA is computed on
CKA_CACHE_SIZE = 64  # CKA matrices kept in memory per db
RUN_DATA_CACHE_SIZE = 4  # runs whose probe labels, pixels and colour features are kept
CACHE_BYTES = 256 * 2**20  # the cap of each of the two caches

Progress = Callable[[int, int, str], None]


class Derived:
    """The derived tables of the runs in ``db`` (a :class:`deepviz.StatsDB`); thread-safe."""

    def __init__(self, db):
        self.db = db
        self._lock = threading.Lock()
        self._live_maps: dict[str, pd.DataFrame] = {}  # run -> map of a run still training
        self._run_data = Cache(RUN_DATA_CACHE_SIZE, max_bytes=CACHE_BYTES)  # probes never change once written
        self._cka = Cache(CKA_CACHE_SIZE, max_bytes=CACHE_BYTES)

    def __repr__(self) -> str:
        return f"Derived({self.db!r})"

    def _data(self, run_id: str) -> RunData:
        return self._run_data.get(run_id, lambda: RunData(self.db, run_id))

    # -- layer quality

    def layer_quality(self, step: int, layer: str, run: str | None = None, *, random_state: int = 0) -> pd.DataFrame:
        """The ``layer_quality`` rows (step, layer, metric, value) of one layer at one step; computed once.

        ``layer`` may also be a baseline (``pixels``, ``mean_image``): its rows,
        stored at the first step, are returned whatever ``step`` is.
        """
        run_id = self.db.resolve_run(run)
        if layer in BASELINES:
            step = first_step(self.db, run_id)
        else:
            step = self.db.require_step(run_id, step)
        stored = read_quality(self.db, run_id, step, layer)
        return stored if stored is not None else self._measure(run_id, step, layer, random_state)

    def _measure(self, run_id: str, step: int, layer: str, random_state: int) -> pd.DataFrame:
        return quality.measure(self.db, run_id, step, layer, self._data(run_id), random_state)

    def baselines(self, run: str | None = None, *, random_state: int = 0) -> pd.DataFrame:
        """Rows of the baselines ``pixels`` (every metric) and ``mean_image`` (``mean_image_accuracy``)."""
        run_id = self.db.resolve_run(run)
        frames = [self.layer_quality(None, b, run_id, random_state=random_state) for b in BASELINES]
        return pd.concat(frames, ignore_index=True)

    def missing_quality(self, run: str | None = None) -> list[tuple[int, str]]:
        """(step, layer) pairs of the run without current ``layer_quality`` rows (baselines as (first step, name))."""
        run_id = self.db.resolve_run(run)
        return [(s, layer) for s, layer in step_layers(self.db, run_id)
                if read_quality(self.db, run_id, s, layer) is None]

    def quality_table(self, run: str | None = None) -> pd.DataFrame:
        """Every current ``layer_quality`` row of the run (nothing is computed)."""
        run_id = self.db.resolve_run(run)
        frames = [read_quality(self.db, run_id, s, layer) for s, layer in step_layers(self.db, run_id)]
        frames = [f for f in frames if f is not None]
        if not frames:
            return pd.DataFrame(columns=["run_id", "step", "layer", "metric", "value"])
        return pd.concat(frames, ignore_index=True)

    # -- data map

    def data_map(self, run: str | None = None) -> pd.DataFrame:
        """The ``data_map`` rows of a run, covering every committed step it has now.

        Columns: probe_id, confidence, variability, correctness,
        forgetting_events, and the coverage ``n_steps``, ``last_step``.
        """
        run_id = self.db.resolve_run(run)
        steps = self.db.steps(run_id)
        stored = read_derived(self.db, "data_map", {}, run_id)
        if stored is not None and cartography.covers(stored, steps):
            return stored
        if self.db.run_info(run_id).get("ended_at") is not None:
            self.db.put_derived("data_map", {}, cartography.compute(self.db, run_id, steps), run_id)
            return self.db.get_derived("data_map", {}, run_id)
        with self._lock:
            frame = self._live_maps.get(run_id)
        if frame is None or not cartography.covers(frame, steps):
            frame = cartography.compute(self.db, run_id, steps)
            frame.insert(0, "run_id", run_id)
            with self._lock:
                self._live_maps[run_id] = frame
        return frame

    def data_map_state(self, run: str | None = None) -> str:
        """``stored`` when the db holds a map covering the run's steps now, else ``missing``."""
        run_id = self.db.resolve_run(run)
        stored = read_derived(self.db, "data_map", {}, run_id)
        return "stored" if stored is not None and cartography.covers(stored, self.db.steps(run_id)) else "missing"

    # -- CKA

    def _cka_rows(self, run_id: str, random_state: int) -> np.ndarray:
        return subsample_rows(len(self.db.probes(run_id)), CKA_ROWS, random_state)

    def cka_steps(self, layer: str, run: str | None = None, steps: list[int] | None = None, *,
                  random_state: int = 0) -> tuple[list[int], np.ndarray]:
        """Linear CKA of ``layer`` between every pair of steps: ``(steps, (S, S) matrix)``.

        On a seeded subsample of :data:`CKA_ROWS` probe images.  Over the whole
        run (``steps=None``) a step whose file cannot be read is left out, as
        the other timeline views do, and the steps returned say which remain;
        steps asked for by name must all be readable.
        """
        run_id = self.db.resolve_run(run)
        explicit = steps is not None
        steps = [self.db.require_step(run_id, s) for s in steps] if explicit else self.db.steps(run_id)
        if not steps:
            raise NotFoundError(f"Run {run_id!r} has no committed steps yet.")
        rows = self._cka_rows(run_id, random_state)

        def compute():
            kept, reps = [], []
            for s in steps:
                try:
                    reps.append(self.db.activations(s, layer, run_id)[rows])
                except (CorruptDataError, NotFoundError):
                    if explicit:
                        raise
                    continue
                kept.append(s)
            if not kept:
                raise CorruptDataError(f"No step of run {run_id!r} has readable activations of layer {layer!r}.")
            return kept, cka_matrix_or_nan(reps)

        return self._cka.get((run_id, "steps", layer, tuple(steps), random_state), compute)

    def cka_layers(self, step: int, run: str | None = None, layers: list[str] | None = None, *,
                   random_state: int = 0) -> tuple[list[str], np.ndarray]:
        """Linear CKA between every pair of layers at one step: ``(layers, (L, L) matrix)``."""
        run_id = self.db.resolve_run(run)
        step = self.db.require_step(run_id, step)
        layers = self.db.layers(step, run_id) if layers is None else list(layers)
        if not layers:
            raise NotFoundError(f"Step {step} of run {run_id!r} holds no layers.")
        rows = self._cka_rows(run_id, random_state)

        def compute():
            return layers, cka_matrix_or_nan([self.db.activations(step, layer, run_id)[rows] for layer in layers])

        return self._cka.get((run_id, "layers", step, tuple(layers), random_state), compute)

    # -- units (read from the stored activations; the web UI caches the answers)

    def top_units(self, step: int, layer: str, k: int = 9, run: str | None = None) -> pd.DataFrame:
        """See :func:`deepviz.derived.units.top_units`."""
        return units.top_units(self.db, step, layer, k, run)

    def unit_history(self, layer: str, unit: int, k: int = 9, run: str | None = None) -> pd.DataFrame:
        """See :func:`deepviz.derived.units.unit_history`."""
        return units.unit_history(self.db, layer, unit, k, run)

    # -- everything

    def compute_all(self, run: str | None = None, *, progress: Progress | None = None, random_state: int = 0) -> dict:
        """Compute and store every derived table of a run that is not current yet.

        Order: the data map (cheap), the baselines, then each step's layers in
        step order.  ``progress(done, total, message)`` is called before each
        item and once at the end.  Returns a summary: ``run_id``, ``computed``
        and ``cached`` item counts, ``data_map`` (``stored``, ``cached`` or
        ``in_memory`` for a run still training) and ``seconds``.
        """
        t0 = time.perf_counter()
        run_id = self.db.resolve_run(run)
        report = progress or (lambda done, total, message: None)
        n_items = len(step_layers(self.db, run_id))
        todo = self.missing_quality(run_id)
        total = len(todo) + 1
        report(0, total, "data map")
        had_map = self.data_map_state(run_id) == "stored"
        self.data_map(run_id)
        map_state = "cached" if had_map else "stored" if self.data_map_state(run_id) == "stored" else "in_memory"
        for i, (step, layer) in enumerate(todo, start=1):
            report(i, total, f"{layer} at step {step}")
            self._measure(run_id, step, layer, random_state)
        report(total, total, "done")
        return {"run_id": run_id, "computed": len(todo), "cached": n_items - len(todo), "data_map": map_state,
                "seconds": round(time.perf_counter() - t0, 3)}


def compute_all(db, run: str | None = None, *, progress: Progress | None = None, random_state: int = 0) -> dict:
    """:meth:`Derived.compute_all` for a db (what ``deepviz analyze`` runs)."""
    return Derived(db).compute_all(run, progress=progress, random_state=random_state)
