"""Aligned 2-D projections of a layer over a run's steps, computed on the app's job runner.

A (layer, method, seed) sequence is one background job, step after step, each
step starting from (t-SNE) or rotated onto (PCA, UMAP) the step before it,
exactly as ``deepviz.analysis.projection.aligned_layouts`` does; each step is
written to the derived table ``projections`` as soon as it is done and never
recomputed. The sequence therefore depends only on the seed, not on the order
in which the browser asked for steps. A step asked for before the job reaches
it is computed on demand from its nearest cached step and kept only in memory
(``provisional`` in the reply): it is not stored, so it cannot change the
canonical sequence.

Work is bounded: jobs go through the app's ``JobRunner`` (fixed workers, a
bounded queue), and at most ``PROJECTION_MAX_SEEDS`` distinct seeds of one
(run, layer, method) compute at once; beyond that a new seed gets a 429.
"""

from __future__ import annotations

import logging

import numpy as np

from deepviz import StatsDB
from deepviz.analysis.projection import project_step
from deepviz.derived import read_derived

from .state import AppState, Busy, Job

log = logging.getLogger(__name__)


def method_options(method: str, n: int) -> dict:
    """Extra options for ``project``: a fixed function of (method, N), so a sequence stays reproducible.

    t-SNE's gradient descent runs on one thread: it runs in a server thread
    beside the request handlers, and openTSNE's threads, which wait for each
    other at every iteration, spin badly on a loaded machine (a 150-point
    layout: 0.8 s or 97 s with ``n_jobs=-1`` on 2 cores at load 12, 3.4 s with
    one thread; 20x slower measured before). Barnes-Hut below 10k points,
    where it beats the FFT method's fixed grid cost (openTSNE's own advice).
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


class Projections:
    """Projection sequences of one ``StatsDB``, on the app's job runner and layout cache."""

    def __init__(self, stats: StatsDB, app_state: AppState, max_seeds: int):
        self.db, self.state, self.max_seeds = stats, app_state, max_seeds

    def cached(self, run: str, layer: str, method: str, seed: int, step: int) -> np.ndarray | None:
        # Stored layouts never change, so once read they are kept as arrays:
        # a step switch then costs no file access and no pandas (the 50 ms budget).
        key = ("stored", run, layer, method, seed, step)
        xy = self.state.layouts.get(key)
        if xy is None:
            frame = read_derived(self.db, "projections", _derived_key(layer, method, seed, step), run)
            xy = None if frame is None else self.state.layouts.put(key, _frame_xy(frame))
        return xy

    def _job(self, run: str, layer: str, method: str, seed: int) -> Job | None:
        return self.state.jobs.get(("projection", run, layer, method, seed))

    def status(self, run: str, layer: str, method: str, seed: int) -> dict:
        """Progress of a sequence; a sequence already begun is extended to the steps that landed since."""
        steps = self.db.steps(run)
        cached = [s for s in steps if self.cached(run, layer, method, seed, s) is not None]
        job = self._job(run, layer, method, seed)
        failed = {s: msg for s, msg in (job.failed.items() if job else ()) if s not in cached}
        if cached and len(cached) + len(failed) < len(steps) and not (job and job.running):
            # A run still training: a new step's layout is computed as soon as it is seen (a failed
            # step alone does not restart the job; with a new step it is tried again).
            self.start(run, layer, method, seed)
            job = self._job(run, layer, method, seed)
        return {
            "layer": layer, "method": method, "seed": seed,
            "total": len(steps), "done": len(cached), "cached_steps": cached,
            "failed": {str(s): msg for s, msg in failed.items()},
            "running": bool(job and job.running),
            "error": job.error if job else None,
        }

    def start(self, run: str, layer: str, method: str, seed: int) -> None:
        """Queue the missing steps of a sequence, unless they are already queued or computing."""
        steps = self.db.steps(run)
        if all(self.cached(run, layer, method, seed, s) is not None for s in steps):
            return

        def admit(active: list[Job]) -> None:
            seeds = sorted({j.key[4] for j in active if j.key[:4] == ("projection", run, layer, method)})
            if len(seeds) >= self.max_seeds:
                raise Busy(f"Seed {seed} refused: {len(seeds)} seeds of {method} on layer {layer!r} are already "
                           f"computing ({', '.join(map(str, seeds))}; at most {self.max_seeds} at once). "
                           "Use one of those seeds, or wait until they finish.")

        self.state.jobs.submit(("projection", run, layer, method, seed), lambda job: self._work(job, steps), admit=admit)

    def _work(self, job: Job, steps: list[int]) -> None:
        _, run, layer, method, seed = job.key
        job.total, prev, graph = len(steps), None, None
        for step in steps:
            xy = self.cached(run, layer, method, seed, step)
            if xy is None:
                try:
                    # The previous step's neighbour lists (t-SNE) seed this step's search; kept in memory only.
                    xy, graph = self._compute(run, layer, method, seed, step, prev, graph)
                except (LookupError, OSError, ValueError) as exc:
                    # A corrupt or missing snapshot: the step shows its error,
                    # the sequence goes on from the last good layout.
                    job.failed[step] = str(exc)
                    log.warning("projection of %s step %s failed: %s", job.key, step, exc)
                    continue
                frame = {"probe_id": self.db.predictions(step, run)["probe_id"], "x": xy[:, 0], "y": xy[:, 1]}
                self.db.put_derived("projections", _derived_key(layer, method, seed, step), frame, run)
            prev = xy
            job.done += 1

    def _compute(self, run, layer, method, seed, step, init, graph=None) -> tuple[np.ndarray, object]:
        """The step's layout from ``init`` (and t-SNE's neighbour graph, seeded from ``graph``)."""
        X = self.db.activations(step, layer, run)
        if init is not None and len(init) != len(X):
            init, graph = None, None  # the probe set changed size: start afresh rather than fail
        return project_step(X, method, init=init, graph=graph, random_state=seed, **method_options(method, len(X)))

    def _nearest_cached(self, run, layer, method, seed, step) -> tuple[int | None, np.ndarray | None]:
        """The cached layout nearest to ``step`` on the timeline (ties go to the earlier step)."""
        steps = self.db.steps(run)
        here = steps.index(step)
        for s in sorted(steps, key=lambda s: (abs(steps.index(s) - here), s)):
            if s != step:
                init = self.cached(run, layer, method, seed, s)
                if init is not None:
                    return s, init
        return None, None

    def layout(self, run: str, layer: str, method: str, seed: int, step: int) -> tuple[np.ndarray | None, dict]:
        """The layout of one step: cached, else provisional from the nearest cached step.

        Returns ``(None, meta)`` while the sequence has no cached step to start
        from yet (its job is queued; the caller shows progress and asks again).
        A provisional layout is a job on the compute runner, started from the
        nearest step cached when it was first asked for; until it is done the
        answer is ``(None, meta)`` with ``pending`` (the browser asks again).
        """
        xy = self.cached(run, layer, method, seed, step)
        if xy is not None:
            return xy, {"provisional": False, "aligned_to": None}
        pkey = ("provisional", run, layer, method, seed, step)
        hit = self.state.layouts.get(pkey)
        if hit is None:
            neighbour, init = self._nearest_cached(run, layer, method, seed, step)
            pending = {"provisional": True, "aligned_to": neighbour, "pending": True}
            if init is not None:
                # On the compute runner, not the request's thread: a 100,000-point t-SNE step is a minute.
                # One job per step (a second request joins it); the browser asks again, as while pending.
                job = self.state.compute.get(pkey)
                if job is not None and job.state == "failed" and job.exception is not None:
                    raise job.exception
                self.state.compute.submit(pkey, lambda job: self._provisional(pkey, step, neighbour, init))
            self.start(run, layer, method, seed)
            return None, pending
        self.start(run, layer, method, seed)
        return hit

    def _provisional(self, pkey: tuple, step: int, neighbour: int, init: np.ndarray) -> None:
        _, run, layer, method, seed, _ = pkey
        xy = self._compute(run, layer, method, seed, step, init)[0]
        self.state.layouts.put(pkey, (xy, {"provisional": True, "aligned_to": neighbour}))
