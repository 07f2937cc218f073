"""``StatsCallback``: decides *when* to snapshot; capture decides what, the store writes it."""

from __future__ import annotations

import json
import os
import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from . import __version__
from . import checkpoint_io
from .capture import capture, conv_layers, merge, rank_zero_buffers, resolve_layers, state_bytes, weights_of
from .callback_checks import check_arguments, check_labels_named
from .probe import ProbeSet, build_probe, thumbnails
from .store import DEFAULT_DB, StatsWriter, check_layer_name, new_run_id

# The callback must be an instance of the Callback class of whichever Lightning
# package the user's Trainer comes from; subclassing both (when both are
# installed) makes it work with ``lightning.pytorch`` and ``pytorch_lightning``.
_bases = []
try:
    from lightning.pytorch import Callback as _LCallback

    _bases.append(_LCallback)
except ImportError:  # pragma: no cover - depends on what is installed
    pass
try:
    from pytorch_lightning import Callback as _PLCallback

    if _PLCallback not in _bases:
        _bases.append(_PLCallback)
except ImportError:  # pragma: no cover
    pass
if not _bases:  # pragma: no cover
    raise ImportError("deepviz.StatsCallback needs `lightning` or `pytorch-lightning`: pip install lightning")

#: Models with at most this many parameters get their state dict stored with
#: every snapshot (``save_state="auto"``), so ``StatsDB.load_model`` works at
#: every step, step 0 included, without checkpoints.
AUTO_STATE_MAX_PARAMS = 5_000_000


def _dist():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _scalar_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            out[str(k)] = float(v.item() if isinstance(v, torch.Tensor) else v)
        except (TypeError, ValueError, RuntimeError):
            continue
    return out


