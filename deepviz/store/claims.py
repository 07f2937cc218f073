"""A snapshot's commit on object storage, where there is no rename and no lock: claim, write in place, marker last.

1. **Claim.** The writer creates ``_claims/run_id=<run>/step=<step>.json``
   (its pid, host, start time) with a conditional put (``If-None-Match: *``).
   Only one writer of a step can: a second one stops with ``RunLockedError``
   naming the first, before it writes anything. A claim is never removed once
   its step is committed, so no later writer can claim a committed step.
2. **Write in place.** Each table's file goes straight to its final key
   (``<table>/run_id=<run>/step=<step>/...``): an object appears whole or not
   at all, and readers ignore a step without its marker.
3. **Commit.** The ``steps`` row, the commit marker, is put last, again with
   ``If-None-Match: *``: a step is committed exactly once.

A failure before the marker removes what this writer wrote and its claim, so
the step can be written again. A writer killed in between leaves a claim and
some files of an uncommitted step: invisible to readers, and removed only by
``deepviz gc`` (``store.gc``), never by a writer or a reader.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import RunLockedError
from .codec import write_parquet
from .layout import Layout
from .remote import ObjPath


def holder_details() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _claim_message(run_id: str, step: int, claim: ObjPath) -> str:
    try:
        holder = json.loads(claim.read_bytes())
        who = f"pid {holder['pid']} on host {holder['host']}, since {holder['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        who = "a writer whose details cannot be read"
    return (
        f"Step {step} of run {run_id!r} is already claimed by another writer ({who}). On object storage each "
        "step has one writer: two processes are writing this run. Stop one of them, or train into a new run. If "
        f"that writer crashed, `deepviz gc {claim.parent.parent.parent}` removes its unfinished steps and claims "
        "(those older than --older-than)."
    )


class ClaimedStep:
    """One snapshot of a run on object storage: claimed, then written in place, then committed by its marker."""

    def __init__(self, layout: Layout, run_id: str, step: int, on_written: Callable):
        self.layout = layout
        self.run_id = run_id
        self.step = step
        self.claim = layout.claim_file(run_id, step)
        self.tables: list[str] = []
        self.written: list[ObjPath] = []
        self._marker: pa.Table | None = None
        self._on_written = on_written
        self._held = False  # the claim is ours and the step not committed

    def acquire(self) -> None:
        if not self.claim.put_if_absent(json.dumps(holder_details()).encode()):
            raise RunLockedError(_claim_message(self.run_id, self.step, self.claim))
        self._held = True

    def write(self, table: S.Table, name: str, arrow: pa.Table, vector_columns: Iterable[str] = ()) -> None:
        if table is S.STEPS:
            self._marker = arrow  # put by commit(), last
            return
        path = self.layout.step_dir(table, self.run_id, self.step) / name
        self.written.append(path)
        write_parquet(arrow, path, vector_columns)
        self._on_written(path)

    def write_state(self, state: bytes) -> None:
        path = self.layout.state_file(self.run_id, self.step)
        self.written.append(path)
        path.write_bytes(state)
        self._on_written(path)

    def commit(self) -> None:
        marker = self.layout.file(S.STEPS, self.run_id, self.step)
        sink = pa.BufferOutputStream()
        pq.write_table(self._marker, sink, compression="zstd")
        if not marker.put_if_absent(sink.getvalue().to_pybytes()):
            # Our claim was removed (a `deepviz gc` with a short --older-than) and another writer committed.
            self._held = False  # its files and claim now: not ours to remove
            raise RunLockedError(
                f"Step {self.step} of run {self.run_id!r} was committed by another writer while this one wrote it. "
                "Two processes are writing this run: stop one of them."
            )
        self._held = False
        self._on_written(marker)

    def abort(self) -> None:
        """Remove what this writer wrote of an uncommitted step, and its claim, so the step can be written again."""
        if not self._held:
            return
        for path in self.written:
            path.unlink(missing_ok=True)
        self.claim.unlink(missing_ok=True)
        self._held = False
