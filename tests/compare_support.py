"""A db of runs made to be compared: two seeds of one model, another model, and a run of another probe set.

Tiny digits runs through ``trainers.train.train`` (the code behind ``deepviz train``), so the test also checks
that ``--seed`` leaves the probe set alone.
"""

from __future__ import annotations

from pathlib import Path

#: name -> train() arguments. ``probe80`` has a smaller probe set: an overlapping, not equal, set of ids.
RUNS = {
    "seed1": {"seed": 1},
    "seed2": {"seed": 2},
    "fc64": {"seed": 1, "model": "fc64", "batch_size": 64},  # other steps: matched by epoch
    "probe80": {"seed": 1, "probe_size": 80},
}


def train_compare_db(db: Path) -> dict[str, str]:
    """Train the four runs into ``db``; returns name -> run id."""
    from trainers.train import train

    out = {}
    for name, kw in RUNS.items():
        args = {"probe_size": 120} | kw
        out[name] = train("digits", epochs=2, db=db, run_name=name, max_train=400, progress=False,
                          ckpt_dir=db.parent / "ckpt", accelerator="cpu", **args)
    return out


def train_disjoint_run(db: Path) -> str:
    """A run whose 10 probe ids (drawn from all 1,797 digits, not the test split) share none with the others'."""
    import lightning.pytorch as L
    import torch
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    from deepviz import StatsCallback
    from trainers.models import SmallNet

    digits = load_digits()
    x = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    callback = StatsCallback(db, probe=(x, y), probe_size=10, probe_seed=0, run_name="disjoint", dataset_name="digits")
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, callbacks=[callback], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu", devices=1,
                        default_root_dir=str(db.parent))
    trainer.fit(SmallNet(), DataLoader(TensorDataset(x[:256], y[:256]), batch_size=64), DataLoader(TensorDataset(x[:64], y[:64]), batch_size=64))
    return callback.run_id
