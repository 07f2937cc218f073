"""Clustering on the app's background runner: one de-duplicated job per (run, step, layer, method, parameters, seed).

A route never clusters on its own thread and never waits for a clustering: it
answers with the labels when they are cached, else queues the job (or joins
the one already queued under the same key) and answers 202 with the job's id
and progress; the browser asks again. The purity timeline is one job over the
run's steps that clusters each step through the same per-step cache entries,
so a step clustered for the timeline is not clustered again for its own panel,
and the other way round (``Cache.get_or_compute`` computes a key once at a time).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from deepviz import StatsDB
from deepviz.analysis import clusters as C

from .state import AppState, Job

log = logging.getLogger(__name__)


def job_id(key: tuple) -> str:
    """A short stable id for a job key, shown to the browser (the key itself holds the run id and parameters)."""
    return hashlib.sha1(repr(key).encode()).hexdigest()[:16]


def pending_meta(job: Job) -> dict:
    return {"pending": True, "job": job_id(job.key), **{k: v for k, v in job.as_dict().items() if k != "running"}}


class ClusterJobs:
    """Cluster labels of one ``StatsDB``, computed on the app's ``compute`` runner and kept in its ``results`` cache."""

    def __init__(self, stats: StatsDB, app_state: AppState):
        self.db, self.state = stats, app_state

    @staticmethod
    def key(run: str, step: int, layer: str, method: str, params: tuple, seed: int) -> tuple:
        return ("clusters", run, step, layer, method, params, seed)

    def _fit(self, key: tuple) -> np.ndarray:
        _, run, step, layer, method, params, seed = key

        def fit() -> np.ndarray:
            X = self.db.activations(step, layer, run)
            labels = C.kmeans(X, *params, random_state=seed) if method == "kmeans" else C.hdbscan(X, *params)
            return np.asarray(labels, dtype=np.int32)

        return self.state.results.get_or_compute(key, fit)[0]

    def labels(self, run, step, layer, method, params, seed) -> tuple[np.ndarray | None, Job | None]:
        """``(labels, None)`` when cached; else ``(None, job)``, the job computing them (queued now if needed).

        A job that failed raises its error (a missing or corrupt snapshot says so, as a direct read would).
        """
        key = self.key(run, step, layer, method, params, seed)
        hit = self.state.results.get(key)
        if hit is not None:
            return hit, None
        job = self.state.compute.get(key)
        if job is not None and job.state == "failed" and job.exception is not None:
            raise job.exception
        return None, self.state.compute.submit(key, lambda job: self._fit(job.key))

    def purity(self, run, layer, method, params, seed) -> tuple[list, list, dict, Job | None]:
        """The run's steps, purity per step (``None`` where not computed or failed), the steps' errors,
        and the job still at work (or None)."""
        steps = self.db.steps(run)
        key = ("purity", run, layer, method, params, seed)
        job = self.state.compute.get(key)
        errors = {str(s): msg for s, msg in (job.failed.items() if job else ())}
        values = []
        for s in steps:
            labels = self.state.results.get(self.key(run, s, layer, method, params, seed))
            try:
                values.append(None if labels is None else float(C.purity(labels, self.db.predictions(s, run)["label"])))
            except (LookupError, OSError, ValueError) as exc:  # the step's predictions unreadable: a gap, listed
                errors[str(s)] = str(exc)
                values.append(None)
        missing = [s for s, v in zip(steps, values) if v is None and str(s) not in errors]
        if not missing:
            return steps, values, errors, None
        return steps, values, errors, self.state.compute.submit(key, lambda job: self._sequence(job, missing))

    def _sequence(self, job: Job, steps: list[int]) -> None:
        _, run, layer, method, params, seed = job.key
        job.total = len(steps)
        for i, step in enumerate(steps):
            try:
                self._fit(self.key(run, step, layer, method, params, seed))
            except (LookupError, OSError, ValueError) as exc:
                # One unreadable step leaves a gap in the line, not an error for the whole chart.
                job.failed[step] = str(exc)
                log.warning("clustering of %s step %s failed: %s", job.key, step, exc)
            job.report(i + 1, len(steps), f"clustered {i + 1} of {len(steps)} steps")
