"""Train a reference model on a dataset with the StatsCallback: what ``deepviz train`` runs.

The test split serves twice: as the validation set (Lightning logs val_loss
and val_acc on it) and, through a class-stratified subset of ``probe_size``
images, as the probe set that every snapshot records. Using held-out images
for the probe shows how the network generalises, not how it memorises.

Lightning's checkpoints go beside the stats db: ``<db>/../checkpoints/<run_id>/``
(or ``ckpt_dir/<run_id>/``). ``last.ckpt`` there is rewritten at every epoch and
the best-k file pruned, so neither says what the weights were at a past step:
the StatsCallback keeps a per-step hard link (or copy) of each checkpoint saved
at a snapshot in the db's own checkpoint folder, and records that.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from deepviz.callback import StatsCallback
from deepviz.callback_checks import check_schedule
from deepviz.datasets import DATASETS, load_dataset
from deepviz.errors import ConfigurationError
from deepviz.probe import stratified_subset
from deepviz.store import DEFAULT_DB

from .models import MODELS, build_model

__all__ = ["DEFAULTS", "DatasetDefaults", "RunCheckpoint", "checkpoint_root", "final_metrics", "train"]


@dataclass(frozen=True)
class DatasetDefaults:
    model: str
    batch_size: int


#: The model and batch size ``train`` uses for each dataset unless told otherwise.
#: The learning rate defaults to the model's own (``lr=`` in its ``__init__``).
DEFAULTS: dict[str, DatasetDefaults] = {
    "digits": DatasetDefaults("small", 32),
    "cifar10": DatasetDefaults("alexnet-small", 64),
    "stl10": DatasetDefaults("alexnet-small", 64),
    "mnist": DatasetDefaults("mnist-cnn", 64),
    "fashion-mnist": DatasetDefaults("mnist-cnn", 64),
    "folder": DatasetDefaults("fc64", 32),
}

VAL_BATCH_SIZE = 256
#: Seeds the probe subset and the ``max_train`` subset. It stays the same whatever ``seed`` is, so runs with
#: other seeds see the same images and share probe ids: a comparison of seeds compares weights and batch order.
DATA_SEED = 0


def checkpoint_root(db: str | os.PathLike, ckpt_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds one checkpoint folder per run: ``ckpt_dir``, else ``<db>/../checkpoints``, or
    ``./checkpoints`` for a db on object storage (``s3://...``): checkpoints stay on local disk."""
    if ckpt_dir is not None:
        return Path(ckpt_dir)
    if "://" in os.fspath(db):
        return Path("checkpoints").absolute()
    return Path(db).absolute().parent / "checkpoints"


class RunCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that saves into ``root/<run_id>`` of the StatsCallback's run.

    The run id exists only once the StatsCallback's ``on_train_start`` has run;
    Lightning calls checkpoint callbacks after all others, so the id is set by
    the time this hook runs (on every rank: the callback broadcasts it).
    """

    def __init__(self, root: Path, stats: StatsCallback, **kwargs):
        # dirpath=root until the run id is known, so that nothing resolves to the working directory
        super().__init__(dirpath=root, **kwargs)
        self._root = Path(root)
        self._stats = stats

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        if self._stats.run_id is not None:
            self.dirpath = os.path.realpath(self._root / self._stats.run_id)


class _NoTips(logging.Filter):
    """Drops Lightning's advertising lines ("Tip: try installing ...") from the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextmanager
def _without_tips():
    # Lightning logs through whichever of these loggers was set up last: it
    # depends on whether lightning, pytorch_lightning or both were imported.
    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
    loggers = [logging.getLogger(f"{name}.utilities.rank_zero") for name in names]
    tips = _NoTips()
    for logger in loggers:
        logger.addFilter(tips)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(tips)


def _positive(name: str, value, allow_none: bool = True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}.")


def _check_args(dataset, model, epochs, probe_size, batch_size, lr, max_train, image_size, num_workers) -> str:
    key = dataset.lower() if isinstance(dataset, str) else dataset
    if key not in DATASETS:
        raise ConfigurationError(f"Unknown dataset {dataset!r}. Available: {', '.join(DATASETS)}.")
    name = model or DEFAULTS[key].model
    if name not in MODELS:
        raise ConfigurationError(f"Unknown model {name!r}. Available: {', '.join(MODELS)}.")
    _positive("epochs", epochs, allow_none=False)
    _positive("probe_size", probe_size)
    _positive("batch_size", batch_size)
    _positive("max_train", max_train)
    _positive("image_size", image_size)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigurationError(f"num_workers must be an integer >= 0, got {num_workers!r}.")
    if lr is not None and (not isinstance(lr, (int, float)) or isinstance(lr, bool) or not np.isfinite(lr) or lr <= 0):
        raise ConfigurationError(f"lr must be a positive number, got {lr!r}.")
    return key


