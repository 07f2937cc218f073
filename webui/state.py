"""The app's in-memory state: one cache class and one bounded job runner, kept on ``app.extensions``.

Nothing here is module-global: two apps (tests, two databases) never share a
cached answer, a model or a job.

- ``Cache`` (``deepviz.cache``, the one cache class of the project): a
  thread-safe least-recently-used map bounded by entries and by bytes (each
  cache's ``<KIND>_CACHE_BYTES`` in the config), with
  ``get_or_compute`` computing a missing value at most once at a time per key.
- ``JobRunner``: a fixed number of worker threads and a bounded queue. A job
  is submitted under a key; a key already queued or running returns that job
  instead of a second one. A full queue raises ``Busy`` (HTTP 429), so no
  request can make the server start unbounded work.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from flask import current_app

from deepviz.cache import Cache, check_bytes

from .errors import ApiError


class Busy(ApiError):
    """The server has as much background work queued as it accepts (429)."""

    def __init__(self, message: str):
        super().__init__(message, 429)


@dataclass
class Job:
    """One unit of background work and what it reports while it runs."""

    key: Hashable
    fn: Callable[["Job"], Any]
    state: str = "queued"  # queued | running | done | failed
    done: int = 0
    total: int = 0
    message: str = "queued"
    error: str | None = None
    failed: dict = field(default_factory=dict)  # per-item errors that did not stop the job
    result: Any = None
    exception: BaseException | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        return self.state in ("queued", "running")

    def report(self, done: int, total: int, message: str) -> None:
        self.done, self.total, self.message = done, total, message

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def as_dict(self) -> dict:
        return {"running": self.running, "state": self.state, "done": self.done, "total": self.total,
                "message": self.message, "error": self.error,
                "seconds": round((self.finished or time.time()) - self.started, 1)}


class JobRunner:
    """Fixed worker threads over a bounded queue; jobs deduplicated by key."""

    def __init__(self, name: str, workers: int, max_queued: int, keep: int = 256):
        self.name, self.workers, self.max_queued = name, workers, max_queued
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()  # active ones and the last `keep` finished
        self._keep = keep
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def get(self, key) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def active(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.running]

    def submit(self, key, fn: Callable[[Job], Any], *, admit: Callable[[list[Job]], None] | None = None) -> Job:
        """Queue ``fn(job)`` under ``key`` unless a job of that key is queued or running (then return it).

        ``admit(active_jobs)`` may raise to refuse a new job (e.g. a cap on distinct seeds).
        """
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.running:
                return job
            active = [j for j in self._jobs.values() if j.running]
            if admit is not None:
                admit(active)
            if len(active) >= self.workers + self.max_queued:
                raise Busy(f"The server is busy: {len(active)} {self.name} jobs are running or queued "
                           f"(at most {self.workers} at once and {self.max_queued} waiting). "
                           "Wait for them to finish and try again.")
            job = Job(key, fn)
            self._jobs[key] = job
            self._jobs.move_to_end(key)
            self._trim()
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"deepviz-{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._queue.put(job)
        return job

    def cancel(self, job: Job) -> bool:
        """Drop a job that has not started yet; False when it already runs."""
        with self._lock:
            if job.state != "queued":
                return False
            self._finish(job, "failed", error="cancelled")
            return True

    def _trim(self) -> None:
        finished = [k for k, j in self._jobs.items() if not j.running]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[key]

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished = state, error, time.time()
        if state == "done":
            job.message = "done"
        job._event.set()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            with self._lock:
                if job.state != "queued":  # cancelled while it waited
                    continue
                job.state, job.message = "running", "running"
            try:
                job.result = job.fn(job)
            except BaseException as exc:  # reported through the job; the worker goes on
                job.exception = exc
                self._finish(job, "failed", f"{type(exc).__name__}: {exc}")
            else:
                self._finish(job, "done")


def cache_of(config, kind: str) -> Cache:
    """The ``kind`` cache (MODEL, RESULT, LAYOUT, HEAVY), bounded by ``<kind>_CACHE_SIZE`` entries and
    ``<kind>_CACHE_BYTES`` bytes."""
    return Cache(int(config[f"{kind}_CACHE_SIZE"]), max_bytes=check_bytes(config[f"{kind}_CACHE_BYTES"], f"{kind}_CACHE_BYTES"))


def state() -> "AppState":
    return current_app.extensions["deepviz"]


TILE_CACHE_BYTES = 64 * 2**20  # PNG tiles of thumbnails; a 100,000-image mosaic at 4 px is ~0.4 MB


@dataclass
class AppState:
    """Everything an app keeps in memory, built once by ``create_app`` from its config."""

    models: Cache  # rebuilt models by (run, step)
    results: Cache  # small answers: Inspect results, neighbours, cluster labels
    layouts: Cache  # projection layouts, stored and provisional
    heavy: Cache  # large arrays: search indexes, sprite sheets
    jobs: JobRunner  # background sequences the UI polls: projections, layer quality
    compute: JobRunner  # computations a request waits for: clustering
    sql: JobRunner
    compute_wait_s: float = 60.0
    tiles: Cache = field(default_factory=lambda: Cache(4096, max_bytes=TILE_CACHE_BYTES))  # the mosaic's tiles (webui.tiles)

    @classmethod
    def from_config(cls, config) -> "AppState":
        return cls(
            models=cache_of(config, "MODEL"),
            results=cache_of(config, "RESULT"),
            layouts=cache_of(config, "LAYOUT"),
            heavy=cache_of(config, "HEAVY"),
            jobs=JobRunner("background", int(config["JOB_WORKERS"]), int(config["JOB_QUEUE"])),
            compute=JobRunner("compute", int(config["COMPUTE_WORKERS"]), int(config["COMPUTE_QUEUE"])),
            compute_wait_s=float(config["COMPUTE_WAIT_S"]),
            sql=JobRunner("SQL", int(config["SQL_WORKERS"]), int(config["SQL_QUEUE"]), keep=0),
        )

    def computed(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()``'s value, cached in ``results``, computed on the ``compute`` runner (bounded: a full queue
        is a 429; deduplicated: requests for one key share one computation) while the request waits."""

        def run():
            job = self.compute.get(key)
            if job is None or job.state == "failed":
                job = self.compute.submit(key, lambda job: build())
            if not job.wait(self.compute_wait_s):
                raise ApiError(f"Still computing after {self.compute_wait_s:g} s; ask again in a moment "
                               "(the computation goes on).", 503)
            if job.exception is not None:
                raise job.exception
            return job.result

        return self.results.get_or_compute(key, run)[0]
