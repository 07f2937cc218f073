"""Shared fixtures: small real things (8x8 digits, a tiny conv net, a store in tmp_path).

``populated_db`` is built once per session by two short epochs of real
Lightning training with ``StatsCallback``; tests that only read use ``db``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

# Lightning and torch use every core by default; the test machine has two and
# other work shares them, so one intra-op thread keeps runs fast and steady.
torch.set_num_threads(1)
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 sklearn digits: X float32 (N, 1, 8, 8) in [0, 1], y int64 (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    return x, y


def digits_loaders(digits_tensors, n_train: int = 320, n_val: int = 160, batch_size: int = 64, seed: int = 0):
    """Train/val DataLoaders over disjoint digits, deterministic order."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = digits_tensors
    train = TensorDataset(x[:n_train], y[:n_train])
    val = TensorDataset(x[n_train : n_train + n_val], y[n_train : n_train + n_val])
    gen = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=gen),
        DataLoader(val, batch_size=batch_size),
    )


def quiet_trainer(pl=None, **kwargs):
    """A CPU Lightning Trainer with no progress bar, logger or model summary."""
    if pl is None:
        import lightning.pytorch as pl
    kwargs.setdefault("accelerator", "cpu")
    kwargs.setdefault("devices", 1)
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_progress_bar", False)
    kwargs.setdefault("enable_model_summary", False)
    kwargs.setdefault("enable_checkpointing", False)
    kwargs.setdefault("num_sanity_val_steps", 0)
    return pl.Trainer(**kwargs)


@pytest.fixture(scope="session")
def populated_db(tmp_path_factory, digits_tensors) -> Path:
    """A stats db from 2 short epochs of SmallNet on digits (probe of 120 val images, checkpoints on)."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    from deepviz import StatsCallback
    from trainers.models import SmallNet

    root = tmp_path_factory.mktemp("populated")
    db = root / "stats_db"
    x, y = digits_tensors
    pl.seed_everything(0, workers=True, verbose=False)
    train, val = digits_loaders(digits_tensors)
    probe = (x[480:780], y[480:780])
    callback = StatsCallback(db, probe=probe, probe_size=120, dataset_name="digits", class_names=[str(i) for i in range(10)])
    trainer = quiet_trainer(
        max_epochs=2,
        enable_checkpointing=True,
        callbacks=[callback, ModelCheckpoint(dirpath=root / "ckpt", save_top_k=-1)],
        num_sanity_val_steps=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(SmallNet(), train, val)
    return db


@pytest.fixture
def db(populated_db):
    from deepviz import StatsDB

    return StatsDB(populated_db)


@pytest.fixture
def cifar_dir() -> Path:
    """The shared CIFAR-10 subset (official python format), skipped when absent."""
    path = REPO.parent / "shared/data/cifar-10-batches-py"
    if not (path / "data_batch_1").exists():
        pytest.skip(f"CIFAR-10 subset not found at {path}")
    return path
