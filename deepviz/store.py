"""The stats database: the only code that touches Parquet or DuckDB.

``StatsWriter`` writes runs and snapshots; ``StatsDB`` reads them back as numpy
arrays and pandas frames, and runs SQL over views of the tables.

Atomicity. A snapshot is written into ``_staging/<unique>/`` as complete
Parquet files, then each table's step folder is moved into place with one
``os.rename`` (atomic on POSIX), and the ``steps`` folder goes last: it is the
commit marker. Readers only show steps that have a ``steps`` row. A process
killed in the middle leaves at worst staging files and step folders without a
``steps`` row; both are invisible to readers and are removed the next time the
run is opened for writing (``StatsWriter.open_run``).

Safety. ``StatsDB`` resolves every path it reads and refuses one that leads
outside the db folder (a symlink planted in a shared or unpacked db). The SQL
views list only readable files of committed steps, so one corrupt file leaves
its step out instead of failing every query; ``sandboxed_sql`` runs one
read-only SELECT that cannot reach files outside the db.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema as S
from .errors import ConfigurationError, CorruptDataError, NotFoundError, QueryError, SchemaVersionError

__all__ = ["StatsDB", "StatsWriter", "Snapshot", "DEFAULT_DB"]

DEFAULT_DB = "stats_db"
STAGING = "_staging"
_STEP_DIR = re.compile(r"^step=(\d+)$")
_RUN_DIR = re.compile(r"^run_id=(.+)$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _vector_column(arr: np.ndarray, dtype) -> pa.Array:
    """(N, ...) numpy -> a list column of flattened rows, converted in numpy first (faster than in arrow)."""
    arr = np.asarray(arr)
    arr = np.ascontiguousarray(arr.reshape(len(arr), int(np.prod(arr.shape[1:], dtype=np.int64))), dtype=dtype)
    n, d = arr.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d)
    return pa.ListArray.from_arrays(offsets, pa.array(arr.reshape(-1)))


def _list_to_numpy(column: pa.ChunkedArray | pa.Array, dtype=np.float32) -> np.ndarray:
    """A list column of equal-length rows -> (N, D) numpy, without a Python loop."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    if n == 0:
        return np.zeros((0, 0), dtype=dtype)
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    width = int(offsets[1] - offsets[0])
    if not np.all(np.diff(offsets) == width):
        raise CorruptDataError("rows of a vector column have different lengths")
    return values.reshape(n, width).astype(dtype, copy=False)


def _write_parquet(table: pa.Table, path: Path, vector_columns: Iterable[str] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = set(vector_columns)
    # Dictionary encoding of float vectors halves write speed for no gain:
    # use it only for the small repeated string columns.
    dictionary = [c for c in table.column_names if c not in vectors and pa.types.is_string(table.schema.field(c).type)]
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=dictionary,
        write_statistics=[c for c in table.column_names if c not in vectors],
    )


def _publish(table: pa.Table, final: Path, tmp_prefix: str, vector_columns: Iterable[str] = ()) -> None:
    """Write ``table`` to ``final`` atomically: a hidden temporary name, then a rename.

    A failed write (a full disk) removes its temporary file, so nothing
    partial stays behind; a folder it had to create stays only if something
    else is in it.
    """
    tmp = final.with_name(f".{tmp_prefix}-{uuid.uuid4().hex}.tmp")
    created = not final.parent.exists()
    try:
        _write_parquet(table, tmp, vector_columns)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                final.parent.rmdir()
        raise


