"""The run-level half of ``StatsDB``: the db folder, its runs, their committed steps, metrics and checkpoints.

``reader.StatsDB`` adds what is inside a step (predictions, activations,
weights), the probes, derived tables and SQL.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import ConfigurationError, CorruptDataError, NotFoundError
from ..cache import MAX_BYTES, Cache
from .codec import read
from .layout import DEFAULT_DB, Layout, as_root, check_is_db, check_version, mtime, real_root, refuse_outside

_STEP_HINT = "A step is the trainer's global step, a whole number such as 0 or 45: pass one of db.steps(run)."


class RunReader:
    """A db folder opened for reading: checked to be a stats db of a readable schema version.

    ``cache_bytes`` caps the memory its cache of reads keeps (a read larger than that is not kept).
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB, *, cache_bytes: int = MAX_BYTES):
        self.root = as_root(path)
        check_is_db(self.root)
        check_version(self.root, create=False)
        self.layout = Layout(self.root)
        self._real_root = real_root(self.root)
        #: Its reads (snapshots, probes, step rows), bounded by ``cache_bytes``.
        self.cache = Cache(max_bytes=cache_bytes)
        #: Files the last ``connect()`` left out of the SQL views (unreadable or leading out of the db).
        self.skipped_files: list[str] = []
        #: The SQL views' shared connection (``sql.shared``), made by the first query, and its lock.
        self._shared_sql = None
        self._shared_sql_lock = threading.Lock()

    def _read(self, path: Path, columns=None) -> pa.Table:
        return read(refuse_outside(self._real_root, self.root, path), columns)

    def __repr__(self) -> str:
        return f"StatsDB({str(self.root)!r})"

    # -- runs

    def run_ids(self) -> list[str]:
        """Run ids, oldest first (run ids start with their start time)."""
        return self.layout.run_ids()

    def runs(self):
        """A DataFrame of the runs, newest last, with their step counts and final accuracy."""
        import pandas as pd

        cols = ["run_id", "name", "started_at", "ended_at", "model", "dataset", "n_probe", "n_steps", "last_step", "final_acc"]
        frame = pd.DataFrame([self._run_summary(run_id) for run_id in self.run_ids()])
        for c in cols:
            if c not in frame:
                frame[c] = None
        return frame

    def _run_summary(self, run_id: str) -> dict:
        try:
            info = self.run_info(run_id)
        except CorruptDataError as exc:
            return {"run_id": run_id, "error": str(exc)}
        steps = self.steps(run_id)
        readable = [r for r in self._step_rows(run_id) if "error" not in r]
        return {
            "run_id": run_id,
            "name": info["name"],
            "started_at": info["started_at"],
            "ended_at": info["ended_at"],
            "model": info["model_class"].rsplit(":", 1)[-1],
            "dataset": info["dataset"],
            "n_probe": info["n_probe"],
            "n_steps": len(steps),
            "last_step": steps[-1] if steps else None,
            "final_acc": readable[-1]["probe_acc"] if readable else None,
        }

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
        path = self.layout.file(S.RUNS, run_id)
        return self.cache.get(("run", run_id, mtime(path)), lambda: self._read(path).to_pylist()[0])

    def run_info(self, run: str | None = None) -> dict:
        """The run's metadata: model class and summary, hparams (a dict), dataset, class names, layers."""
        run_id = self.resolve_run(run)
        row = dict(self._run_row(run_id))
        row["hparams"] = json.loads(row["hparams"] or "{}")
        return row

    # -- steps

    def steps(self, run: str | None = None) -> list[int]:
        """Committed snapshot steps of a run (the newest run by default), ascending."""
        return self.layout.committed_steps(self.resolve_run(run))

    def require_step(self, run_id: str, step: int) -> int:
        """``step`` as an int if it is a committed step of the run; a clear error otherwise."""
        integral_float = isinstance(step, (float, np.floating)) and float(step).is_integer()
        if isinstance(step, bool) or not (integral_float or isinstance(step, (int, np.integer, str))):
            raise ConfigurationError(f"Step must be an integer, got {step!r} ({type(step).__name__}). {_STEP_HINT}")
        try:
            step = int(step)
        except ValueError:
            raise ConfigurationError(f"Step must be an integer, got {step!r}. {_STEP_HINT}") from None
        steps = self.layout.committed_steps(run_id)
        if step not in steps:
            shown = ", ".join(map(str, steps[:20])) + (", ..." if len(steps) > 20 else "")
            raise NotFoundError(f"Unknown step {step} in run {run_id!r}. Available steps: {shown or '(none)'}.")
        return step

    def _step_rows(self, run_id: str) -> list[dict]:
        rows = []
        for step in self.layout.committed_steps(run_id):
            path = self.layout.file(S.STEPS, run_id, step)
            try:
                rows.append(self.cache.get(("step", run_id, step), lambda: self._read(path).to_pylist()[0]))
            except CorruptDataError as exc:
                rows.append({"run_id": run_id, "step": step, "error": str(exc)})
        return rows

    def _step_row(self, run_id: str, step: int) -> dict | None:
        return next((r for r in self._step_rows(run_id) if r["step"] == step), None)

    def step_table(self, run: str | None = None):
        """One row per committed step: epoch, wall time, probe accuracy and loss, metrics, checkpoint."""
        import pandas as pd

        run_id = self.resolve_run(run)
        committed = tuple(self.layout.committed_steps(run_id))
        version = (committed, self._listing(S.METRICS, run_id), self._listing(S.CHECKPOINTS, run_id))

        def build():
            frame = pd.DataFrame(self._step_rows(run_id))
            if frame.empty:
                return frame
            metrics = self.metrics(run_id)
            if not metrics.empty:
                wide = metrics.pivot_table(index="step", columns="name", values="value", aggfunc="last")
                frame = frame.merge(wide, left_on="step", right_index=True, how="left")
            frame["checkpoint"] = frame["step"].map(self.checkpoints(run_id))
            return frame

        # The web UI asks for this on every poll of a run: rebuilt only when a file came or went.
        return self.cache.latest(("step_table", run_id), version, build).copy()

    def metrics(self, run: str | None = None):
        """Logged metrics of a run in long format: step, name, value."""
        import pandas as pd

        run_id = self.resolve_run(run)
        committed = set(self.layout.committed_steps(run_id))
        listing = self._listing(S.METRICS, run_id)

        def build():
            rows = []
            for path, _ in listing:
                if int(path.parent.name.split("=")[1]) in committed:
                    try:
                        rows.extend(self._read(path, columns=["step", "name", "value"]).to_pylist())
                    except CorruptDataError:
                        continue
            return pd.DataFrame(rows, columns=["step", "name", "value"])

        return self.cache.latest(("metrics", run_id), (tuple(sorted(committed)), listing), build).copy()

    def checkpoints(self, run: str | None = None) -> dict[int, str]:
        """Checkpoint path saved at each step (the last one when several)."""
        run_id = self.resolve_run(run)
        listing = self._listing(S.CHECKPOINTS, run_id)

        def build():
            out = {}
            for path, _ in sorted(listing, key=lambda item: item[1]):  # oldest first: the last one wins
                try:
                    for row in self._read(path).to_pylist():
                        out[int(row["step"])] = row["path"]
                except CorruptDataError:
                    continue
            return out

        return dict(self.cache.latest(("checkpoints", run_id), listing, build))

    def _listing(self, table: S.Table, run_id: str) -> tuple[tuple[Path, int], ...]:
        """(path, mtime) of a table's small per-step files: they are only ever added, never changed."""
        out = []
        for path in self.layout.run_dir(table, run_id).glob("step=*/*.parquet"):
            try:
                out.append((path, path.stat().st_mtime_ns))
            except FileNotFoundError:
                continue
        return tuple(sorted(out))
