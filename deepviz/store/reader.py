"""``StatsDB``: read access to a stats db folder, as numpy arrays and pandas frames.

Safety. Every path it reads is resolved and refused when it leads outside the
db folder (a symlink planted in a shared or unpacked db). Reads worth keeping
go through one bounded, locked cache (``cache.Cache``) whose keys carry what
makes them current.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import ConfigurationError, CorruptDataError, NotFoundError
from . import derived as _derived
from .cache import Cache
from .codec import list_to_numpy, read
from .layout import DEFAULT_DB, Layout, check_is_db, check_layer_name, check_version, mtime, refuse_outside


_STEP_HINT = "A step is the trainer's global step, a whole number such as 0 or 45: pass one of db.steps(run)."


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


class StatsDB:
    """Read access to a stats database folder.

    >>> db = StatsDB("stats_db")
    >>> s = db.get_stats(db.steps()[-1])
    >>> s.probs_by_image.shape
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        self.root = Path(path)
        check_is_db(self.root)
        check_version(self.root, create=False)
        self.layout = Layout(self.root)
        self._real_root = os.path.realpath(self.root)
        self.cache = Cache()
        #: Files the last ``connect()`` left out of the SQL views (unreadable or leading out of the db).
        self.skipped_files: list[str] = []

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
                if int(Path(path).parent.name.split("=")[1]) in committed:
                    try:
                        rows.extend(self._read(Path(path), columns=["step", "name", "value"]).to_pylist())
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
                    for row in self._read(Path(path)).to_pylist():
                        out[int(row["step"])] = row["path"]
                except CorruptDataError:
                    continue
            return out

        return dict(self.cache.latest(("checkpoints", run_id), listing, build))

    def _listing(self, table: S.Table, run_id: str) -> tuple[tuple[str, int], ...]:
        """(path, mtime) of a table's small per-step files: they are only ever added, never changed."""
        out = []
        for path in self.layout.run_dir(table, run_id).glob("step=*/*.parquet"):
            try:
                out.append((str(path), path.stat().st_mtime_ns))
            except FileNotFoundError:
                continue
        return tuple(sorted(out))

    # -- snapshot contents

    def predictions(self, step: int, run: str | None = None) -> dict[str, np.ndarray]:
        """Arrays in probe order: probe_id, label, pred, probs (N, C), loss, correct, confidence."""
        run_id = self.resolve_run(run)
        step = self.require_step(run_id, step)

        def build():
            table = self._read(self.layout.file(S.PREDICTIONS, run_id, step))
            order = np.argsort(table.column("probe_id").to_numpy(), kind="stable")
            out = {name: table.column(name).to_numpy(zero_copy_only=False)[order]
                   for name in ("probe_id", "label", "pred", "loss", "correct", "confidence")}
            out["probs"] = list_to_numpy(table.column("probs"))[order]
            return out

        return self.cache.get(("pred", run_id, step), build)

    def layers(self, step: int | None = None, run: str | None = None) -> list[str]:
        """Captured layers of a run (at a step, those written for it)."""
        run_id = self.resolve_run(run)
        if step is None:
            return list(self._run_row(run_id)["layers"])
        step = self.require_step(run_id, step)
        # The step's commit marker lists what was written; the folder may have
        # lost a file since (which ``activations`` then reports as missing).
        row = self._step_row(run_id, step)
        if row is not None and "error" not in row and row.get("layers") is not None:
            return list(row["layers"])
        return [p.stem for p in sorted(self.layout.step_dir(S.ACTIVATIONS, run_id, step).glob("*.parquet"))]

    def activations(self, step: int, layer: str, run: str | None = None) -> np.ndarray:
        """(N, D) float32 activations of ``layer`` at ``step``, rows in probe order."""
        run_id = self.resolve_run(run)
        step = self.require_step(run_id, step)
        available = self.layers(step, run_id)
        if layer not in available:
            raise NotFoundError(f"Unknown layer {str(layer)[:80]!r} at step {step}. Available: {', '.join(available) or '(none)'}.")
        path = self.layout.file(S.ACTIVATIONS, run_id, step, check_layer_name(layer))
        if not path.exists():
            raise CorruptDataError(
                f"The activations of layer {layer!r} at step {step} are missing: {path} was deleted. "
                "Other steps stay readable."
            )

        def build():
            table = self._read(path, columns=["probe_id", "vector"])
            ids = table.column("probe_id").to_numpy()
            values = list_to_numpy(table.column("vector"))
            if len(ids) > 1 and np.any(np.diff(ids) < 0):
                values = values[np.argsort(ids, kind="stable")]
            return values

        return self.cache.get(("act", run_id, step, layer), build)

    def weights(self, step: int, layer: str | None = None, run: str | None = None):
        """The stored weight tensor of a layer at a step (all layers as a dict when ``layer`` is None)."""
        run_id = self.resolve_run(run)
        step = self.require_step(run_id, step)
        path = self.layout.file(S.WEIGHTS, run_id, step)
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
        step = self.require_step(run_id, step)
        p = self.predictions(step, run_id)
        row = self._step_row(run_id, step)
        if "error" in row:
            raise CorruptDataError(row["error"])
        metrics = self.metrics(run_id)
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
            metrics={r.name: float(r.value) for r in metrics[metrics.step == step].itertuples()},
            nonfinite_layers=list(row["nonfinite_layers"] or []),
        )

    # -- probes

    def _probe_columns(self, run_id: str, kind: str, columns: list[str], convert):
        path = self.layout.file(S.PROBES, run_id)
        return self.cache.get((kind, run_id, mtime(path)), lambda: convert(self._read(path, columns=columns)))

    def probes(self, run: str | None = None):
        """DataFrame of the probe images: probe_id, label, class_name (probe order)."""
        return self._probe_columns(
            self.resolve_run(run), "probes", ["probe_id", "label", "class_name"],
            lambda t: t.to_pandas().sort_values("probe_id", kind="stable").reset_index(drop=True),
        )

    def probe_inputs(self, run: str | None = None) -> np.ndarray:
        """The probe images as the model saw them, (N, *input_shape) float32, probe order."""
        run_id = self.resolve_run(run)
        shape = self._run_row(run_id)["input_shape"]

        def convert(table):
            order = np.argsort(table.column("probe_id").to_numpy(), kind="stable")
            return list_to_numpy(table.column("input"))[order].reshape(-1, *shape)

        return self._probe_columns(run_id, "inputs", ["probe_id", "input"], convert)

    def thumbnails(self, run: str | None = None) -> dict[int, bytes]:
        return self._probe_columns(
            self.resolve_run(run), "thumbs", ["probe_id", "thumbnail"],
            lambda t: dict(zip(t.column("probe_id").to_pylist(), t.column("thumbnail").to_pylist())),
        )

    def thumbnail(self, probe_id: int, run: str | None = None) -> bytes:
        """PNG bytes of one probe image."""
        thumbs = self.thumbnails(run)
        try:
            return thumbs[int(probe_id)]
        except (KeyError, TypeError, ValueError):
            raise NotFoundError(f"Unknown probe image {probe_id!r}; the run has {len(thumbs)} probe images.") from None

    # -- weights of a step (the models live in deepviz.models)

    def state_path(self, step: int, run: str | None = None) -> Path | None:
        path = self.layout.state_file(self.resolve_run(run), int(step))
        return refuse_outside(self._real_root, self.root, path) if path.exists() else None

    def checkpoint_dir(self, run: str | None = None) -> Path:
        """The db's own folder of per-step checkpoint files of a run (it may not exist yet)."""
        return self.layout.checkpoint_dir(self.resolve_run(run))

    def load_model(self, step: int, run: str | None = None):
        """The run's model with the weights it had at ``step``, in eval mode (``deepviz.models.load_model``)."""
        from .. import models

        return models.load_model(self, step, run)

    def steps_with_weights(self, run: str | None = None) -> list[int]:
        """Steps whose weights can be loaded (``deepviz.models.steps_with_weights``)."""
        from .. import models

        return models.steps_with_weights(self, run)

    # -- derived tables (deepviz.store.derived)

    def get_derived(self, table: str, key: Mapping[str, Any], run: str | None = None):
        """A cached derived result as a DataFrame, or None when it was never computed.

        An unreadable file raises ``CorruptDataError``: the caller recomputes, and ``put_derived`` replaces it.
        """
        return _derived.get(self, table, key, self.resolve_run(run))

    def put_derived(self, table: str, key: Mapping[str, Any], frame, run: str | None = None) -> None:
        """Cache a derived result (a DataFrame holding the table's columns) atomically."""
        _derived.put(self, table, key, frame, self.resolve_run(run))

    # -- SQL (deepviz.store.sql and .sandbox, imported when first used: they load DuckDB)

    def connect(self):
        """A DuckDB connection with a view per table (see ``deepviz.store.sql.connect``)."""
        from . import sql

        return sql.connect(self)

    def sql(self, query: str, max_rows: int | None = None):
        """Run a SQL query over the tables (as views) and return a pandas DataFrame; at most ``max_rows`` rows are fetched."""
        from . import sql

        return sql.run(self, query, max_rows)

    def sandboxed_sql(self, query: str, max_rows: int = 1000, timeout_s: float = 5.0, *,
                      memory_limit: str | None = None, threads: int | None = None) -> dict[str, Any]:
        """One read-only SELECT inside the db, within row, time, memory and thread limits (``deepviz.store.sandbox``).

        ``memory_limit`` and ``threads`` are DuckDB's; None takes ``sandbox.MEMORY_LIMIT`` and ``sandbox.THREADS``.
        """
        from . import sandbox

        return sandbox.sandboxed(
            self, query, max_rows, timeout_s,
            memory_limit=sandbox.MEMORY_LIMIT if memory_limit is None else memory_limit,
            threads=sandbox.THREADS if threads is None else threads,
        )
