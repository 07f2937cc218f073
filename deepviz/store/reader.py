"""``StatsDB``: read access to a stats db folder, as numpy arrays and pandas frames.

The run-level reads (runs, steps, metrics, checkpoints) are ``runs.RunReader``'s;
this adds what is inside a step, the probes, derived tables and SQL.

Safety. Every path it reads is resolved and refused when it leads outside the
db folder (a symlink planted in a shared or unpacked db). Reads worth keeping
go through one bounded, locked cache (``cache.Cache``) whose keys carry what
makes them current.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import CorruptDataError, NotFoundError
from . import derived as _derived
from .codec import list_to_numpy, read_row_groups
from .columns import ColumnReader
from .compare import CompareReader
from .layout import check_layer_name, mtime, refuse_outside
from .remote import ObjPath
from .runs import RunReader
from .thumbs import ThumbnailReader
from .inputs import StoredInputs
from .vectors import input_codes, vectors_to_numpy


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

class StatsDB(ColumnReader, ThumbnailReader, CompareReader, RunReader):
    """Read access to a stats database folder.

    >>> db = StatsDB("stats_db")
    >>> s = db.get_stats(db.steps()[-1])
    >>> s.probs_by_image.shape
    """

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
            values = vectors_to_numpy(table, "vector", str(path))
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
        """The probe images as the model saw them, (N, *input_shape) float32, probe order: every image decoded
        (one image, the shape or a pass a block at a time: ``stored_inputs``)."""
        return self.stored_inputs(run).all()

    def stored_inputs(self, run: str | None = None) -> StoredInputs:
        """The probe images as stored (uint8 codes where lossless: a quarter of float32), decoded on demand."""
        run_id = self.resolve_run(run)
        given = self._run_row(run_id)["input_shape"]
        try:
            shape = tuple(int(d) for d in given)
        except (TypeError, ValueError):
            shape = ()
        if not shape or min(shape) < 1:
            raise CorruptDataError(f"Run {run_id!r} has input_shape {str(given)[:60]}; it must be the positive sizes of "
                                   "one input, like [3, 32, 32]. The db is corrupt or not deepviz's.")

        path = self.layout.file(S.PROBES, run_id)

        def read() -> StoredInputs:
            # A row group at a time into one array: the column whole, and a copy of it, was 614 MB at 100,000.
            ids, codes, divisor, start = None, None, None, 0
            for rows, table in read_row_groups(refuse_outside(self._real_root, self.root, path), ["probe_id", "input"]):
                part, part_divisor = input_codes(table, "input", str(path))
                if codes is None:
                    ids, codes, divisor = np.empty(rows, np.int64), np.empty((rows, part.shape[1]), part.dtype), part_divisor
                if part.dtype != codes.dtype or part.shape[1] != codes.shape[1] or start + len(part) > rows:
                    raise CorruptDataError(f"The row groups of {path} disagree on the probe inputs' encoding or count. The db is corrupt.")
                codes[start:start + len(part)] = part
                try:
                    ids[start:start + len(part)] = table.column("probe_id").to_numpy()
                except (TypeError, ValueError, pa.ArrowException) as exc:
                    raise CorruptDataError(f"The probe ids of {path} are not whole numbers ({exc}). The db is corrupt.") from None
                start += len(part)
            if codes is None:  # no row group: no images (a footer claiming rows without groups is corrupt)
                codes, ids = np.empty((0, int(np.prod(shape))), np.float32), np.empty(0, np.int64)
            n_probe = len(self.probes(run_id))
            if start != len(codes) or len(codes) != n_probe:
                raise CorruptDataError(f"{path} holds {start} probe inputs for {n_probe} probe images "
                                       "(one each is needed). The db is corrupt.")
            if codes.shape[1] != int(np.prod(shape)):
                raise CorruptDataError(
                    f"The probe inputs of run {run_id!r} have {codes.shape[1]} values per image, but the run's "
                    f"input_shape {list(shape)} needs {int(np.prod(shape))}. The db is corrupt."
                )
            order = np.argsort(ids, kind="stable")
            if len(order) > 1 and np.any(np.diff(order) < 0):
                codes = codes[order]
            return StoredInputs(codes, divisor, shape)

        return self.cache.get(("inputs", run_id, mtime(path)), read)

    def thumbnails(self, run: str | None = None) -> dict[int, bytes]:
        """Every probe image's PNG bytes (the sprite sheet); one image: ``thumbnail`` (thumbs.py)."""
        return self._probe_columns(
            self.resolve_run(run), "thumbs", ["probe_id", "thumbnail"],
            lambda t: dict(zip(t.column("probe_id").to_pylist(), t.column("thumbnail").to_pylist())),
        )

    # -- weights of a step (the models live in deepviz.models)

    def state_path(self, step: int, run: str | None = None) -> Path | None:
        """The local file of a step's stored state dict (on object storage, a local copy of it), or None."""
        path = self.layout.state_file(self.resolve_run(run), int(step))
        if not path.exists():
            return None
        return path.local_copy() if isinstance(path, ObjPath) else refuse_outside(self._real_root, self.root, path)

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