class StatsCallback(*_bases):
    """Snapshot what the network makes of a fixed probe set during training.

    Args:
        db: folder of the stats database (created if missing).
        probe: a torch ``Dataset`` of (image, label) pairs, or a pair ``(images, labels)``.
        probe_size: number of probe images, picked class-stratified with ``probe_seed``
            (all of ``probe`` when None).
        layers: module names to capture (as ``named_modules()`` reports them);
            default: every ``nn.Linear``.
        every_n_epochs: snapshot after every n-th validation (or training) epoch.
        every_n_train_steps: snapshot every n optimizer steps instead of per epoch.
        on_checkpoint: also snapshot whenever a checkpoint is saved.
        run_name: a readable name for the run (the run id is used when None).
        dataset_name, class_names: recorded in the run's metadata.
        activation_dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        save_state: store the model's state dict with each snapshot: True, False, or
            ``"auto"`` (models of at most 5M parameters).
        batch_size: probe batch size for the capture forward pass.

    Every checkpoint the trainer saves at a snapshot's step is kept in the db's
    own checkpoint folder as ``step=<step>.ckpt`` (a hard link where the file
    system allows, else a copy) and recorded against that step. The file
    Lightning wrote (``last.ckpt``, a best-k file) is never recorded itself:
    Lightning rewrites and prunes those, so they are no evidence of a past step.
    """

    def __init__(
        self,
        db: str | os.PathLike = DEFAULT_DB,
        probe: Any = None,
        probe_size: int | None = 1000,
        *,
        layers: list[str] | None = None,
        every_n_epochs: int = 1,
        every_n_train_steps: int | None = None,
        on_checkpoint: bool = True,
        run_name: str | None = None,
        dataset_name: str | None = None,
        class_names: list[str] | None = None,
        probe_seed: int = 0,
        activation_dtype: str = "float16",
        save_state: bool | str = "auto",
        batch_size: int = 256,
    ):
        super().__init__()
        check_arguments(probe, probe_size, layers, every_n_epochs, every_n_train_steps, activation_dtype,
                         save_state, class_names, batch_size)
        self.db = os.fspath(db)
        self.probe_source = probe
        self.probe_size = probe_size
        self.requested_layers = layers
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.on_checkpoint = on_checkpoint
        self.run_name = run_name
        self.dataset_name = dataset_name
        self.class_names = list(class_names) if class_names is not None else None
        self.probe_seed = probe_seed
        self.activation_dtype = activation_dtype
        self.save_state = save_state
        self.batch_size = batch_size

        self.run_id: str | None = None
        self.written: set[int] = set()
        self.writer: StatsWriter | None = None
        self.probe: ProbeSet | None = None
        self.layers: list[str] = []
        self.convs: list[str] = []
        self._validated_this_epoch = False
        self._warned_nonfinite = False
        self._warned_write = False
        self._metrics_pending: int | None = None
        self._committed: set[int] = set()  # steps whose snapshot this fit wrote (not skipped, not resumed)
        self._kept: set[int] = set()  # steps whose checkpoint is kept and recorded
        self._recorder: checkpoint_io.RecordingCheckpointIO | None = None

    # ------------------------------------------------------------------ state

    @property
    def state_key(self) -> str:
        # The resolved path: resuming with another spelling of the same folder
        # (relative, absolute, through a link) must find this state and continue the run.
        return f"StatsCallback[db={os.path.realpath(self.db)}]"

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "written": sorted(self.written)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.run_id = state_dict.get("run_id")
        self.written = set(state_dict.get("written", []))

    # ------------------------------------------------------------------ hooks: when

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._prepare(trainer, pl_module)  # misconfiguration fails here, before the first epoch

    def on_train_start(self, trainer, pl_module) -> None:
        # Here rather than in on_fit_start: some strategies restore callback
        # state from a checkpoint only after on_fit_start, and the run id
        # must come from that state when resuming.
        self._begin_run(trainer, pl_module)
        if trainer.global_step == 0:
            self._snapshot(trainer, pl_module, "start")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._validated_this_epoch = False

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush_metrics(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        # on_validation_end, not on_validation_epoch_end: the epoch's val
        # metrics reach callback_metrics only after the latter.
        if trainer.sanity_checking:
            return
        self._validated_this_epoch = True
        if self.every_n_train_steps is None and self._epoch_due(trainer):
            self._snapshot(trainer, pl_module, "validation")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = self.every_n_train_steps
        if n is not None and trainer.global_step > 0 and trainer.global_step % n == 0:
            self._snapshot(trainer, pl_module, "train_steps")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_train_steps is None and self._epoch_due(trainer) and not self._validated_this_epoch:
            self._snapshot(trainer, pl_module, "epoch")  # no validation loop: snapshot at epoch end
        self._flush_metrics(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self.on_checkpoint and not trainer.sanity_checking:
            self._snapshot(trainer, pl_module, "checkpoint")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._flush_metrics(trainer)
        if trainer.is_global_zero and self.writer is not None and self.run_id is not None:
            self._safe_write(lambda: self.writer.update_run(self.run_id, ended_at=datetime.now(timezone.utc)))

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self.writer is not None:
            self.writer.close()  # releases the run lock: another fit may resume this run
        if self._recorder is not None:
            checkpoint_io.uninstall(trainer.strategy, self._recorder)
            self._recorder = None

    # ------------------------------------------------------------------ helpers

    def _epoch_due(self, trainer) -> bool:
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def _prepare(self, trainer, pl_module) -> None:
        self.layers = resolve_layers(pl_module, self.requested_layers)
        for name in self.layers:
            check_layer_name(name)
        self.convs = conv_layers(pl_module)
        if trainer.is_global_zero:
            self.writer = StatsWriter(self.db)
        self.probe = build_probe(self.probe_source, self.probe_size, self.probe_seed)
        check_labels_named(self.probe.labels, self.class_names)

    def _begin_run(self, trainer, pl_module) -> None:
        """Continue the run restored from a checkpoint, or start a new one."""
        resumed = self.run_id is not None
        if not resumed:
            self.run_id = self._broadcast(new_run_id() if trainer.is_global_zero else None)
        if trainer.is_global_zero:
            if resumed and self.writer.read_run(self.run_id) is not None:
                # Clear what a crash left, and never write a committed step again.
                self.written |= set(self.writer.open_run(self.run_id))
                self._safe_write(lambda: self.writer.update_run(self.run_id, ended_at=None))
            else:
                self._write_run(trainer, pl_module)
            if self._recorder is None:  # rank zero writes the checkpoints, so it alone keeps them
                self._recorder = checkpoint_io.install(trainer.strategy, self._keep_checkpoint)
        self.written = set(self._broadcast(sorted(self.written)))

    def _broadcast(self, obj):
        rank, world = _dist()
        if world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def _keep_checkpoint(self, checkpoint: dict, path) -> None:
        """Keep and record a checkpoint saved at a step this fit snapshotted (after a resume,
        a step written before was trained again: its new weights need not be the stored ones)."""
        step = checkpoint.get("global_step")
        if step is None or int(step) not in self._committed or int(step) in self._kept or self.writer.remote:
            return  # (on object storage the state dict stored with each snapshot stands in for the checkpoint)
        step = int(step)

        def keep():
            folder = self.writer.layout.checkpoint_dir(self.run_id)
            kept = checkpoint_io.keep_step_file(path, folder / f"step={step}.ckpt")
            self.writer.record_checkpoint(self.run_id, step, os.fspath(kept.absolute()))

        if self._safe_write(keep):
            self._kept.add(step)

    def _write_run(self, trainer, pl_module) -> None:
        cls = type(pl_module)
        if cls.__module__ == "__main__":
            warnings.warn(
                f"{cls.__name__} is defined in __main__: StatsDB.load_model can rebuild it only where "
                "that script's class is importable. Define the model in a module to load it later.",
                stacklevel=2,
            )
        class_names = self._run_class_names()
        # Probes first: a run row is listed by readers, so what it refers to must exist.
        self.writer.write_probes(
            self.run_id, self.probe.ids, self.probe.labels.numpy(), class_names, thumbnails(self.probe.inputs), self.probe.inputs.numpy()
        )
        self.writer.write_run(self._run_row(trainer, pl_module, class_names))

    def _run_class_names(self) -> list[str]:
        """The given class names (or the probe dataset's), padded to cover every probe label."""
        names = list(self.class_names or getattr(self.probe_source, "classes", None) or [])
        n_classes = int(self.probe.labels.max()) + 1 if len(self.probe) else 0
        return names + [f"class {i}" for i in range(len(names), n_classes)]

    def _run_row(self, trainer, pl_module, class_names: list[str]) -> dict[str, Any]:
        cls = type(pl_module)
        try:
            hparams = json.dumps(dict(getattr(pl_module, "hparams", {}) or {}), default=str, sort_keys=True)
        except (TypeError, ValueError):
            hparams = "{}"
        return {
            "run_id": self.run_id,
            "name": self.run_name or self.run_id,
            "started_at": datetime.now(timezone.utc),
            "ended_at": None,
            "deepviz_version": __version__,
            "model_class": f"{cls.__module__}:{cls.__qualname__}",
            "model_summary": repr(pl_module),
            "n_params": sum(p.numel() for p in pl_module.parameters()),
            "hparams": hparams,
            "dataset": self.dataset_name or "",
            "class_names": class_names,
            "input_shape": list(self.probe.inputs.shape[1:]),
            "layers": self.layers,
            "conv_layers": self.convs,
            "n_probe": len(self.probe),
            "probe_seed": self.probe_seed,
            "world_size": trainer.world_size,
            "activation_dtype": self.activation_dtype,
        }

    def _flush_metrics(self, trainer) -> None:
        """Write the metrics of a snapshot taken after validation, now that the epoch's are all logged."""
        step, self._metrics_pending = self._metrics_pending, None
        if step is not None and trainer.is_global_zero and self.writer is not None:
            metrics = _scalar_metrics(trainer.callback_metrics)
            self._safe_write(lambda: self.writer.add_metrics(self.run_id, step, metrics))

    def _snapshot(self, trainer, pl_module, trigger: str) -> None:
        step = int(trainer.global_step)
        if step in self.written:
            return
        self.written.add(step)
        result = self._capture(pl_module)
        if result is None or not trainer.is_global_zero:
            return
        self._warn_nonfinite(result.nonfinite, step)
        # After validation the epoch's training metrics (train_loss_epoch,
        # train_acc) are not logged yet: write a per-epoch snapshot's metrics
        # at on_train_epoch_end, not stale ones now.
        deferred = trigger in ("validation", "epoch")
        metrics = {} if deferred else _scalar_metrics(trainer.callback_metrics)
        if self._safe_write(lambda: self._write_snapshot(trainer, pl_module, step, trigger, result, metrics), step):
            self._committed.add(step)
            if deferred:
                self._metrics_pending = step

    def _capture(self, pl_module):
        """This process's share of the probe through the model; on rank zero, the whole probe's result."""
        rank, world = _dist()
        probe = self.probe
        rows = np.arange(rank, len(probe), world)
        with rank_zero_buffers(pl_module):
            result = capture(pl_module, probe.inputs[rows], probe.labels[rows], self.layers, self.batch_size)
        if world == 1:
            return result
        gathered = [None] * world if rank == 0 else None
        torch.distributed.gather_object((rows, result), gathered, dst=0)
        return merge(gathered, len(probe)) if rank == 0 else None

    def _warn_nonfinite(self, bad: list[str], step: int) -> None:
        if bad and not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(
                f"deepviz: NaN or Inf in {', '.join(bad)} at step {step}. The values are stored as they are and the "
                "step is flagged (steps.nonfinite_layers); this warning is given once per run.",
                stacklevel=3,
            )

    def _state(self, pl_module) -> bytes | None:
        n_params = sum(p.numel() for p in pl_module.parameters())
        wanted = self.save_state is True or (self.save_state == "auto" and n_params <= AUTO_STATE_MAX_PARAMS)
        return state_bytes(pl_module) if wanted else None

    def _write_snapshot(self, trainer, pl_module, step: int, trigger: str, result, metrics: dict) -> None:
        """What one snapshot stores: the capture, the conv weights, metrics and (maybe) the state dict."""
        self.writer.write_snapshot(
            self.run_id,
            step,
            epoch=trainer.current_epoch,
            trigger=trigger,
            probe_ids=self.probe.ids,
            labels=self.probe.labels.numpy(),
            probs=result.probs,
            loss=result.loss,
            activations=result.activations,
            weights=weights_of(pl_module, self.convs),
            metrics=metrics,
            nonfinite_layers=result.nonfinite,
            state=self._state(pl_module),
            activation_dtype=self.activation_dtype,
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
                    stacklevel=2,
                )
            return False
