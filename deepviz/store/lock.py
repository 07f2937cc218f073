"""One writer per run: an exclusive ``flock`` on ``_locks/run_id=<run_id>.lock``.

The operating system releases the lock when its process exits, killed or not,
so a crash leaves no stale lock on a local disk. The file keeps the holder's
pid, host and start time, for the message a second writer gets: written in one
write just after the lock is taken, and emptied on release. A second writer
that comes in between, or reads the details of a holder killed before it could
empty the file (a dead pid on this host), waits up to ``DETAILS_WAIT_S`` for
the live holder's details.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import RunLockedError

#: How long a refused writer waits for the holder's details to be written.
DETAILS_WAIT_S = 0.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _holder(f) -> dict | None:
    """The live holder's details from the lock file, waiting briefly for them; None if they never come."""
    deadline = time.monotonic() + DETAILS_WAIT_S
    while True:
        f.seek(0)
        try:
            holder = json.loads(f.readline())
            fresh = holder["host"] != socket.gethostname() or _alive(int(holder["pid"]))
        except (ValueError, KeyError, TypeError):
            holder, fresh = None, False
        if fresh or time.monotonic() > deadline:
            return holder if fresh else None
        time.sleep(0.01)


class RunLock:
    def __init__(self, path: Path, run_id: str):
        self.path = path
        self.run_id = run_id
        self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock now, or raise ``RunLockedError`` at once naming its holder."""
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # a file object: closed, and so unlocked, if dropped
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(f)
            f.close()
            raise RunLockedError(self._message(holder)) from None
        except BaseException:
            f.close()
            raise
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(f.fileno(), 0)
        os.pwrite(f.fileno(), (json.dumps(me) + "\n").encode(), 0)  # one write: a reader sees all of it or none
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            os.ftruncate(self._file.fileno(), 0)  # no stale details for the next refused writer to name
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _message(self, holder: dict | None) -> str:
        try:
            who = f"pid {holder['pid']} on host {holder['host']}, since {holder['started_at']}"
            pid, host = holder["pid"], holder["host"]
        except (KeyError, TypeError):
            who, pid, host = "a process that has not written its details yet", "<pid>", "its host"
        return (
            f"Run {self.run_id!r} is already being written by another process ({who}). A run takes one writer "
            "at a time: wait for that training to end, or train into a new run. If that process is hung, stop it "
            f"(`kill {pid}` on {host}): its lock is released when it exits. A lock left by a machine that "
            f"crashed while the db was on a network filesystem can be broken by deleting {self.path}."
        )
