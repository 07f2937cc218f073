"""One writer per run: an exclusive ``flock`` on ``_locks/run_id=<run_id>.lock``.

The operating system releases the lock when its process exits, killed or not,
so a crash leaves no stale lock on a local disk. The file keeps the holder's
pid, host and start time, for the message a second writer gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from ..errors import RunLockedError


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
            f.seek(0)
            holder = f.read()
            f.close()
            raise RunLockedError(self._message(holder)) from None
        except BaseException:
            f.close()
            raise
        f.seek(0)
        f.truncate()
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        f.write(json.dumps(me) + "\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _message(self, holder_text: str) -> str:
        try:
            holder = json.loads(holder_text)
            who = f"pid {holder['pid']} on host {holder['host']}, since {holder['started_at']}"
            pid, host = holder["pid"], holder["host"]
        except (ValueError, KeyError, TypeError):
            who, pid, host = "a process that has not written its details yet", "<pid>", "its host"
        return (
            f"Run {self.run_id!r} is already being written by another process ({who}). A run takes one writer "
            "at a time: wait for that training to end, or train into a new run. If that process is hung, stop it "
            f"(`kill {pid}` on {host}): its lock is released when it exits. A lock left by a machine that "
            f"crashed while the db was on a network filesystem can be broken by deleting {self.path}."
        )
