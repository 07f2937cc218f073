"""``Recorder``: the snapshots of any training loop. It captures, gathers under DDP and writes; the caller says when.

A plain PyTorch loop calls ``rec.snapshot(step, epoch=..., metrics=...)``
where it wants one; ``StatsCallback`` is a thin Lightning adapter that calls
the same methods from its hooks. Capture (``capture.py``), the store
(``StatsWriter``) and DDP gathering live here and nowhere else.

Under ``torch.distributed`` (initialised), every rank makes a ``Recorder`` and
calls ``start`` and ``snapshot`` at the same points, as with any collective:
each rank captures its share of the probe, rank zero gathers the shares in
probe order and alone writes.

The forward runs on the caller's thread (or was the caller's own, see
``snapshot(outputs=...)``); the device-to-host copies and the writes run on a
``BackgroundWriter`` thread behind a queue of ``write_queue`` snapshots, so the
loop waits only while that queue is full. :meth:`Recorder.flush` waits for
every write; ``close`` and ``release`` flush first.
"""

from __future__ import annotations

import json
import os
import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .callback_checks import check_labels_named, check_recording
from .background import BackgroundWriter
from .capture import Captured, capture_tensors, conv_layers, rank_zero_buffers, resolve_layers, state_copy, weight_copies
from .checkpoint_io import publish_step_file, stage_step_file
from .gather import gather_to_zero, seen_anywhere
from .recorder_writes import SnapshotWrites
from .probe import ProbeSet, build_probe, iter_thumbnails
from .errors import ConfigurationError
from .store import StatsWriter, check_layer_name, new_run_id

