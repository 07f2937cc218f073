"""``Recorder``: the snapshots of any training loop. It captures, gathers under DDP and writes; the caller says when.

A plain PyTorch loop calls ``rec.snapshot(step, epoch=..., metrics=...)``
where it wants one; ``StatsCallback`` is a thin Lightning adapter that calls
the same methods from its hooks. Capture (``capture.py``), the store
(``StatsWriter``) and DDP gathering live here and nowhere else.

Under ``torch.distributed`` (initialised), every rank makes a ``Recorder`` and
calls ``start`` and ``snapshot`` at the same points, as with any collective:
each rank captures its share of the probe, rank zero gathers the shares in
probe order and alone writes.
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
from .capture import capture, conv_layers, merge, rank_zero_buffers, resolve_layers, state_bytes, weights_of
from .checkpoint_io import keep_step_file
from .probe import ProbeSet, build_probe, thumbnails
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


class Recorder:
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
    ):
        if not isinstance(model, nn.Module):
            raise ConfigurationError(f"Recorder needs the torch nn.Module being trained as model, got {type(model).__name__}.")
        check_recording("Recorder", probe, probe_size, layers, activation_dtype, save_state, class_names,
                        batch_size)
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
        self._warned_nonfinite = False
        self._warned_write = False

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
        return self.run_id

    def snapshot(self, step: int, *, epoch: int = 0, metrics: dict | None = None, trigger: str = "snapshot") -> bool:
        """Capture and write the snapshot of ``step``; True when it was committed (on rank zero).

        A step already written is skipped. ``metrics``: numbers (or one-element
        tensors) to store with the step; ``trigger``: what asked for it, as the
        ``steps`` table records it.
        """
        if self.run_id is None:
            self.start()
        step = int(step)
        if step in self.written:
            return False
        self.written.add(step)
        result = self._capture()
        if result is None:  # not rank zero: rank zero writes
            return False
        self._warn_nonfinite(result.nonfinite, step)
        values = scalar_metrics(metrics or {})
        if not self._safe_write(lambda: self._write_snapshot(step, int(epoch), trigger, result, values), step):
            return False
        self.committed.add(step)
        return True

    def add_metrics(self, step: int, metrics: dict) -> None:
        """Add metrics to a written step, e.g. ones known only after its snapshot."""
        if self.writer is not None and self.run_id is not None:
            values = scalar_metrics(metrics)
            self._safe_write(lambda: self.writer.add_metrics(self.run_id, int(step), values))

    def keep_checkpoint(self, step: int, path: str | os.PathLike) -> None:
        """Keep a checkpoint file saved at a step this Recorder wrote, in the db, and record it.

        After a resume, a step written before was trained again: its new
        weights need not be the stored ones, so it is not recorded.
        """
        step = int(step)
        if self.writer is None or step not in self.committed or step in self._kept or self.writer.remote:
            return  # (on object storage the state dict stored with each snapshot stands in for the checkpoint)

        def keep():
            folder = self.writer.layout.checkpoint_dir(self.run_id)
            kept = keep_step_file(path, folder / f"step={step}.ckpt")
            self.writer.record_checkpoint(self.run_id, step, os.fspath(kept.absolute()))

        if self._safe_write(keep):
            self._kept.add(step)

    def close(self) -> None:
        """Mark the run ended and release its lock (another process may then continue it)."""
        if self.writer is not None and self.run_id is not None:
            self._safe_write(lambda: self.writer.update_run(self.run_id, ended_at=datetime.now(timezone.utc)))
        self.release()

    def release(self) -> None:
        """Release the run's lock without marking the run ended."""
        if self.writer is not None:
            self.writer.close()

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
        # Probes first: a run row is listed by readers, so what it refers to must exist.
        self.writer.write_probes(
            self.run_id, self.probe.ids, self.probe.labels.numpy(), class_names, thumbnails(self.probe.inputs),
            self.probe.inputs.numpy(),
        )
        self.writer.write_run(self._run_row(class_names))

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

    def _capture(self):
        """This process's share of the probe through the model; on rank zero, the whole probe's result."""
        rank, world = _dist()
        probe = self.probe
        rows = np.arange(rank, len(probe), world)
        with rank_zero_buffers(self.model):
            result = capture(self.model, probe.inputs[rows], probe.labels[rows], self.layers, self.batch_size)
        if world == 1:
            return result
        gathered = [None] * world if rank == 0 else None
        torch.distributed.gather_object((rows, result), gathered, dst=0)
        return merge(gathered, len(probe)) if rank == 0 else None

    def _state(self) -> bytes | None:
        n_params = sum(p.numel() for p in self.model.parameters())
        wanted = self.save_state is True or (self.save_state == "auto" and n_params <= AUTO_STATE_MAX_PARAMS)
        return state_bytes(self.model) if wanted else None

    def _write_snapshot(self, step: int, epoch: int, trigger: str, result, metrics: dict) -> None:
        """What one snapshot stores: the capture, the conv weights, metrics and (maybe) the state dict."""
        self.writer.write_snapshot(
            self.run_id,
            step,
            epoch=epoch,
            trigger=trigger,
            probe_ids=self.probe.ids,
            labels=self.probe.labels.numpy(),
            probs=result.probs,
            loss=result.loss,
            activations=result.activations,
            weights=weights_of(self.model, self.convs),
            metrics=metrics,
            nonfinite_layers=result.nonfinite,
            state=self._state(),
            activation_dtype=self.activation_dtype,
        )

    def _warn_nonfinite(self, bad: list[str], step: int) -> None:
        if bad and not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(
                f"deepviz: NaN or Inf in {', '.join(bad)} at step {step}. The values are stored as they are and the "
                "step is flagged (steps.nonfinite_layers); this warning is given once per run.",
                stacklevel=4,
            )

    def _safe_write(self, fn, step: int | None = None) -> bool:
        """Run a write; an OS error (disk full, permissions) skips it with one warning and training goes on."""
        try:
            fn()
            return True
        except OSError as exc:
            if not self._warned_write:
                self._warned_write = True
                where = f"snapshot at step {step}" if step is not None else "metadata write"
                warnings.warn(
                    f"deepviz: {where} skipped: {exc}. Nothing partial was left in {self.db}; training goes on. "
                    "Free space or fix permissions to resume snapshots (this warning is given once).",
                    stacklevel=3,
                )
            return False
