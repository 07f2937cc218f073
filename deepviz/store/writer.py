"""``StatsWriter``: runs, and snapshots staged in full then committed at once, one writer per run.

Atomicity. A snapshot is written into ``_staging/<run>--<step>--<id>/`` as
complete Parquet files, then each table's step folder is moved into place with
one ``os.rename`` (atomic on POSIX), and the ``steps`` folder goes last: it is
the commit marker. Readers only show steps that have a ``steps`` row. A process
killed in the middle leaves at worst staging files and step folders without a
``steps`` row; both are invisible to readers and are removed the next time the
run is opened for writing (``open_run``).

One writer per run. Every write of a run first takes the run's lock
(``lock.RunLock``): a second process writing the same run fails at once, naming
the holder. So the clean-up in ``open_run``, done under the lock, can never
remove a live writer's staging, and a failed commit's rollback removes only
the folders this writer moved in.

On object storage (``s3://bucket/prefix``) there is neither a rename nor a
lock: each step is claimed, written in place and committed by a conditional
put of its marker (``claims.ClaimedStep``); nothing is cleaned but by
``deepviz gc``. See docs/object-storage.md.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import ConfigurationError, NotFoundError
from . import tables
from .claims import ClaimedStep
from .codec import publish, read, write_parquet
from .layout import DEFAULT_DB, Layout, as_root, check_layer_name, check_version, remove_stale_temps
from .lock import RunLock
from .remote import ObjPath
from .thumbs import PROBE_ROW_GROUP

#: The order a snapshot's folders are moved into place: ``steps``, the commit marker, last.
COMMIT_ORDER = [t for t in S.CORE_TABLES if t.snapshot and t is not S.STEPS] + [S.STEPS]


class _Stage:
    """The staging folder of one snapshot: one sub-folder per table, each moved in whole by the commit.

    Staged flat, few folders to create and remove: folder operations dominate
    the cost of writing a small snapshot.
    """

    def __init__(self, root: Path, on_written: Callable[[Path], None]):
        self.root = root
        self.tables: list[str] = []
        self._on_written = on_written

    def write(self, table: S.Table, name: str, arrow, vector_columns: Iterable[str] = ()) -> None:
        folder = self.root / table.name
        if table.name not in self.tables:
            folder.mkdir(parents=True)
            self.tables.append(table.name)
        path = folder / name
        write_parquet(arrow, path, vector_columns)
        self._on_written(path)

    def write_state(self, state: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.state_file
        path.write_bytes(state)
        self._on_written(path)

    @property
    def state_file(self) -> Path:
        return self.root / "state.pt"


class StatsWriter:
    """Writes runs and atomic snapshots into a database folder."""

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        self.root = as_root(path, ttl_s=0)  # a writer lists afresh each time
        #: On object storage: steps are claimed one by one instead of the run being locked.
        self.remote = isinstance(self.root, ObjPath)
        self.layout = Layout(self.root)
        self._dirs: set[Path] = set()  # folders known to exist
        self._locks: dict[str, RunLock] = {}
        self._check_writable()
        #: The db's schema version: what it was created with, and the format written into it (``tables``).
        self.version = check_version(self.root, create=True)
        remove_stale_temps(self.root.glob(".*.tmp"))  # a version file whose writer was killed

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{uuid.uuid4().hex}.tmp"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigurationError(
                f"The stats db folder {str(self.root)!r} is not writable ({exc.strerror or exc}). "
                "Pass a folder you can write to, e.g. StatsCallback('./stats_db', ...) or --db ./stats_db."
            ) from exc

    def _on_written(self, path: Path) -> None:
        """Called after each staged file and each folder moved in at commit: the seam of the fault tests."""

    # -- the run lock

    def lock_run(self, run_id: str) -> None:
        """Become the one writer of ``run_id``, or raise ``RunLockedError`` at once naming the one there is.

        Every write of a run takes it; it is held until ``close()`` or the end of the process. On object
        storage there is no lock: each step is claimed by its writer (``claims``).
        """
        if self.remote:
            return
        lock = self._locks.get(run_id)
        if lock is None:
            lock = RunLock(self.layout.lock_file(run_id), run_id)
            lock.acquire()
            self._locks[run_id] = lock

    def close(self) -> None:
        """Release the run locks this writer holds (the end of its process releases them too)."""
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()

    def __enter__(self) -> StatsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs

    def write_run(self, run: Mapping[str, Any]) -> None:
        """Write (or atomically replace) a run's metadata row."""
        row = {name: run.get(name) for name in S.RUNS.column_names}
        row["schema_version"] = self.version
        self.lock_run(row["run_id"])
        publish(tables.run(row), self.layout.file(S.RUNS, row["run_id"]), "run")

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's metadata row as written, or None when the run has none."""
        path = self.layout.file(S.RUNS, run_id)
        if not path.exists():
            return None
        return read(path).to_pylist()[0]

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change some fields of a written run row (e.g. ``ended_at``), atomically."""
        row = self.read_run(run_id)
        if row is None:
            raise NotFoundError(f"Run {run_id!r} has no metadata row in {str(self.root)!r} to update.")
        unknown = set(fields) - set(S.RUNS.column_names)
        if unknown:
            raise ConfigurationError(f"Unknown run fields {sorted(unknown)}. Allowed: {', '.join(S.RUNS.column_names)}.")
        row.update(fields)
        self.write_run(row)

    def write_probes(self, run_id: str, probe_ids, labels, class_names, thumbnails, inputs: np.ndarray) -> None:
        self.lock_run(run_id)
        # Row group by row group, as ``thumbnails`` (any iterable) yields them: at 100,000 images the whole table
        # was a gigabyte on top of the probe. Bounded row groups: one thumbnail is read with its row group (thumbs.py).
        parts = tables.probes(run_id, probe_ids, labels, class_names, thumbnails, inputs, PROBE_ROW_GROUP, self.version)
        publish(parts, self.layout.file(S.PROBES, run_id), "probes", ("thumbnail", "input"))
        # Arrow's allocator keeps what it freed for reuse; give the probes' half-gigabyte (at 100k images) back
        pa.default_memory_pool().release_unused()

    def open_run(self, run_id: str) -> list[int]:
        """Take the run's lock, clear what a crashed writer of it left, and return its committed steps.

        On object storage nothing is cleared (no lock tells a dead writer from a live one): ``deepviz gc`` does it.
        """
        if self.remote:
            return self.layout.committed_steps(run_id)
        self.lock_run(run_id)
        committed = set(self.layout.committed_steps(run_id))
        for table in COMMIT_ORDER[:-1]:
            for step, folder in self.layout.step_dirs(table, run_id).items():
                if step not in committed:
                    shutil.rmtree(folder, ignore_errors=True)
        for step, path in self.layout.state_files(run_id).items():
            if step not in committed:
                path.unlink(missing_ok=True)
        # Under the lock no other process writes this run: its staging and its
        # tables' temporary files are a dead writer's. Derived tables are written
        # by readers too (the web UI), so only their old temporary files go.
        for folder in self.layout.stage_dirs(run_id):
            shutil.rmtree(folder, ignore_errors=True)
        for table in S.CORE_TABLES:
            remove_stale_temps(self.layout.run_dir(table, run_id).rglob(".*.tmp"), older_than_s=0)
        for table in S.DERIVED_TABLES.values():
            remove_stale_temps(self.layout.run_dir(table, run_id).rglob(".*.tmp"))
        return sorted(committed)

    # -- snapshots

    def write_snapshot(
        self,
        run_id: str,
        step: int,
        *,
        epoch: int,
        trigger: str,
        probe_ids: np.ndarray,
        labels: np.ndarray,
        probs: np.ndarray,
        loss: np.ndarray,
        activations: Mapping[str, np.ndarray],
        weights: Mapping[str, np.ndarray],
        metrics: Mapping[str, float],
        nonfinite_layers: Iterable[str] = (),
        state: bytes | None = None,
        activation_dtype: str = "float16",
    ) -> None:
        """Write one snapshot so that it becomes visible all at once or not at all."""
        step = int(step)
        self.lock_run(run_id)
        self._refuse_written(run_id, step)
        if activation_dtype not in tables.ACTIVATION_DTYPES:
            raise ConfigurationError(f"activation_dtype must be one of {', '.join(tables.ACTIVATION_DTYPES)}; got {activation_dtype!r}.")
        if self.remote:
            stage = ClaimedStep(self.layout, run_id, step, self._on_written)
            stage.acquire()
        else:
            stage = _Stage(self.layout.stage_dir(run_id, step), self._on_written)
        try:
            predictions = tables.predictions(run_id, step, probe_ids, labels, probs, loss)
            stage.write(S.PREDICTIONS, "predictions.parquet", predictions, ("probs",))
            for layer, values in activations.items():
                table = tables.activations(run_id, step, check_layer_name(layer), probe_ids, values, activation_dtype,
                                           self.version)
                stage.write(S.ACTIVATIONS, f"{layer}.parquet", table, ("vector",))
            if weights:
                stage.write(S.WEIGHTS, "weights.parquet", tables.weights(run_id, step, weights), ("values",))
            if metrics:
                stage.write(S.METRICS, "0.parquet", tables.metrics(run_id, step, metrics))
            if state is not None:
                stage.write_state(state)
            marker = tables.step_row(
                run_id, step, epoch=epoch, trigger=trigger, correct=predictions.column("correct").to_numpy(zero_copy_only=False),
                loss=loss, layers=activations, nonfinite_layers=nonfinite_layers, has_state=state is not None,
            )
            stage.write(S.STEPS, "step.parquet", marker)
            if self.remote:
                stage.commit()
            else:
                self._commit(stage, run_id, step)
        finally:
            if self.remote:
                stage.abort()  # nothing to do once committed
            else:
                shutil.rmtree(stage.root, ignore_errors=True)

    def _refuse_written(self, run_id: str, step: int) -> None:
        if (self.layout.step_dir(S.STEPS, run_id, step) / "step.parquet").exists():
            raise ConfigurationError(f"Step {step} of run {run_id!r} is already written; a step is never written twice.")

    def _commit(self, stage: _Stage, run_id: str, step: int) -> None:
        """Move each staged folder into place, ``steps`` last; on failure undo only what was moved here."""
        self._refuse_written(run_id, step)  # again: it is the commit that must never overwrite
        moved: list[Path] = []
        try:
            for table in COMMIT_ORDER:
                if table.name not in stage.tables:
                    continue
                dst = self.layout.step_dir(table, run_id, step)
                self._ensure_dir(dst.parent)
                if table is S.STEPS:
                    # The state dict goes in before the commit marker, so a
                    # committed step with has_state=True always has its file.
                    moved += self._move_state(stage, run_id, step)
                os.rename(stage.root / table.name, dst)  # fails on a non-empty folder already there
                moved.append(dst)
                if table is S.STEPS:
                    moved.clear()  # committed: nothing to undo any more
                self._on_written(dst)
            # No fsync: renames make a snapshot atomic against a killed process;
            # an fsync per snapshot (~10 ms here) would guard only against
            # power loss, which a monitoring database can afford to lose.
        except BaseException:
            for path in reversed(moved):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            raise

    def _move_state(self, stage: _Stage, run_id: str, step: int) -> list[Path]:
        if not stage.state_file.exists():
            return []
        dst = self.layout.state_file(run_id, step)  # one already there is a leftover: the step is not committed
        self._ensure_dir(dst.parent)
        os.replace(stage.state_file, dst)
        return [dst]

    def _ensure_dir(self, path: Path) -> None:
        if path not in self._dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path)

    def add_metrics(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        """Add metrics to a committed step (e.g. train loss, known only at epoch end)."""
        if not metrics:
            return
        self.lock_run(run_id)
        final = self.layout.file(S.METRICS, run_id, int(step), uuid.uuid4().hex[:8])
        publish(tables.metrics(run_id, int(step), metrics), final, "metrics")

    def record_checkpoint(self, run_id: str, step: int, path: str) -> None:
        self.lock_run(run_id)
        final = self.layout.file(S.CHECKPOINTS, run_id, int(step), uuid.uuid4().hex[:8])
        publish(tables.checkpoint(run_id, step, path), final, "checkpoint")
