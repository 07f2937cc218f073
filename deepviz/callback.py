"""``StatsCallback``: decides *when* to snapshot; capture decides what, the store writes it."""

from __future__ import annotations

import io
import json
import os
import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from . import __version__
from .capture import capture, conv_layers, merge, rank_zero_buffers, resolve_layers, weights_of
from .errors import ConfigurationError
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
        on_checkpoint: also snapshot whenever a checkpoint is saved, and record its path.
        run_name: a readable name for the run (the run id is used when None).
        dataset_name, class_names: recorded in the run's metadata.
        activation_dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        save_state: store the model's state dict with each snapshot: True, False, or
            ``"auto"`` (models of at most 5M parameters).
        batch_size: probe batch size for the capture forward pass.
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
        if probe is None:
            raise ConfigurationError(
                "StatsCallback needs a probe set: StatsCallback(db, probe=val_dataset, probe_size=1000), "
                "or probe=(images, labels)."
            )
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ConfigurationError(f"every_n_epochs must be an integer >= 1, got {every_n_epochs!r}.")
        if every_n_train_steps is not None and (not isinstance(every_n_train_steps, int) or every_n_train_steps < 1):
            raise ConfigurationError(f"every_n_train_steps must be None or an integer >= 1, got {every_n_train_steps!r}.")
        if activation_dtype not in ("float16", "float32"):
            raise ConfigurationError(f"activation_dtype must be 'float16' or 'float32', got {activation_dtype!r}.")
        if save_state not in (True, False, "auto"):
            raise ConfigurationError(f"save_state must be True, False or 'auto', got {save_state!r}.")
        if probe_size is not None and (not isinstance(probe_size, int) or probe_size < 1):
            raise ConfigurationError(f"probe_size must be a positive integer or None (all), got {probe_size!r}.")
        if layers is not None:
            if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
                raise ConfigurationError(f"layers must be a list of module names, got {layers!r}.")
            for name in layers:
                check_layer_name(name)
        self.db = os.fspath(db)
        self.probe_source = probe
        self.probe_size = probe_size
        self.requested_layers = layers
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.on_checkpoint = on_checkpoint
        self.run_name = run_name
        self.dataset_name = dataset_name
        self.class_names = class_names
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
        self._skipped: set[int] = set()  # steps whose snapshot could not be written (disk full, ...)
        self._wrapped_io = None

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
        if stage != "fit":
            return
        # Misconfiguration fails here, before the first epoch.
        self.layers = resolve_layers(pl_module, self.requested_layers)
        for name in self.layers:
            check_layer_name(name)
        self.convs = conv_layers(pl_module)
        if trainer.is_global_zero:
            self.writer = StatsWriter(self.db)
        self.probe = build_probe(self.probe_source, self.probe_size, self.probe_seed)

    def on_train_start(self, trainer, pl_module) -> None:
        # Here rather than in on_fit_start: some strategies restore callback
        # state from a checkpoint only after on_fit_start, and the run id
        # must come from that state when resuming.
        self._begin_run(trainer, pl_module)
        if trainer.global_step == 0:
            self._snapshot(trainer, pl_module, "start")

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
        self.written = set(self._broadcast(sorted(self.written)))
        self._wrap_checkpoint_io(trainer)

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
        if self.every_n_train_steps is None and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._snapshot(trainer, pl_module, "validation")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = self.every_n_train_steps
        if n is not None and trainer.global_step > 0 and trainer.global_step % n == 0:
            self._snapshot(trainer, pl_module, "train_steps")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch_due = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if self.every_n_train_steps is None and epoch_due and not self._validated_this_epoch:
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
        if self._wrapped_io is not None:
            io_obj, original = self._wrapped_io
            io_obj.__dict__.pop("save_checkpoint", None)
            if original is not None:
                io_obj.save_checkpoint = original
            self._wrapped_io = None

    # ------------------------------------------------------------------ helpers

    def _broadcast(self, obj):
        rank, world = _dist()
        if world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def _wrap_checkpoint_io(self, trainer) -> None:
        """Record the path of every checkpoint the trainer saves (rank zero saves)."""
        if not trainer.is_global_zero or self._wrapped_io is not None:
            return
        io_obj = trainer.strategy.checkpoint_io
        inner = io_obj.save_checkpoint
        had_own = "save_checkpoint" in io_obj.__dict__

        def save_checkpoint(checkpoint, path, storage_options=None):
            inner(checkpoint, path, storage_options)
            step = checkpoint.get("global_step")
            # Only for a step whose snapshot is in the db: a skipped one has no steps row to refer to.
            if step is not None and self.run_id is not None and int(step) in self.written and int(step) not in self._skipped:
                self._safe_write(lambda: self.writer.record_checkpoint(self.run_id, int(step), os.fspath(path)))

        io_obj.save_checkpoint = save_checkpoint
        self._wrapped_io = (io_obj, inner if had_own else None)

    def _write_run(self, trainer, pl_module) -> None:
        n_params = sum(p.numel() for p in pl_module.parameters())
        cls = type(pl_module)
        if cls.__module__ == "__main__":
            warnings.warn(
                f"{cls.__name__} is defined in __main__: StatsDB.load_model can rebuild it only where "
                "that script's class is importable. Define the model in a module to load it later.",
                stacklevel=2,
            )
        try:
            hparams = json.dumps(dict(getattr(pl_module, "hparams", {}) or {}), default=str, sort_keys=True)
        except (TypeError, ValueError):
            hparams = "{}"
        n_classes = int(self._class_count(pl_module))
        class_names = list(self.class_names or getattr(self.probe_source, "classes", None) or [])
        if len(class_names) < n_classes:
            class_names += [f"class {i}" for i in range(len(class_names), n_classes)]
        run = {
            "run_id": self.run_id,
            "name": self.run_name or self.run_id,
            "started_at": datetime.now(timezone.utc),
            "ended_at": None,
            "deepviz_version": __version__,
            "model_class": f"{cls.__module__}:{cls.__qualname__}",
            "model_summary": repr(pl_module),
            "n_params": n_params,
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
        # Probes first: a run row is listed by readers, so what it refers to must exist.
        self.writer.write_probes(
            self.run_id, self.probe.ids, self.probe.labels.numpy(), class_names, thumbnails(self.probe.inputs), self.probe.inputs.numpy()
        )
        self.writer.write_run(run)

    def _class_count(self, pl_module) -> int:
        labels_max = int(self.probe.labels.max()) + 1 if len(self.probe) else 0
        names = len(self.class_names or getattr(self.probe_source, "classes", None) or [])
        return max(labels_max, names)

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
        rank, world = _dist()
        probe = self.probe
        rows = np.arange(rank, len(probe), world)
        with rank_zero_buffers(pl_module):
            result = capture(pl_module, probe.inputs[rows], probe.labels[rows], self.layers, self.batch_size)
        if world > 1:
            gathered = [None] * world if rank == 0 else None
            torch.distributed.gather_object((rows, result), gathered, dst=0)
            if rank != 0:
                return
            result = merge(gathered, len(probe))
        if not trainer.is_global_zero:
            return
        bad = result.nonfinite
        if bad and not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(
                f"deepviz: NaN or Inf in {', '.join(bad)} at step {step}. The values are stored as they are and the "
                "step is flagged (steps.nonfinite_layers); this warning is given once per run.",
                stacklevel=2,
            )
        state = None
        if self.save_state is True or (
            self.save_state == "auto" and sum(p.numel() for p in pl_module.parameters()) <= AUTO_STATE_MAX_PARAMS
        ):
            buf = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, buf)
            state = buf.getvalue()
        # After validation the epoch's training metrics (train_loss_epoch,
        # train_acc) are not logged yet: write a per-epoch snapshot's metrics
        # at on_train_epoch_end, not stale ones now.
        deferred = trigger in ("validation", "epoch")
        metrics = {} if deferred else _scalar_metrics(trainer.callback_metrics)

        def write():
            self.writer.write_snapshot(
                self.run_id,
                step,
                epoch=trainer.current_epoch,
                trigger=trigger,
                probe_ids=probe.ids,
                labels=probe.labels.numpy(),
                probs=result.probs,
                loss=result.loss,
                activations=result.activations,
                weights=weights_of(pl_module, self.convs),
                metrics=metrics,
                nonfinite_layers=bad,
                state=state,
                activation_dtype=self.activation_dtype,
            )

        if self._safe_write(write, step):
            if deferred:
                self._metrics_pending = step
        else:
            self._skipped.add(step)

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