def train(
    dataset: str = "digits",
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    model: str | None = None,
    epochs: int = 5,
    probe_size: int | None = 1000,
    db: str | os.PathLike = DEFAULT_DB,
    run_name: str | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    image_size: int | None = None,
    progress: bool = True,
    max_train: int | None = None,
    num_workers: int = 0,
    ckpt_dir: str | os.PathLike | None = None,
    accelerator: str = "auto",
    every_n_train_steps: int | None = None,
    schedule: str | None = None,
) -> str:
    """Train a reference model with the StatsCallback and return the run id.

    ``model`` defaults per dataset (see :data:`DEFAULTS`); ``max_train`` keeps
    a class-stratified subset of that many training images (for quick runs);
    ``image_size`` resizes every image to a square of that side. ``seed`` seeds the weights and the batch order;
    the probe set and the ``max_train`` subset come from :data:`DATA_SEED`, so runs of other seeds share their
    probe ids and can be compared (``StatsDB.compare``, ``/compare``). Snapshots go
    to ``db``; checkpoints (the best by val_acc, and the last) to
    ``checkpoint_root(db, ckpt_dir) / run_id``. A snapshot comes after every epoch, or every
    ``every_n_train_steps`` optimizer steps; ``schedule="log"`` adds steps 1, 2, 4, 8, ...
    before the first of those (see ``StatsCallback``).
    """
    key = _check_args(dataset, model, epochs, probe_size, batch_size, lr, max_train, image_size, num_workers)
    check_schedule(1, every_n_train_steps, schedule)
    model_name = model or DEFAULTS[key].model
    batch_size = batch_size or DEFAULTS[key].batch_size

    x_train, y_train, x_test, y_test, class_names = _tensors(key, data_dir, download, image_size, progress,
                                                               max_train, seed)
    _, channels, height, _ = x_train.shape
    kwargs = {} if lr is None else {"lr": float(lr)}
    net = build_model(model_name, in_channels=channels, image_size=height, n_classes=len(class_names), **kwargs)

    stats = StatsCallback(
        db,
        probe=(x_test, y_test),
        probe_size=probe_size,
        run_name=run_name,
        dataset_name=key,
        class_names=class_names,
        probe_seed=DATA_SEED,
        every_n_train_steps=every_n_train_steps,
        schedule=schedule,
    )
    checkpoint = RunCheckpoint(
        checkpoint_root(db, ckpt_dir),
        stats,
        monitor="val_acc",
        mode="max",
        save_top_k=1,
        save_last=True,
        filename="{epoch}-{step}-{val_acc:.3f}",
    )
    loader_args = {"num_workers": num_workers, "persistent_workers": num_workers > 0}
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True, **loader_args)
    val_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=VAL_BATCH_SIZE, **loader_args)
    _fit(net, train_loader, val_loader, max_epochs=epochs, accelerator=accelerator, callbacks=[stats, checkpoint],
         progress=progress)
    return stats.run_id


def _tensors(key, data_dir, download, image_size, progress, max_train, seed):
    """Train and test images as tensors (the training set cut to ``max_train``), and the class names."""
    train_set = load_dataset(key, data_dir, split="train", download=download, image_size=image_size, progress=progress)
    test_set = load_dataset(key, data_dir, split="test", download=download, image_size=image_size, progress=progress)
    if len(train_set) == 0 or len(test_set) == 0:
        raise ConfigurationError(
            f"Dataset {key!r} has {len(train_set)} training and {len(test_set)} test images; both splits need at "
            "least one image (a folder needs at least two images in some class to form a test split)."
        )
    L.seed_everything(seed, workers=True, verbose=False)
    x_train, y_train = train_set.to_tensors()
    if max_train is not None and max_train < len(y_train):
        keep = torch.as_tensor(stratified_subset(y_train.numpy(), max_train, DATA_SEED))
        x_train, y_train = x_train[keep], y_train[keep]
    x_test, y_test = test_set.to_tensors()
    return x_train, y_train, x_test, y_test, train_set.class_names


def _fit(net, train_loader, val_loader, *, max_epochs, accelerator, callbacks, progress) -> None:
    with warnings.catch_warnings():
        # In-memory tensors need no loader workers; Lightning's hint says otherwise.
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        # Few batches per epoch on small data sets: the logging interval hint is noise.
        warnings.filterwarnings("ignore", message=r".*log_every_n_steps.*")
        # Lightning's own use of a deprecated torch API; nothing a user can act on.
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
        # The root holds other runs' folders; this run writes into its own, new one.
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        with _without_tips():
            trainer = L.Trainer(
                max_epochs=max_epochs,
                accelerator=accelerator,
                devices=1,
                callbacks=callbacks,
                logger=False,  # the stats db holds the metrics; no TensorBoard dependency
                enable_progress_bar=progress,
                enable_model_summary=progress,
                num_sanity_val_steps=0,
                log_every_n_steps=10,
            )
            trainer.fit(net, train_loader, val_loader)


def final_metrics(db: str | os.PathLike, run_id: str) -> dict[str, float]:
    """The last logged value of each metric of a run (val_acc, val_loss, ...), read back from the db."""
    from deepviz.store import StatsDB

    metrics = StatsDB(db).metrics(run_id)
    if metrics.empty:
        return {}
    last = metrics.sort_values("step", kind="stable").groupby("name")["value"].last()
    return {str(k): float(v) for k, v in last.items()}