#: Models with at most this many parameters get their state dict stored with
#: every snapshot (``save_state="auto"``), so ``StatsDB.load_model`` works at
#: every step, step 0 included, without checkpoints.
AUTO_STATE_MAX_PARAMS = 5_000_000


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _broadcast(obj):
    """Rank zero's ``obj`` on every rank (itself outside a process group)."""
    if _dist()[1] == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The values of ``metrics`` that are numbers (or one-element tensors), as floats; the rest left out."""
    out = {}
    for k, v in metrics.items():
        try:
            out[str(k)] = float(v.item() if isinstance(v, torch.Tensor) else v)
        except (TypeError, ValueError, RuntimeError):
            continue
    return out


class Recorder(SnapshotWrites):
    """Record what ``model`` makes of a fixed probe set, at the steps the caller chooses.

    Args:
        db: folder of the stats database (created if missing).
        model: the ``nn.Module`` being trained (the same object the loop updates).
        probe: a torch ``Dataset`` of (image, label) pairs, or a pair ``(images, labels)``.
        probe_size: number of probe images, picked class-stratified with ``probe_seed``
            (all of ``probe`` when None).
        layers: module names to capture (as ``named_modules()`` reports them), or
            ``<conv>.gap`` for a conv's output averaged over its positions;
            default: every conv's ``.gap`` and every ``nn.Linear``.
        run_name: a readable name for the run (the run id is used when None).
        dataset_name, class_names: recorded in the run's metadata.
        activation_dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        save_state: store the model's state dict with each snapshot: True, False, or
            ``"auto"`` (models of at most 5M parameters).
        batch_size: probe batch size for the capture forward pass.
        write_queue: how many snapshots may wait for the background writer (1..64) before
            ``snapshot`` waits for it; each waiting one holds its arrays in memory.

    Use it as a context manager, or call :meth:`close` at the end: that marks
    the run ended and releases its lock. Leaving the ``with`` block on an
    exception only releases the lock, so the run shows as not ended, as a
    crashed training does.
    """

    def __init__(
        self,
        db: str | os.PathLike,
        model: nn.Module,
        probe: Any = None,
        probe_size: int | None = 1000,
        *,
        layers: list[str] | None = None,
        run_name: str | None = None,
        dataset_name: str | None = None,
        class_names: list[str] | None = None,
        probe_seed: int = 0,
        activation_dtype: str = "float16",
        save_state: bool | str = "auto",
        batch_size: int = 256,
        write_queue: int = 2,
    ):
        if not isinstance(model, nn.Module):
            raise ConfigurationError(f"Recorder needs the torch nn.Module being trained as model, got {type(model).__name__}.")
        check_recording("Recorder", probe, probe_size, layers, activation_dtype, save_state, class_names,
                        batch_size, write_queue)
        self.db = os.fspath(db)
        self.model = model
        self.run_name = run_name
        self.dataset_name = dataset_name
        self.class_names = list(class_names) if class_names is not None else None
        self.probe_seed = probe_seed
        self.activation_dtype = activation_dtype
        self.save_state = save_state
        self.batch_size = batch_size
        self.layers = resolve_layers(model, layers)
        for name in self.layers:
            check_layer_name(name)
        self.convs = conv_layers(model)
        self.writer = StatsWriter(self.db) if _dist()[0] == 0 else None  # fails here on an unwritable db
        self._source_classes = getattr(probe, "classes", None)
        self.probe: ProbeSet = build_probe(probe, probe_size, probe_seed)
        check_labels_named(self.probe.labels, self.class_names)

        self.run_id: str | None = None
        self.written: set[int] = set()  # steps never to write again: committed, or tried in this run
        self.committed: set[int] = set()  # steps this Recorder wrote (not skipped, not from before a resume)
        self._kept: set[int] = set()  # steps whose checkpoint is kept and recorded
        self.queued: dict[int, str] = {}  # step -> trigger of the snapshots handed to the writer, not yet written
        self._failed: set[int] = set()  # steps whose write failed
        self._tickets: dict[int, int] = {}  # step -> the writer's ticket of its snapshot
        self._writes = BackgroundWriter(write_queue)
        self._warnings: list[str] = []  # given by the writer's thread, warned on the caller's
        self._warned_nonfinite = False
        self._warned_write = False
        self._warned_pass = False

    # ------------------------------------------------------------------ the run

    def start(self, run_id: str | None = None, written=()) -> str:
        """Start a new run, or continue ``run_id`` (its committed steps are never written again).

        ``written``: steps to skip besides those (e.g. a resumed trainer's). The
        first :meth:`snapshot` calls this when it has not been called.
        """
        resumed = run_id is not None
        self.run_id = _broadcast(run_id if resumed else new_run_id() if self.writer is not None else None)
        self.written = set(written)
        if self.writer is not None:
            if resumed and self.writer.read_run(self.run_id) is not None:
                # Clear what a crash left, and never write a committed step again.
                self.written |= set(self.writer.open_run(self.run_id))
                self._safe_write(lambda: self.writer.update_run(self.run_id, ended_at=None))
            else:
                self._write_run()
        self.written = set(_broadcast(sorted(self.written)))
        self._surface()
        return self.run_id

    def snapshot(self, step: int, *, epoch: int = 0, metrics: dict | None = None, trigger: str = "snapshot",
                 outputs: tuple[np.ndarray, Captured | None] | None = None) -> bool:
        """Capture the snapshot of ``step`` and hand it to the writer; True when handed over (on rank zero).

        A step already written is skipped. ``metrics``: numbers (or one-element
        tensors) to store with the step; ``trigger``: what asked for it, as the
        ``steps`` table records it. ``outputs``: what the caller's own forward
        at these weights gave for the probe on this rank (a ``ValidationTap``'s
        ``result()``: a mask of the probe rows seen, and their outputs in probe
        order, None when the tap broke). When the ranks together saw every probe
        row, the snapshot is made of them and takes no forward of its own;
        otherwise it takes the extra pass, and says why once. A failed write
        is warned about at the next call (or raised there, for an error that is
        not an OSError); :meth:`flush` waits for the writes.
        """
        self._surface()
        if self.run_id is None:
            self.start()
        step = int(step)
        if step in self.written:
            return False
        self.written.add(step)
        captured = self._capture(step, outputs)
        if captured is None:  # not rank zero: rank zero writes
            return False
        frozen = weight_copies(self.model, self.convs), self._state()
        values = scalar_metrics(metrics or {})
        self.queued[step] = trigger
        for done in [s for s in list(self._tickets) if s not in self.queued]:
            del self._tickets[done]  # (only this thread changes _tickets)
        self._tickets[step] = self._writes.submit(
            lambda: self._write_job(step, int(epoch), trigger, captured, frozen, values))
        return True

    def flush(self) -> None:
        """Wait until every snapshot and write handed over so far is done; warn (or raise) what failed."""
        self._writes.wait()
        self._surface()

    def settle(self, before: int) -> None:
        """Wait until every snapshot of a step before ``before`` is written (a checkpoint at ``before`` follows)."""
        older = [ticket for s, ticket in list(self._tickets.items()) if s < before]
        if older:
            self._writes.wait(max(older))
        self._surface()

    def add_metrics(self, step: int, metrics: dict) -> None:
        """Add metrics to a written step, e.g. ones known only after its snapshot (written after it, in order)."""
        if self.writer is not None and self.run_id is not None:
            self._surface()
            step, values = int(step), scalar_metrics(metrics)
            self._writes.submit(lambda: step in self._failed or self._safe_write(
                lambda: self.writer.add_metrics(self.run_id, step, values)))

    def keep_checkpoint(self, step: int, path: str | os.PathLike) -> None:
        """Keep a checkpoint file saved at a step this Recorder wrote (or is writing), in the db, and record it.

        The file is linked (or copied) at once, under a temporary name: Lightning
        may replace or prune it soon. It takes its ``step=<step>.ckpt`` name and
        is recorded once the snapshot is written, and is removed if that failed.
        After a resume, a step written before was trained again: its new
        weights need not be the stored ones, so it is not recorded.
        """
        step = int(step)
        mine = step in self.committed or step in self.queued
        if self.writer is None or not mine or step in self._kept or self.writer.remote:
            return  # (on object storage the state dict stored with each snapshot stands in for the checkpoint)
        dest = self.writer.layout.checkpoint_dir(self.run_id) / f"step={step}.ckpt"
        staged = []
        try:
            staged.append(stage_step_file(path, dest))
        except OSError:
            # A full disk fails this step's queued snapshot as well: that write ends first, so that the one
            # warning names the snapshot lost (whichever thread met the full disk first), not its checkpoint.
            self._writes.wait(self._tickets.get(step))
            if not self._safe_write(lambda: staged.append(stage_step_file(path, dest))):  # then tried once more
                self._surface()
                return
        self._kept.add(step)

        def record():
            if step not in self.committed:
                staged[0].unlink(missing_ok=True)
                return
            kept = publish_step_file(staged[0], dest)
            self.writer.record_checkpoint(self.run_id, step, os.fspath(kept.absolute()))

        self._writes.submit(lambda: self._safe_write(record))

    def close(self) -> None:
        """Write what is queued, mark the run ended and release its lock (another process may then continue it).

        When a queued write raised, the run is left open (as a crash leaves it) and the error raised here.
        """
        try:
            self.flush()
        except BaseException:
            self.release()
            raise
        if self.writer is not None and self.run_id is not None:
            self._safe_write(lambda: self.writer.update_run(self.run_id, ended_at=datetime.now(timezone.utc)))
        self.release()

    def release(self) -> None:
        """Write what is queued and release the run's lock, without marking the run ended."""
        try:
            self._writes.close()
        finally:
            if self.writer is not None:
                self.writer.close()
        self._surface()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.release()

    # ------------------------------------------------------------------ what is written

    def _write_run(self) -> None:
        cls = type(self.model)
        if cls.__module__ == "__main__":
            warnings.warn(
                f"{cls.__name__} is defined in __main__: StatsDB.load_model can rebuild it only where "
                "that script's class is importable. Define the model in a module to load it later.",
                stacklevel=4,
            )
        class_names = self._run_class_names()
        row = self._run_row(class_names)

        # numpy views of the probe, made here: the writer's thread runs no torch operation (see probe._array)
        inputs, labels = self.probe.inputs.numpy(), self.probe.labels.numpy()

        def write():
            # Probes first: a run row is listed by readers, so what it refers to must exist.
            self.writer.write_probes(self.run_id, self.probe.ids, labels, class_names, iter_thumbnails(inputs), inputs)
            self.writer.write_run(row)

        # On the writer's thread, first in its queue (every snapshot is written after it): encoding a thumbnail
        # per probe image and writing them is most of a run's start (a minute at 100,000 images), which training
        # need not wait for. What it raises is raised at the next call, as a snapshot's write is.
        self._writes.submit(write)

    def _run_class_names(self) -> list[str]:
        """The given class names (or the probe dataset's), padded to cover every probe label."""
        names = list(self.class_names or self._source_classes or [])
        n_classes = int(self.probe.labels.max()) + 1 if len(self.probe) else 0
        return names + [f"class {i}" for i in range(len(names), n_classes)]

    def _run_row(self, class_names: list[str]) -> dict[str, Any]:
        model = self.model
        cls = type(model)
        try:
            hparams = json.dumps(dict(getattr(model, "hparams", {}) or {}), default=str, sort_keys=True)
        except (TypeError, ValueError):
            hparams = "{}"
        return {
            "run_id": self.run_id,
            "name": self.run_name or self.run_id,
            "started_at": datetime.now(timezone.utc),
            "ended_at": None,
            "deepviz_version": __version__,
            "model_class": f"{cls.__module__}:{cls.__qualname__}",
            "model_summary": repr(model),
            "n_params": sum(p.numel() for p in model.parameters()),
            "hparams": hparams,
            "dataset": self.dataset_name or "",
            "class_names": class_names,
            "input_shape": list(self.probe.inputs.shape[1:]),
            "layers": self.layers,
            "conv_layers": self.convs,
            "n_probe": len(self.probe),
            "probe_seed": self.probe_seed,
            "world_size": _dist()[1],
            "activation_dtype": self.activation_dtype,
        }

    def _capture(self, step: int, outputs) -> Captured | None:
        """The probe through the model (this process's share, or ``outputs``); on rank zero, the whole probe's."""
        rank, world = _dist()
        probe = self.probe
        if outputs is not None and self._covered(step, *outputs):
            seen, part = outputs
            if world == 1:
                return part
            rows = np.flatnonzero(seen)
            part = part.take(rows)
        else:
            share = slice(rank, None, world)  # a view: indexing by an array of rows copied the whole probe
            rows = np.arange(len(probe))[share]
            with rank_zero_buffers(self.model):
                part = capture_tensors(self.model, probe.inputs[share], probe.labels[share], self.layers,
                                       self.batch_size)
        return part if world == 1 else gather_to_zero(rows, part, len(probe))

    def _covered(self, step: int, seen: np.ndarray, part: Captured | None) -> bool:
        """Whether the ranks' ``outputs`` together hold every probe row (all ranks agree); if not, why, once."""
        broken = part is None
        if _dist()[1] > 1:
            seen, broken = seen_anywhere(seen, broken)
        if seen.all() and not broken:
            return True
        if not self._warned_pass and _dist()[0] == 0:
            self._warned_pass = True
            why = ("the forward it came from did not give every layer once per batch" if broken
                   else f"it covered {int(seen.sum())} of the {len(seen)} probe rows")
            warnings.warn(
                f"deepviz: the snapshot at step {step} takes an extra forward pass over the probe: {why}. "
                "It reuses validation's forward only when validation runs every probe row (all of its batches, "
                "limit_val_batches=1.0) through the model once (this warning is given once).",
                stacklevel=4,
            )
        return False

    def _state(self) -> dict | None:
        n_params = sum(p.numel() for p in self.model.parameters())
        wanted = self.save_state is True or (self.save_state == "auto" and n_params <= AUTO_STATE_MAX_PARAMS)
        return state_copy(self.model) if wanted else None
