"""``StatsCallback``: decides *when* to snapshot; the ``Recorder`` captures, gathers and writes."""

from __future__ import annotations

import os
import warnings
from typing import Any

from torch.utils.data import DataLoader

from . import checkpoint_io
from .callback_checks import PROBE_SPLITS, check_recording, check_schedule
from .errors import ConfigurationError
from .piggyback import ValidationTap, batch_indices, unordered_reason
from .probe import SPLIT_NAMES, dataset_of
from .recorder import AUTO_STATE_MAX_PARAMS, Recorder
from .store import DEFAULT_DB

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

__all__ = ["AUTO_STATE_MAX_PARAMS", "StatsCallback"]


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class StatsCallback(*_bases):
    """Snapshot what the network makes of a fixed probe set during training.

    Args:
        db: folder of the stats database (created if missing).
        probe: a torch ``Dataset`` of (image, label) pairs, or a pair ``(images, labels)``;
            or ``"val"`` (``"train"``): the dataset of the trainer's validation (training)
            dataloader, whether given to ``fit`` or by a DataModule, taken when training
            starts. It must be one map-style dataset of (image, label) pairs: several
            loaders, an IterableDataset or items without labels are refused.
        probe_size: number of probe images, picked class-stratified with ``probe_seed``
            (all of ``probe`` when None).
        layers: module names to capture (as ``named_modules()`` reports them), or
            ``<conv>.gap`` for a conv's output averaged over its positions;
            default: every conv's ``.gap`` and every ``nn.Linear``.
        every_n_epochs: snapshot after every n-th validation (or training) epoch.
        every_n_train_steps: snapshot every n optimizer steps instead of per epoch
            (``every_n_epochs`` must then stay 1).
        schedule: ``"log"`` adds the global steps 1, 2, 4, 8, ... that come before the
            first regular snapshot: those of the first ``every_n_epochs`` epochs, or
            those below ``every_n_train_steps``. Early training changes fastest.
        on_checkpoint: also snapshot whenever a checkpoint is saved.
        run_name: a readable name for the run (the run id is used when None).
        dataset_name, class_names: recorded in the run's metadata.
        activation_dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        save_state: store the model's state dict with each snapshot: True, False, or
            ``"auto"`` (models of at most 5M parameters).
        batch_size: probe batch size for the capture forward pass.
        write_queue: snapshots that may wait for the background writer (1..64) before
            training waits for it.

    When the probe is the validation set or a subset of it (``probe="val"``, or
    the validation loader's own dataset) and the loader's order is fixed
    (``shuffle=False``, or Lightning's ``DistributedSampler`` under DDP), a
    snapshot after validation is made from validation's own forward, hooked on
    the probe rows of each batch: no second forward. Otherwise, and when
    validation did not run every probe row (``limit_val_batches``), it takes an
    extra forward pass over the probe, and says why once.

    Step 0 (the initial weights) is always recorded. Every checkpoint the
    trainer saves at a snapshot's step is kept in the db's own checkpoint
    folder as ``step=<step>.ckpt`` (a hard link where the file system allows,
    else a copy) and recorded against that step. The file Lightning wrote
    (``last.ckpt``, a best-k file) is never recorded itself: Lightning rewrites
    and prunes those, so they are no evidence of a past step.
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
        schedule: str | None = None,
        on_checkpoint: bool = True,
        run_name: str | None = None,
        dataset_name: str | None = None,
        class_names: list[str] | None = None,
        probe_seed: int = 0,
        activation_dtype: str = "float16",
        save_state: bool | str = "auto",
        batch_size: int = 256,
        write_queue: int = 2,
    ):
        super().__init__()
        check_recording("StatsCallback", probe, probe_size, layers, activation_dtype, save_state, class_names,
                        batch_size, write_queue, PROBE_SPLITS)
        check_schedule(every_n_epochs, every_n_train_steps, schedule)
        self.db = os.fspath(db)
        self._state_key: str | None = None
        self.probe_source = probe
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.schedule = schedule
        self.on_checkpoint = on_checkpoint
        # What the Recorder is made with, at setup (or when training starts, for probe="val"/"train").
        self._recording = dict(probe_size=probe_size, layers=layers, run_name=run_name, dataset_name=dataset_name,
                               class_names=class_names, probe_seed=probe_seed, activation_dtype=activation_dtype,
                               save_state=save_state, batch_size=batch_size, write_queue=write_queue)

        self.run_id: str | None = None
        self.written: set[int] = set()  # the Recorder's own set once the run has begun
        self.recorder: Recorder | None = None
        self._validated_this_epoch = False
        self._metrics_pending: int | None = None
        self._checkpoint_io: checkpoint_io.RecordingCheckpointIO | None = None
        self._trainer = None
        self._warned_order = False
        self._tap: ValidationTap | None = None
        self._queued_at_save: dict[int, str] = {}  # a restored checkpoint's snapshots that were still being written

    # ------------------------------------------------------------------ state

    @property
    def state_key(self) -> str:
        # The resolved path: resuming with another spelling of the same folder
        # (relative, absolute, through a link) must find this state and continue the run. Resolved once:
        # Lightning asks for it at every hook of every batch (to name the hook to its profiler), and
        # resolving a path is a system call per folder in it.
        if self._state_key is None:
            self._state_key = f"StatsCallback[db={os.path.realpath(self.db)}]"
        return self._state_key

    def state_dict(self) -> dict[str, Any]:
        # A checkpoint must not run ahead of the db: the snapshots of earlier steps are written first. One of
        # this very step may still be queued: it is saved as such, and taken again from these weights on resume.
        queued = {}
        if self.recorder is not None and self._trainer is not None:
            self.recorder.settle(self._trainer.global_step)
            queued = dict(self.recorder.queued)
        state = {"run_id": self.run_id, "written": sorted(self.written - set(queued))}
        if queued:
            state["queued"] = sorted([int(s), t] for s, t in queued.items())
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.run_id = state_dict.get("run_id")
        self.written = set(state_dict.get("written", []))
        self._queued_at_save = {int(s): str(t) for s, t in state_dict.get("queued", [])}

    # ------------------------------------------------------------------ hooks: when

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        self._trainer = trainer
        if isinstance(self.probe_source, str):  # "val" or "train": made when training starts, from the trainer's loaders
            self.recorder = None
        else:
            self.recorder = self._make_recorder(pl_module, self.probe_source)  # misconfiguration fails here

    def on_train_start(self, trainer, pl_module) -> None:
        if self.recorder is None:
            # The trainer's loaders exist now (set up once, by Lightning); the probe is their dataset.
            self.recorder = self._recorder_of_trainer_data(trainer)
        # Here rather than in on_fit_start: some strategies restore callback
        # state from a checkpoint only after on_fit_start, and the run id
        # must come from that state when resuming.
        self._begin_run(trainer)
        if trainer.global_step == 0:
            self._snapshot(trainer, "start")
        else:
            self._resumed_snapshot(trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._validated_this_epoch = False

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush_metrics(trainer)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self._validation_snapshot_due(trainer):
            return
        loader = self._validation_to_reuse(trainer)  # asked each time: Lightning may reload the loaders
        if loader is not None:
            recorder = self.recorder
            self._tap = ValidationTap(pl_module, recorder.layers, recorder.probe.ids, recorder.probe.labels,
                                      batch_indices(loader))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self._tap is not None:
            self._tap.begin(batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._tap is not None:
            self._tap.end(batch_idx)

    def on_validation_end(self, trainer, pl_module) -> None:
        # on_validation_end, not on_validation_epoch_end: the epoch's val
        # metrics reach callback_metrics only after the latter.
        tap, self._tap = self._tap, None
        if trainer.sanity_checking:
            return
        self._validated_this_epoch = True
        if self.every_n_train_steps is None and self._epoch_due(trainer):
            self._snapshot(trainer, "validation", outputs=tap.result() if tap is not None else None)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, n = trainer.global_step, self.every_n_train_steps
        if n is not None and step > 0 and step % n == 0:
            self._snapshot(trainer, "train_steps")
        elif self.schedule == "log" and _is_power_of_two(step) and self._before_first_regular(trainer):
            self._snapshot(trainer, "train_steps")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_train_steps is None and self._epoch_due(trainer) and not self._validated_this_epoch:
            self._snapshot(trainer, "epoch")  # no validation loop: snapshot at epoch end
        self._flush_metrics(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self.on_checkpoint and not trainer.sanity_checking:
            self._snapshot(trainer, "checkpoint")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._flush_metrics(trainer)
        if self.recorder is not None and self.run_id is not None:
            self.recorder.close()  # marks the run ended

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Lightning calls no teardown after an exception: what is queued is written, the run lock released,
        # and a validation batch's hooks taken off the model.
        tap, self._tap = self._tap, None
        if tap is not None:
            tap.remove_hooks()
        if self.recorder is not None:
            self.recorder.release()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self.recorder is not None:
            self.recorder.release()  # releases the run lock: another fit may resume this run
        if self._checkpoint_io is not None:
            checkpoint_io.uninstall(trainer.strategy, self._checkpoint_io)
            self._checkpoint_io = None

    # ------------------------------------------------------------------ helpers

    def _epoch_due(self, trainer) -> bool:
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def _before_first_regular(self, trainer) -> bool:
        if self.every_n_train_steps is not None:
            return trainer.global_step < self.every_n_train_steps
        return trainer.current_epoch < self.every_n_epochs

    def _validation_snapshot_due(self, trainer) -> bool:
        return (self.recorder is not None and self.every_n_train_steps is None and self._epoch_due(trainer)
                and trainer.global_step not in self.recorder.written)

    def _validation_to_reuse(self, trainer):
        """The validation loader whose forward the snapshots reuse: the probe is its dataset, and its order fixed."""
        loaders = trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) and len(loaders) == 1 else loaders
        if not isinstance(loader, DataLoader):
            return None
        source = self.probe_source
        if not (source == "val" if isinstance(source, str) else source is loader.dataset):
            return None  # the probe is not validation's: the extra pass
        why = unordered_reason(loader)
        if why is not None:
            if trainer.is_global_zero and not self._warned_order:
                self._warned_order = True
                warnings.warn(
                    f"deepviz: the probe is the validation set, but its loader's batches cannot be matched to probe "
                    f"ids ahead of time: {why}. Each snapshot takes an extra forward pass over the probe instead.",
                    stacklevel=2,
                )
            return None
        return loader

    def _resumed_snapshot(self, trainer) -> None:
        """Resumed at a step whose snapshot was still being written (or that saved this very checkpoint):
        take it again, from these weights, when the db lacks it. Its deferred metrics are not known now."""
        step = trainer.global_step
        trigger = self._queued_at_save.get(step, "checkpoint" if self.on_checkpoint else None)
        if trigger is not None:
            self.recorder.snapshot(step, epoch=trainer.current_epoch, metrics={}, trigger=trigger)

    def _make_recorder(self, pl_module, probe) -> Recorder:
        return Recorder(self.db, pl_module, probe, **self._recording)

    def _recorder_of_trainer_data(self, trainer) -> Recorder:
        """A Recorder whose probe is the dataset of the trainer's validation (or training) dataloader."""
        split = self.probe_source
        loaders = trainer.val_dataloaders if split == "val" else trainer.train_dataloader
        dataset = dataset_of(loaders, split)
        if split == "train" and trainer.is_global_zero:
            warnings.warn(
                "deepviz: probe='train' takes the probe from the training set, so the timeline shows images the "
                "network trains on: it tells how it fits them, not how it generalises. Use probe='val' for held-out "
                "images.",
                stacklevel=2,
            )
        try:
            return self._make_recorder(trainer.lightning_module, dataset)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"probe={split!r} is the trainer's {SPLIT_NAMES[split]} dataset ({type(dataset).__name__}): {exc}"
            ) from exc

    def _begin_run(self, trainer) -> None:
        """Continue the run restored from a checkpoint, or start a new one."""
        self.run_id = self.recorder.start(self.run_id, self.written)
        self.written = self.recorder.written  # one set: the state saved with a checkpoint is the recorder's
        if trainer.is_global_zero and self._checkpoint_io is None:  # rank zero writes the checkpoints: it keeps them
            self._checkpoint_io = checkpoint_io.install(trainer.strategy, self._keep_checkpoint)

    def _keep_checkpoint(self, checkpoint: dict, path) -> None:
        step = checkpoint.get("global_step")
        if step is not None:
            self.recorder.keep_checkpoint(int(step), path)

    def _flush_metrics(self, trainer) -> None:
        """Write the metrics of a snapshot taken after validation, now that the epoch's are all logged."""
        step, self._metrics_pending = self._metrics_pending, None
        if step is not None and self.recorder is not None:
            self.recorder.add_metrics(step, trainer.callback_metrics)

    def _snapshot(self, trainer, trigger: str, outputs=None) -> None:
        # After validation the epoch's training metrics (train_loss_epoch,
        # train_acc) are not logged yet: a per-epoch snapshot's metrics are
        # written at on_train_epoch_end, not stale ones now.
        if self.recorder is None:  # trainer.validate or test outside a fit: there is no run to add to
            return
        deferred = trigger in ("validation", "epoch")
        metrics = {} if deferred else trainer.callback_metrics
        if self.recorder.snapshot(trainer.global_step, epoch=trainer.current_epoch, metrics=metrics, trigger=trigger,
                                  outputs=outputs):
            if deferred:
                self._metrics_pending = trainer.global_step