def check_layer_name(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ConfigurationError(
            f"Layer name {name!r} cannot be used as a file name. Allowed: letters, digits, '_', '.', '-'."
        )
    return name


def new_run_id() -> str:
    return _now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


# --------------------------------------------------------------------------- writing


class StatsWriter:
    """Writes runs and atomic snapshots into a database folder."""

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        self.root = Path(path)
        self._dirs: set[Path] = set()  # folders known to exist
        self._check_writable()
        _check_version(self.root, create=True)

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{uuid.uuid4().hex}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigurationError(
                f"The stats db folder {str(self.root)!r} is not writable ({exc.strerror or exc}). "
                "Pass a folder you can write to, e.g. StatsCallback('./stats_db', ...) or --db ./stats_db."
            ) from exc

    # -- runs

    def write_run(self, run: Mapping[str, Any]) -> None:
        """Write (or atomically replace) a run's metadata row."""
        row = {name: run.get(name) for name, _, _ in S.RUNS.columns}
        row["schema_version"] = S.SCHEMA_VERSION
        table = pa.Table.from_pylist([row], schema=S.RUNS.schema)
        _publish(table, self.root / "runs" / f"run_id={row['run_id']}" / "run.parquet", "run")

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's metadata row as written, or None when the run has none."""
        path = self.root / "runs" / f"run_id={run_id}" / "run.parquet"
        if not path.exists():
            return None
        return _read(path).to_pylist()[0]

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change some fields of a written run row (e.g. ``ended_at``), atomically."""
        row = self.read_run(run_id)
        if row is None:
            raise NotFoundError(f"Run {run_id!r} has no metadata row in {str(self.root)!r} to update.")
        unknown = set(fields) - set(S.RUNS.schema.names)
        if unknown:
            raise ConfigurationError(f"Unknown run fields {sorted(unknown)}. Allowed: {', '.join(S.RUNS.schema.names)}.")
        row.update(fields)
        self.write_run(row)

    def write_probes(self, run_id: str, probe_ids, labels, class_names, thumbnails, inputs: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int32)
        table = pa.table(
            {
                "run_id": pa.array([run_id] * len(labels), pa.string()),
                "probe_id": pa.array(np.asarray(probe_ids, dtype=np.int64)),
                "label": pa.array(labels),
                "class_name": pa.array([class_names[i] for i in labels], pa.string()),
                "thumbnail": pa.array(thumbnails, pa.binary()),
                "input": _vector_column(np.asarray(inputs), np.float32),
            },
            schema=S.PROBES.schema,
        )
        _publish(table, self.root / "probes" / f"run_id={run_id}" / "probes.parquet", "probes", ("thumbnail", "input"))

    def open_run(self, run_id: str) -> list[int]:
        """Prepare to append to ``run_id``: clear crash leftovers, return committed steps."""
        committed = set(_committed_steps(self.root, run_id))
        for table in S.CORE_TABLES:
            if not table.snapshot or table is S.STEPS:
                continue
            run_dir = self.root / table.name / f"run_id={run_id}"
            for step_dir in run_dir.glob("step=*"):
                m = _STEP_DIR.match(step_dir.name)
                if m and int(m.group(1)) not in committed:
                    shutil.rmtree(step_dir, ignore_errors=True)
        states = self.root / "states" / f"run_id={run_id}"
        for f in states.glob("step=*.pt"):
            step = int(f.stem.split("=")[1])
            if step not in committed:
                f.unlink(missing_ok=True)
        for d in (self.root / STAGING).glob(f"{run_id}--*"):
            shutil.rmtree(d, ignore_errors=True)
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
        _after_file=None,
    ) -> None:
        """Write one snapshot so that it becomes visible all at once or not at all.

        ``_after_file`` is a test hook called with each staged file and, while
        committing, with each folder moved into place (the fault-injection
        tests use it to slow the writer down or to be killed at a known point).
        """
        step = int(step)
        if (self.root / "steps" / f"run_id={run_id}" / f"step={step}" / "step.parquet").exists():
            raise ConfigurationError(f"Step {step} of run {run_id!r} is already written; a step is never written twice.")
        dtype = {"float16": np.float16, "float32": np.float32}[activation_dtype]
        stage = self.root / STAGING / f"{run_id}--{step}--{uuid.uuid4().hex[:8]}"
        made: set[Path] = set()
        after = _after_file or (lambda path: None)
        n = len(probe_ids)
        ids = pa.array(np.asarray(probe_ids, dtype=np.int64))
        run_col = pa.array([run_id] * n, pa.string())
        step_col = pa.array(np.full(n, step, dtype=np.int64))

        # Staged flat, one folder per table, each moved in whole by the commit:
        # few folders to create and remove (folder operations dominate the
        # cost of writing a small snapshot).
        def staged(table: S.Table, name: str) -> Path:
            folder = stage / table.name
            if folder not in made:
                folder.mkdir(parents=True)
                made.add(folder)
            return folder / name

        try:
            probs = np.asarray(probs, dtype=np.float32)
            pred = probs.argmax(axis=1).astype(np.int32) if probs.size else np.zeros(n, np.int32)
            labels = np.asarray(labels, dtype=np.int32)
            predictions = pa.table(
                {
                    "run_id": run_col,
                    "step": step_col,
                    "probe_id": ids,
                    "label": pa.array(labels),
                    "pred": pa.array(pred),
                    "probs": _vector_column(probs, np.float32),
                    "loss": pa.array(np.asarray(loss, dtype=np.float32)),
                    "correct": pa.array(pred == labels),
                    "confidence": pa.array(probs.max(axis=1) if probs.size else np.zeros(n, np.float32)),
                },
                schema=S.PREDICTIONS.schema,
            )
            path = staged(S.PREDICTIONS, "predictions.parquet")
            _write_parquet(predictions, path, vector_columns=("probs",))
            after(path)

            act_schema = S.ACTIVATIONS.schema
            if activation_dtype == "float32":
                act_schema = act_schema.set(act_schema.get_field_index("vector"), pa.field("vector", pa.list_(pa.float32())))
            for layer, values in activations.items():
                check_layer_name(layer)
                table = pa.table(
                    {
                        "run_id": run_col,
                        "step": step_col,
                        "layer": pa.array([layer] * n, pa.string()),
                        "probe_id": ids,
                        "vector": _vector_column(np.asarray(values), dtype),
                    },
                    schema=act_schema,
                )
                path = staged(S.ACTIVATIONS, f"{layer}.parquet")
                _write_parquet(table, path, vector_columns=("vector",))
                after(path)

            if weights:
                names = list(weights)
                table = pa.table(
                    {
                        "run_id": pa.array([run_id] * len(names), pa.string()),
                        "step": pa.array(np.full(len(names), step, dtype=np.int64)),
                        "layer": pa.array(names, pa.string()),
                        "shape": pa.array([list(np.shape(weights[k])) for k in names], pa.list_(pa.int32())),
                        "values": pa.array([np.asarray(weights[k], np.float32).ravel() for k in names], pa.list_(pa.float32())),
                    },
                    schema=S.WEIGHTS.schema,
                )
                path = staged(S.WEIGHTS, "weights.parquet")
                _write_parquet(table, path, vector_columns=("values",))
                after(path)

            if metrics:
                self._metrics_table(run_id, step, metrics, staged(S.METRICS, "0.parquet"))

            if state is not None:
                path = stage / "state.pt"
                path.write_bytes(state)
                after(path)

            step_row = {
                "run_id": run_id,
                "step": step,
                "epoch": int(epoch),
                "wall_time": _now(),
                "trigger": trigger,
                "probe_acc": float(np.mean(pred == labels)) if n else float("nan"),
                "probe_loss": float(np.mean(loss)) if n else float("nan"),
                "n_probe": n,
                "layers": list(activations),
                "nonfinite_layers": list(nonfinite_layers),
                "has_state": state is not None,
            }
            path = staged(S.STEPS, "step.parquet")
            _write_parquet(pa.Table.from_pylist([step_row], schema=S.STEPS.schema), path)
            after(path)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise

        # Commit: move each table's step folder into place, ``steps`` last.
        order = [t for t in S.CORE_TABLES if t.snapshot and t is not S.STEPS] + [S.STEPS]
        committed = False
        try:
            for table in order:
                src = stage / table.name
                if src not in made:
                    continue
                dst = self.root / table.name / f"run_id={run_id}" / f"step={step}"
                self._ensure_dir(dst.parent)
                if table is S.STEPS:
                    # The state dict goes in before the commit marker, so a
                    # committed step with has_state=True always has its file.
                    self._move_state(stage, run_id, step)
                os.rename(src, dst)
                committed = table is S.STEPS
                after(dst)
            # No fsync: renames make a snapshot atomic against a killed process;
            # an fsync per snapshot (~10 ms here) would guard only against
            # power loss, which a monitoring database can afford to lose.
        except BaseException:
            if not committed:
                # Roll back the folders already moved, so no half snapshot stays.
                for table in reversed(order):
                    shutil.rmtree(self.root / table.name / f"run_id={run_id}" / f"step={step}", ignore_errors=True)
                (self.root / "states" / f"run_id={run_id}" / f"step={step}.pt").unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _move_state(self, stage: Path, run_id: str, step: int) -> None:
        src = stage / "state.pt"
        if src.exists():
            dst = self.root / "states" / f"run_id={run_id}" / f"step={step}.pt"
            self._ensure_dir(dst.parent)
            os.replace(src, dst)

    def _ensure_dir(self, path: Path) -> None:
        if path not in self._dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path)

    def _metrics_table(self, run_id: str, step: int, metrics: Mapping[str, float], path: Path | None = None):
        names = sorted(metrics)
        table = pa.table(
            {
                "run_id": pa.array([run_id] * len(names), pa.string()),
                "step": pa.array(np.full(len(names), step, dtype=np.int64)),
                "name": pa.array(names, pa.string()),
                "value": pa.array([float(metrics[k]) for k in names], pa.float64()),
            },
            schema=S.METRICS.schema,
        )
        if path is None:
            return table
        _write_parquet(table, path)

    def add_metrics(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        """Add metrics to a committed step (e.g. train loss, known only at epoch end)."""
        if not metrics:
            return
        final = self.root / "metrics" / f"run_id={run_id}" / f"step={int(step)}" / f"{uuid.uuid4().hex[:8]}.parquet"
        _publish(self._metrics_table(run_id, int(step), metrics), final, "metrics")

    def record_checkpoint(self, run_id: str, step: int, path: str) -> None:
        final = self.root / "checkpoints" / f"run_id={run_id}" / f"step={int(step)}" / f"{uuid.uuid4().hex[:8]}.parquet"
        table = pa.Table.from_pylist([{"run_id": run_id, "step": int(step), "path": str(path)}], schema=S.CHECKPOINTS.schema)
        _publish(table, final, "checkpoint")


def _committed_steps(root: Path, run_id: str) -> list[int]:
    steps = []
    for d in (root / "steps" / f"run_id={run_id}").glob("step=*"):
        m = _STEP_DIR.match(d.name)
        if m and (d / "step.parquet").exists():
            steps.append(int(m.group(1)))
    return sorted(steps)


def _check_version(root: Path, create: bool) -> None:
    vfile = root / S.VERSION_FILE
    if vfile.exists():
        try:
            version = int(json.loads(vfile.read_text())["schema_version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"{vfile}: expected JSON with an integer 'schema_version' ({exc}).") from exc
        if version > S.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The stats db {str(root)!r} was written with schema version {version}; this deepviz reads "
                f"schema versions up to {S.SCHEMA_VERSION}. Upgrade deepviz (pip install -U deepviz)."
            )
    elif create:
        tmp = root / f".{S.VERSION_FILE}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps({"schema_version": S.SCHEMA_VERSION}) + "\n")
        os.replace(tmp, vfile)


# --------------------------------------------------------------------------- reading


@dataclass
class Snapshot:
    """What the network made of the probe set at one step. Rows are in probe order."""

    run_id: str
    step: int
    epoch: int
    probe_ids: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    probs_by_image: np.ndarray
    loss: np.ndarray
    correct: np.ndarray
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    nonfinite_layers: list[str] = field(default_factory=list)


def _read(path: Path, columns=None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError as exc:
        # Callers check what may legitimately be absent before reading: a file
        # that vanishes here is a lost part of the db, not an unknown name.
        raise CorruptDataError(f"Missing file {path}: it was deleted or never written. Other steps stay readable.") from exc
    except (pa.ArrowException, OSError) as exc:
        raise CorruptDataError(f"Cannot read {path}: {_reason(exc, path)} The file is truncated or corrupt; other steps stay readable.") from exc


def _reason(exc: BaseException, path: Path) -> str:
    """Arrow's message without the path it repeats (the caller's message names the file once)."""
    text = re.sub(r"^Could not open Parquet input source '[^']*':\s*", "", str(exc).strip())
    text = text.replace(f"'{path}'", "the file").replace(str(path), "the file")
    return text if text.endswith(".") else text + "."


def _inside(root: str, path: Path) -> bool:
    """Does ``path``, with every symlink followed, stay inside the folder ``root`` (itself resolved)?"""
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _parquet_ok(path: Path) -> bool:
    """A cheap validity check: the footer parses (a truncated or garbage file fails it)."""
    try:
        pq.read_metadata(path)
        return True
    except (pa.ArrowException, OSError):
        return False


class StatsDB:
    """Read access to a stats database folder.

    >>> db = StatsDB("stats_db")
    >>> s = db.get_stats(db.steps()[-1])
    >>> s.probs_by_image.shape
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        self.root = Path(path)
        if not self.root.is_dir():
            raise NotFoundError(
                f"No stats db at {str(self.root)!r}. Train with StatsCallback({str(self.root)!r}, ...) "
                "or `deepviz demo` first, or pass the folder that holds it."
            )
        _check_version(self.root, create=False)
        self._real_root = os.path.realpath(self.root)
        self._cache: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self._duck = None
        self._newest: dict[tuple[str, str], tuple[Any, Any]] = {}
        #: Files the last ``connect()`` left out of the SQL views (unreadable or leading out of the db).
        self.skipped_files: list[str] = []

    def _safe(self, path: Path) -> Path:
        """``path`` if it stays inside the db once symlinks are followed; refuse it otherwise.

        A db folder may be shared or unpacked from an archive: a symlink in it
        must not make the UI or the API serve a file from elsewhere.
        """
        if not _inside(self._real_root, path):
            raise CorruptDataError(
                f"Refused to read {path}: it is a link that leads outside the db folder {str(self.root)!r}. "
                "Replace the link with the file itself; other steps stay readable."
            )
        return path

    def _read(self, path: Path, columns=None) -> pa.Table:
        return _read(self._safe(path), columns)

    def __repr__(self) -> str:
        return f"StatsDB({str(self.root)!r})"

    # -- runs

    def run_ids(self) -> list[str]:
        """Run ids, oldest first (run ids start with their start time)."""
        out = []
        for d in (self.root / "runs").glob("run_id=*"):
            m = _RUN_DIR.match(d.name)
            if m and (d / "run.parquet").exists():
                out.append(m.group(1))
        return sorted(out)

    def runs(self):
        """A DataFrame of the runs, newest last, with their step counts and final accuracy."""
        import pandas as pd

        rows = []
        for run_id in self.run_ids():
            try:
                info = self.run_info(run_id)
            except CorruptDataError as exc:
                rows.append({"run_id": run_id, "error": str(exc)})
                continue
            steps = self.steps(run_id)
            readable = [r for r in self._step_rows(run_id) if "error" not in r]
            last = readable[-1] if readable else None
            rows.append(
                {
                    "run_id": run_id,
                    "name": info["name"],
                    "started_at": info["started_at"],
                    "ended_at": info["ended_at"],
                    "model": info["model_class"].rsplit(":", 1)[-1],
                    "dataset": info["dataset"],
                    "n_probe": info["n_probe"],
                    "n_steps": len(steps),
                    "last_step": steps[-1] if steps else None,
                    "final_acc": last["probe_acc"] if last else None,
                }
            )
        cols = ["run_id", "name", "started_at", "ended_at", "model", "dataset", "n_probe", "n_steps", "last_step", "final_acc"]
        frame = pd.DataFrame(rows)
        for c in cols:
            if c not in frame:
                frame[c] = None
        return frame

    def resolve_run(self, run: str | None = None) -> str:
        ids = self.run_ids()
        if run is None:
            if not ids:
                raise NotFoundError(f"The stats db {str(self.root)!r} holds no runs yet.")
            return ids[-1]
        if run in ids:
            return run
        by_name = [r for r in ids if self._run_row(r).get("name") == run]
        if by_name:
            return by_name[-1]
        raise NotFoundError(f"Unknown run {run!r}. Available: {', '.join(ids) or '(none)'}.")

    def _run_row(self, run_id: str) -> dict:
        path = self.root / "runs" / f"run_id={run_id}" / "run.parquet"
        key = ("run", run_id, path.stat().st_mtime_ns if path.exists() else 0)
        if key not in self._cache:
            self._cache[key] = self._read(path).to_pylist()[0]
        return self._cache[key]

    def run_info(self, run: str | None = None) -> dict:
        """The run's metadata: model class and summary, hparams (a dict), dataset, class names, layers."""
        run_id = self.resolve_run(run)
        row = dict(self._run_row(run_id))
        row["hparams"] = json.loads(row["hparams"] or "{}")
        return row

    # -- steps

    def steps(self, run: str | None = None) -> list[int]:
        """Committed snapshot steps of a run (the newest run by default), ascending."""
        return _committed_steps(self.root, self.resolve_run(run))

    def _step_rows(self, run_id: str) -> list[dict]:
        rows = []
        for step in _committed_steps(self.root, run_id):
            path = self.root / "steps" / f"run_id={run_id}" / f"step={step}" / "step.parquet"
            key = ("step", run_id, step)
            if key not in self._cache:
                try:
                    self._cache[key] = self._read(path).to_pylist()[0]
                except CorruptDataError as exc:
                    rows.append({"run_id": run_id, "step": step, "error": str(exc)})
                    continue
            rows.append(self._cache[key])
        return rows

    def step_table(self, run: str | None = None):
        """One row per committed step: epoch, wall time, probe accuracy and loss, metrics, checkpoint."""
        import pandas as pd

        run_id = self.resolve_run(run)
        committed = tuple(_committed_steps(self.root, run_id))
        key = (committed, self._listing("metrics", run_id), self._listing("checkpoints", run_id))

        def build():
            frame = pd.DataFrame(self._step_rows(run_id))
            if frame.empty:
                return frame
            metrics = self.metrics(run_id)
            if not metrics.empty:
                wide = metrics.pivot_table(index="step", columns="name", values="value", aggfunc="last")
                frame = frame.merge(wide, left_on="step", right_index=True, how="left")
            ckpts = self.checkpoints(run_id)
            frame["checkpoint"] = frame["step"].map(ckpts)
            return frame

        # The web UI asks for this on every poll of a run: rebuilt only when a file came or went.
        return self._latest("step_table", run_id, key, build).copy()

    def metrics(self, run: str | None = None):
        """Logged metrics of a run in long format: step, name, value."""
        import pandas as pd

        run_id = self.resolve_run(run)
        committed = set(_committed_steps(self.root, run_id))
        listing = self._listing("metrics", run_id)

        def build():
            rows = []
            for path, _ in listing:
                if int(Path(path).parent.name.split("=")[1]) in committed:
                    try:
                        rows.extend(self._read(Path(path), columns=["step", "name", "value"]).to_pylist())
                    except CorruptDataError:
                        continue
            return pd.DataFrame(rows, columns=["step", "name", "value"])

        return self._latest("metrics", run_id, (tuple(sorted(committed)), listing), build).copy()

    def checkpoints(self, run: str | None = None) -> dict[int, str]:
        """Checkpoint path saved at each step (the last one when several)."""
        run_id = self.resolve_run(run)
        listing = self._listing("checkpoints", run_id)

        def build():
            out = {}
            for path, _ in sorted(listing, key=lambda item: item[1]):  # oldest first: the last one wins
                try:
                    for row in self._read(Path(path)).to_pylist():
                        out[int(row["step"])] = row["path"]
                except CorruptDataError:
                    continue
            return out

        return dict(self._latest("checkpoints", run_id, listing, build))

    def _listing(self, table: str, run_id: str) -> tuple[tuple[str, int], ...]:
        """(path, mtime) of a table's small per-step files: they are only ever added, never changed."""
        out = []
        for path in (self.root / table / f"run_id={run_id}").glob("step=*/*.parquet"):
            try:
                out.append((str(path), path.stat().st_mtime_ns))
            except FileNotFoundError:
                continue
        return tuple(sorted(out))

    def _latest(self, kind: str, run_id: str, key, build):
        """``build()`` once per ``key``; only the newest value of each (kind, run) is kept."""
        slot = (kind, run_id)
        found = self._newest.get(slot)
        if found is not None and found[0] == key:
            return found[1]
        value = build()
        with self._lock:
            self._newest[slot] = (key, value)
        return value

    def _require_step(self, run_id: str, step: int) -> int:
        try:
            step = int(step)
        except (TypeError, ValueError):
            raise ConfigurationError(f"Step must be an integer, got {step!r}.") from None
        steps = _committed_steps(self.root, run_id)
        if step not in steps:
            shown = ", ".join(map(str, steps[:20])) + (", ..." if len(steps) > 20 else "")
            raise NotFoundError(f"Unknown step {step} in run {run_id!r}. Available steps: {shown or '(none)'}.")
        return step

    require_step = _require_step

    def _step_dir(self, table: S.Table, run_id: str, step: int) -> Path:
        return self.root / table.name / f"run_id={run_id}" / f"step={step}"

    # -- snapshot contents

    def predictions(self, step: int, run: str | None = None) -> dict[str, np.ndarray]:
        """Arrays in probe order: probe_id, label, pred, probs (N, C), loss, correct, confidence."""
        run_id = self.resolve_run(run)
        step = self._require_step(run_id, step)
        key = ("pred", run_id, step)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        table = self._read(self._step_dir(S.PREDICTIONS, run_id, step) / "predictions.parquet")
        order = np.argsort(table.column("probe_id").to_numpy(), kind="stable")
        out = {
            "probe_id": table.column("probe_id").to_numpy()[order],
            "label": table.column("label").to_numpy()[order],
            "pred": table.column("pred").to_numpy()[order],
            "probs": _list_to_numpy(table.column("probs"))[order],
            "loss": table.column("loss").to_numpy()[order],
            "correct": table.column("correct").to_numpy(zero_copy_only=False)[order],
            "confidence": table.column("confidence").to_numpy()[order],
        }
        with self._lock:
            self._cache[key] = out
        return out

    def layers(self, step: int | None = None, run: str | None = None) -> list[str]:
        """Captured layers of a run (at a step, those written for it)."""
        run_id = self.resolve_run(run)
        if step is None:
            return list(self._run_row(run_id)["layers"])
        step = self._require_step(run_id, step)
        # The step's commit marker lists what was written; the folder may have
        # lost a file since (which ``activations`` then reports as missing).
        row = next((r for r in self._step_rows(run_id) if r["step"] == step), None)
        if row is not None and "error" not in row and row.get("layers") is not None:
            return list(row["layers"])
        return [p.stem for p in sorted(self._step_dir(S.ACTIVATIONS, run_id, step).glob("*.parquet"))]

    def activations(self, step: int, layer: str, run: str | None = None) -> np.ndarray:
        """(N, D) float32 activations of ``layer`` at ``step``, rows in probe order."""
        run_id = self.resolve_run(run)
        step = self._require_step(run_id, step)
        available = self.layers(step, run_id)
        if layer not in available:
            raise NotFoundError(f"Unknown layer {str(layer)[:80]!r} at step {step}. Available: {', '.join(available) or '(none)'}.")
        path = self._step_dir(S.ACTIVATIONS, run_id, step) / f"{check_layer_name(layer)}.parquet"
        if not path.exists():
            raise CorruptDataError(
                f"The activations of layer {layer!r} at step {step} are missing: {path} was deleted. "
                "Other steps stay readable."
            )
        key = ("act", run_id, step, layer)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        table = self._read(path, columns=["probe_id", "vector"])
        ids = table.column("probe_id").to_numpy()
        values = _list_to_numpy(table.column("vector"))
        if len(ids) > 1 and np.any(np.diff(ids) < 0):
            values = values[np.argsort(ids, kind="stable")]
        with self._lock:
            if len(self._cache) > 256:
                self._cache = {k: v for k, v in self._cache.items() if k[0] not in ("act", "pred")}
            self._cache[key] = values
        return values

    def weights(self, step: int, layer: str | None = None, run: str | None = None):
        """The stored weight tensor of a layer at a step (all layers as a dict when ``layer`` is None)."""
        run_id = self.resolve_run(run)
        step = self._require_step(run_id, step)
        path = self._step_dir(S.WEIGHTS, run_id, step) / "weights.parquet"
        out = {}
        if path.exists():
            for row in self._read(path).to_pylist():
                out[row["layer"]] = np.asarray(row["values"], dtype=np.float32).reshape(row["shape"])
        if layer is None:
            return out
        if layer not in out:
            raise NotFoundError(f"No stored weights for layer {layer!r} at step {step}. Available: {', '.join(out) or '(none)'}.")
        return out[layer]

    def get_stats(self, step: int, run: str | None = None) -> Snapshot:
        """One whole snapshot."""
        run_id = self.resolve_run(run)
        step = self._require_step(run_id, step)
        p = self.predictions(step, run_id)
        row = next(r for r in self._step_rows(run_id) if r["step"] == step)
        if "error" in row:
            raise CorruptDataError(row["error"])
        metrics = self.metrics(run_id)
        metrics = {r.name: float(r.value) for r in metrics[metrics.step == step].itertuples()}
        return Snapshot(
            run_id=run_id,
            step=step,
            epoch=int(row["epoch"]),
            probe_ids=p["probe_id"],
            labels=p["label"],
            predictions=p["pred"],
            probs_by_image=p["probs"],
            loss=p["loss"],
            correct=p["correct"],
            embeddings={layer: self.activations(step, layer, run_id) for layer in row["layers"]},
            weights=self.weights(step, None, run_id),
            metrics=metrics,
            nonfinite_layers=list(row["nonfinite_layers"] or []),
        )

    # -- probes

    def probes(self, run: str | None = None):
        """DataFrame of the probe images: probe_id, label, class_name (probe order)."""
        run_id = self.resolve_run(run)
        key = ("probes", run_id)
        if key not in self._cache:
            table = self._read(self.root / "probes" / f"run_id={run_id}" / "probes.parquet", columns=["probe_id", "label", "class_name"])
            self._cache[key] = table.to_pandas().sort_values("probe_id", kind="stable").reset_index(drop=True)
        return self._cache[key]

    def probe_inputs(self, run: str | None = None) -> np.ndarray:
        """The probe images as the model saw them, (N, *input_shape) float32, probe order."""
        run_id = self.resolve_run(run)
        key = ("inputs", run_id)
        if key not in self._cache:
            table = self._read(self.root / "probes" / f"run_id={run_id}" / "probes.parquet", columns=["probe_id", "input"])
            order = np.argsort(table.column("probe_id").to_numpy(), kind="stable")
            shape = self._run_row(run_id)["input_shape"]
            self._cache[key] = _list_to_numpy(table.column("input"))[order].reshape(-1, *shape)
        return self._cache[key]

    def thumbnails(self, run: str | None = None) -> dict[int, bytes]:
        run_id = self.resolve_run(run)
        key = ("thumbs", run_id)
        if key not in self._cache:
            table = self._read(self.root / "probes" / f"run_id={run_id}" / "probes.parquet", columns=["probe_id", "thumbnail"])
            self._cache[key] = dict(zip(table.column("probe_id").to_pylist(), table.column("thumbnail").to_pylist()))
        return self._cache[key]

    def thumbnail(self, probe_id: int, run: str | None = None) -> bytes:
        """PNG bytes of one probe image."""
        thumbs = self.thumbnails(run)
        try:
            return thumbs[int(probe_id)]
        except (KeyError, TypeError, ValueError):
            raise NotFoundError(f"Unknown probe image {probe_id!r}; the run has {len(thumbs)} probe images.") from None

    # -- models

    def state_path(self, step: int, run: str | None = None) -> Path | None:
        run_id = self.resolve_run(run)
        path = self.root / "states" / f"run_id={run_id}" / f"step={int(step)}.pt"
        return self._safe(path) if path.exists() else None

    def load_model(self, step: int, run: str | None = None):
        """Rebuild the run's LightningModule with the weights it had at ``step``, in eval mode (see deepviz.models)."""
        from . import models

        return models.load_model(self, step, run)

    def steps_with_weights(self, run: str | None = None) -> list[int]:
        from . import models

        return models.steps_with_weights(self, run)

    # -- derived tables

    def _derived_path(self, table: str, run_id: str, key: Mapping[str, Any]) -> Path:
        if table not in S.DERIVED_TABLES:
            raise ConfigurationError(f"Unknown derived table {table!r}. Available: {', '.join(S.DERIVED_TABLES)}.")
        parts = []
        for k, v in key.items():
            v = str(v)
            if not _SAFE_NAME.match(k) or not _SAFE_NAME.match(v):
                raise ConfigurationError(f"Derived-table key {k}={v!r} must be letters, digits, '_', '.', '-'.")
            parts.append(f"{k}={v}")
        return self.root / table / f"run_id={run_id}" / Path(*parts) / "part.parquet" if parts else self.root / table / f"run_id={run_id}" / "part.parquet"

    def get_derived(self, table: str, key: Mapping[str, Any], run: str | None = None):
        """A cached derived result as a DataFrame, or None when it was never computed."""
        run_id = self.resolve_run(run)
        path = self._derived_path(table, run_id, key)
        if not path.exists():
            return None
        self._safe(path)
        ckey = ("derived", str(path), path.stat().st_mtime_ns)
        if ckey not in self._cache:
            self._cache[ckey] = self._read(path).to_pandas()
        return self._cache[ckey]

    def put_derived(self, table: str, key: Mapping[str, Any], frame, run: str | None = None) -> None:
        """Cache a derived result (a DataFrame holding the table's columns) atomically."""
        import pandas as pd

        run_id = self.resolve_run(run)
        path = self._derived_path(table, run_id, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._safe(path.parent)  # never write through a link leading out of the db
        frame = pd.DataFrame(frame).copy()
        frame["run_id"] = run_id
        for k, v in key.items():
            if k in dict((n, 1) for n, _, _ in S.DERIVED_TABLES[table].columns):
                frame[k] = v
        arrow = pa.Table.from_pandas(frame, schema=S.DERIVED_TABLES[table].schema, preserve_index=False)
        _publish(arrow, path, "part")

    # -- SQL

    def _file_ok(self, path: Path) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        key = ("footer", str(path), st.st_size, st.st_mtime_ns)
        ok = self._cache.get(key)
        if ok is None:
            ok = self._cache[key] = _parquet_ok(path)
        return ok

    def _parquet_files(self, base: Path, skipped: list[str]) -> list[Path]:
        """The ``*.parquet`` files under ``base``; folders linked from outside the db are reported, not entered."""
        out = []
        for folder, dirs, files in os.walk(base):
            for name in list(dirs):
                sub = Path(folder, name)
                if sub.is_symlink() and not _inside(self._real_root, sub):
                    skipped.append(f"{sub.relative_to(self.root)}/ (a link leading outside the db)")
                    dirs.remove(name)
            out.extend(Path(folder, f) for f in files if f.endswith(".parquet"))
        return sorted(out)

    def _table_files(self, table: S.Table, committed: Mapping[str, set[int]], skipped: list[str]) -> list[str]:
        """The readable Parquet files of a table, resolved, inside the db; snapshot tables only for committed steps."""
        out = []
        base = self.root / table.name
        if not base.is_dir():
            return out
        for path in self._parquet_files(base, skipped):
            rel = path.relative_to(self.root)
            if table.snapshot:
                run = _RUN_DIR.match(rel.parts[1]) if len(rel.parts) > 3 else None
                step = _STEP_DIR.match(rel.parts[2]) if len(rel.parts) > 3 else None
                if not (run and step and int(step.group(1)) in committed.get(run.group(1), ())):
                    continue  # not committed yet, or a crash leftover: invisible
            if not _inside(self._real_root, path):
                skipped.append(f"{rel} (a link leading outside the db)")
            elif not self._file_ok(path):
                skipped.append(f"{rel} (truncated or corrupt)")
            else:
                out.append(os.path.realpath(path))
        return out

    def _views_sql(self) -> list[str]:
        """Statements that make one view per table over the files readable now.

        The file lists are built here, not globbed by DuckDB at query time: a
        glob would fail every query on one truncated file, and could follow a
        link out of the db. Commit markers are listed first: a step's other
        folders were moved in before its marker, so every committed step is
        whole in the lists that follow.
        """
        runs_dir = self.root / "steps"
        committed = {
            m.group(1): set(_committed_steps(self.root, m.group(1)))
            for d in (runs_dir.iterdir() if runs_dir.is_dir() else ())
            if (m := _RUN_DIR.match(d.name))
        }
        skipped: list[str] = []
        statements = []
        for table in [S.STEPS] + [t for t in S.all_tables() if t is not S.STEPS]:
            files = self._table_files(table, committed, skipped)
            if files:
                listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
                source = f"read_parquet([{listed}], hive_partitioning=false, union_by_name=true)"
            else:
                cols = ", ".join(f"NULL::{_duck_type(t)} AS {n}" for n, t, _ in table.columns)
                source = f"(SELECT {cols} WHERE false)"
            if table is S.STEPS:
                # A table, read once: every query of this connection sees the same steps.
                statements.append(f"CREATE OR REPLACE TEMP TABLE steps AS SELECT * FROM {source}")
            else:
                statements.append(f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM {source}")
        self.skipped_files = skipped
        return statements

    def connect(self):
        """A DuckDB connection with a view per table.

        ``steps`` is read when the connection is made, and each view lists the
        files of the steps committed by then; connect again to see newer steps.
        Unreadable files, and links leading out of the db, are left out of the
        views (``skipped_files`` names them), so one bad file does not stop
        every query.
        """
        import duckdb

        con = duckdb.connect()
        try:
            for statement in self._views_sql():
                con.execute(statement)
        except BaseException:
            con.close()
            raise
        return con

    def sql(self, query: str):
        """Run a SQL query over the tables (as views) and return a pandas DataFrame."""
        import duckdb

        con = self.connect()
        try:
            return con.execute(query).df()
        except duckdb.Error as exc:
            raise QueryError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            con.close()

    def sandboxed_sql(self, query: str, max_rows: int = 1000, timeout_s: float = 5.0) -> dict[str, Any]:
        """Run one read-only SELECT over the views, inside the db, within a row and a time limit.

        For a query box in front of people who may not own the machine (the web
        UI's SQL console). Returns ``{"columns": [{"name", "type"}], "rows":
        [[python values]], "truncated": bool, "elapsed_ms": x, "skipped": [files
        left out of the views]}``. Raises ``QueryError`` saying what was refused
        or why the query stopped.

        Two layers keep a query inside the db and read-only:

        1. DuckDB's parser must find exactly one ``SELECT`` statement
           (``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM t`` and ``VALUES``
           parse as SELECTs). COPY, CREATE, INSERT, ATTACH, INSTALL/LOAD, SET,
           PRAGMA, EXPORT... are refused by name before anything runs.
        2. The connection is locked down: the db root is the only allowed
           directory, external access is off (no other files, no network, no
           extensions), and the configuration is locked so a query cannot undo
           it. DuckDB resolves ``..`` and symlinks before checking a path.

        The connection is in memory and used for this one query, so nothing a
        query does outlives it.
        """
        import duckdb

        if not isinstance(query, str) or not query.strip():
            raise QueryError("The query is empty. Write one SELECT, e.g. SELECT * FROM steps.")
        if len(query) > SQL_MAX_QUERY_CHARS:
            raise QueryError(f"The query is {len(query)} characters long; at most {SQL_MAX_QUERY_CHARS} are allowed.")
        con = self.connect()
        try:
            root = self._real_root.replace("'", "''")
            for statement in (
                f"SET allowed_directories = ['{root}/']",
                "SET enable_external_access = false",
                "SET autoinstall_known_extensions = false",
                "SET autoload_known_extensions = false",
                "SET lock_configuration = true",
            ):
                con.execute(statement)
            try:
                statements = con.extract_statements(query)
            except duckdb.Error as exc:
                raise QueryError(f"{type(exc).__name__}: {exc}") from exc
            if len(statements) != 1:
                raise QueryError(f"Give exactly one statement; got {len(statements)}. Remove the extra ';'-separated statements.")
            kind = statements[0].type.name
            if kind != "SELECT":
                why = _SQL_REFUSED.get(kind, f"{kind} statements are not queries")
                raise QueryError(
                    f"Refused: the SQL console is read-only and runs only SELECT queries ({why}). "
                    "Write one SELECT, e.g. SELECT step, probe_acc FROM steps ORDER BY step."
                )
            timed_out = threading.Event()

            def stop():
                timed_out.set()
                con.interrupt()

            timer = threading.Timer(timeout_s, stop)
            start = time.perf_counter()
            timer.start()
            try:
                # A relation streams: only the first max_rows + 1 rows are ever produced.
                reader = con.sql(query).to_arrow_reader(max(1, min(max_rows + 1, 2048)))
                columns = [{"name": f.name, "type": str(f.type)} for f in reader.schema]
                rows: list[list] = []
                for batch in reader:
                    rows.extend(list(r.values()) for r in batch.to_pylist())
                    if len(rows) > max_rows:
                        break
            except duckdb.PermissionException as exc:
                raise QueryError(
                    f"Refused: the SQL console reads only the db's own tables and files ({exc}). "
                    "Query the views instead: runs, steps, predictions, activations, metrics, ..."
                ) from exc
            except Exception as exc:
                # Errors raised while rows stream arrive through the Arrow reader as
                # pyarrow exceptions (OSError/ValueError) carrying DuckDB's message,
                # so the interrupt is recognised by the timer's flag, not by type.
                if timed_out.is_set():
                    raise QueryError(
                        f"The query was stopped after the time limit of {timeout_s:g} s. "
                        "Narrow it (a WHERE on run_id/step, fewer columns, a LIMIT) and try again."
                    ) from exc
                if isinstance(exc, (duckdb.Error, OSError, ValueError, RuntimeError)):
                    raise QueryError(f"{type(exc).__name__}: {exc}") from exc
                raise
            finally:
                timer.cancel()
            elapsed_ms = 1000 * (time.perf_counter() - start)
        finally:
            con.close()
        return {
            "columns": columns,
            "rows": rows[:max_rows],
            "truncated": len(rows) > max_rows,
            "elapsed_ms": round(elapsed_ms, 2),
            "skipped": list(self.skipped_files),
        }


#: The longest query the sandbox accepts.
SQL_MAX_QUERY_CHARS = 20_000
#: Why each kind of statement is refused by ``StatsDB.sandboxed_sql``.
_SQL_REFUSED = {
    "COPY": "COPY reads or writes files",
    "EXPORT": "EXPORT writes files",
    "CREATE": "CREATE would add to the database",
    "INSERT": "INSERT writes",
    "UPDATE": "UPDATE writes",
    "DELETE": "DELETE writes",
    "DROP": "DROP would remove tables",
    "ALTER": "ALTER changes tables",
    "ATTACH": "ATTACH opens other databases",
    "DETACH": "DETACH changes the attached databases",
    "LOAD": "INSTALL and LOAD add extensions",
    "SET": "SET, RESET and USE change settings",
    "VARIABLE_SET": "SET VARIABLE changes settings",
    "PRAGMA": "PRAGMA changes or inspects settings",
    "CALL": "CALL runs procedures",
}


def _duck_type(dtype: pa.DataType) -> str:
    if pa.types.is_list(dtype):
        return _duck_type(dtype.value_type) + "[]"
    return {
        pa.string(): "VARCHAR",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float16(): "FLOAT",
        pa.float32(): "FLOAT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.binary(): "BLOB",
    }.get(dtype, "TIMESTAMP WITH TIME ZONE" if pa.types.is_timestamp(dtype) else "VARCHAR")
