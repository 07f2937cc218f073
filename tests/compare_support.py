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
