"""``BackgroundWriter``: a snapshot's device-to-host copies and writes, on a thread of their own, behind a bounded queue.

The training thread hands each write over as a job and goes on; it waits only
while the queue already holds ``size`` jobs. Jobs run one at a time in the
order given, so a step's metrics are written after its snapshot. What a job
raises is kept and raised again on the training thread at its next call
(:meth:`BackgroundWriter.check`), so a failure is not lost with the thread.
torch-free: the jobs bring what they need.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

__all__ = ["BackgroundWriter", "MAX_QUEUE"]

#: The most jobs a queue may hold: each holds a whole snapshot's arrays, so the bound is one of memory.
MAX_QUEUE = 64


class BackgroundWriter:
    """Run jobs in order on one daemon thread, started at the first job and stopped by :meth:`close`."""

    def __init__(self, size: int, name: str = "deepviz-writer"):
        self.size = size
        self.name = name
        self._queue: queue.Queue = queue.Queue(size)
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self._submitted = 0
        self._finished = 0
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> int:
        """Queue ``job`` (waiting while the queue is full); returns its ticket, for :meth:`wait`."""
        self.check()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._submitted += 1
        self._queue.put((self._submitted, job))
        return self._submitted

    def wait(self, ticket: int | None = None) -> None:
        """Wait until the job ``ticket`` (every job given so far, when None) has run; then :meth:`check`."""
        target = self._submitted if ticket is None else ticket
        with self._done:
            self._done.wait_for(lambda: self._finished >= target)
        self.check()

    def check(self) -> None:
        """Raise here what a job raised (the first such error, once)."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Run every queued job, then stop the thread; a later :meth:`submit` starts a new one."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self.check()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            ticket, job = item
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread, raised there
                self._error = self._error or exc
            finally:
                with self._done:
                    self._finished = ticket
                    self._done.notify_all()
