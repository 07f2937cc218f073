"""Two callback fixes: DDP captures with rank zero's BatchNorm statistics, and a resume finds its
state whatever spelling of the db path it is given."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from deepviz import StatsCallback, StatsDB
from tests.conftest import digits_loaders, quiet_trainer
from trainers.models import SmallNet

REPO = Path(__file__).resolve().parents[2]

DDP_BN_SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    import torch
    torch.set_num_threads(1)
    import lightning.pytorch as pl
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset
    from deepviz import StatsCallback
    from tests.reliability.models import BNNet

    warnings.simplefilter("ignore")
    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype("float32")).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype("int64"))
    pl.seed_everything(0, verbose=False)
    # Snapshots right after training steps, where each rank's running statistics
    # come from its own shard (DDP re-syncs buffers only at the next forward).
    cb = StatsCallback(sys.argv[1], probe=(x[480:780], y[480:780]), probe_size=101, batch_size=16, every_n_train_steps=2)
    trainer = pl.Trainer(
        strategy="ddp", devices=2, accelerator="cpu", max_epochs=1, callbacks=[cb], logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
    )
    trainer.fit(BNNet(), DataLoader(TensorDataset(x[:256], y[:256]), batch_size=32))
    """
)


def test_ddp_captures_with_rank_zero_batchnorm_statistics(tmp_path):
    script = tmp_path / "train_ddp_bn.py"
    script.write_text(DDP_BN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "db")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    db = StatsDB(tmp_path / "db")
    inputs = torch.from_numpy(db.probe_inputs())
    steps = db.steps()
    assert steps == [0, 2, 4]
    for step in steps:
        model = db.load_model(step)  # rank zero's state dict, BatchNorm buffers included
        with torch.no_grad():
            probs = torch.softmax(model(inputs), 1).numpy()
        # Every row, whichever rank captured it, is what rank zero's model gives:
        # what a single process holding that model would have stored.
        np.testing.assert_allclose(db.get_stats(step).probs_by_image, probs, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")


def fit(db, ckpt_dir: Path, epochs: int, digits_tensors, resume: bool = False) -> StatsCallback:
    from lightning.pytorch.callbacks import ModelCheckpoint

    x, y = digits_tensors
    cb = StatsCallback(db, probe=(x[480:780], y[480:780]), probe_size=40)
    trainer = quiet_trainer(max_epochs=epochs, enable_checkpointing=True,
                            callbacks=[cb, ModelCheckpoint(dirpath=ckpt_dir, save_last=True)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(SmallNet(), *digits_loaders(digits_tensors, n_train=128, n_val=64),
                    ckpt_path=str(ckpt_dir / "last.ckpt") if resume else None)
    return cb


@pytest.mark.parametrize("spelling", ["absolute", "dotdot", "symlink"])
def test_resume_with_another_spelling_of_the_db_path_continues_the_run(tmp_path, monkeypatch, digits_tensors, spelling):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    first = fit("db", tmp_path / "ckpt", 1, digits_tensors)
    other = {"absolute": str(tmp_path / "db"), "dotdot": "sub/../db", "symlink": str(tmp_path / "link" / "db")}[spelling]
    second = fit(other, tmp_path / "ckpt", 2, digits_tensors, resume=True)
    assert second.run_id == first.run_id
    db = StatsDB(tmp_path / "db")
    assert db.run_ids() == [first.run_id]
    counts = db.sql("SELECT step, count(*) AS n FROM predictions GROUP BY step ORDER BY step")
    assert list(counts.step) == [0, 2, 4] and (counts.n == 40).all()
