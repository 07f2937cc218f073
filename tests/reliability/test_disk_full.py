"""A full disk during a snapshot: training goes on, the snapshot is skipped with one clear
warning, and nothing partial is left behind.

The db lives on a 4 MB tmpfs mounted for the test (CI runs as root); when the
first file of a snapshot is staged, a ballast file fills the rest of it, and
the next epoch frees it again.
"""

from __future__ import annotations

import errno
import subprocess
import warnings
from pathlib import Path

import duckdb
import pytest

from deepviz import StatsCallback, StatsDB
from deepviz import schema as S
from tests.conftest import digits_loaders, quiet_trainer
from tests.faults import watch_writes
from trainers.models import SmallNet


@pytest.fixture()
def small_fs(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a ballast file until the filesystem says it is full."""
    ballast = folder / "ballast"
    chunk = b"\0" * 65536
    # Unbuffered: a buffer holding the last partial chunk would fail again when the file closes.
    with open(ballast, "ab", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return ballast


def test_full_disk_skips_one_snapshot_with_one_warning(small_fs, tmp_path, digits_tensors, monkeypatch):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    db_path = small_fs / "db"
    x, y = digits_tensors
    cb = StatsCallback(db_path, probe=(x[480:780], y[480:780]), probe_size=60)
    full_at = 10
    ballast: list[Path] = []

    freed = []

    def hook(path):
        # After the first staged file of step 10's snapshot: the disk is full from here on, until freed (each
        # staged file tops the ballast up: a rolled-back snapshot gives its space back).
        if f"--{full_at}--" in str(path) or (ballast and not freed):
            ballast[:] = [fill(small_fs)]

    watch_writes(monkeypatch, hook)

    class FreeSpace(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if ballast and ballast[0].exists() and trainer.current_epoch == 3:
                cb.recorder.flush()  # step 15's snapshot, written in the background, has met the full disk
                freed.append(True)
                ballast[0].unlink()  # someone frees space: snapshots resume

    trainer = quiet_trainer(max_epochs=4, enable_checkpointing=True,
                            callbacks=[cb, FreeSpace(), ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(SmallNet(), *digits_loaders(digits_tensors))
    ours = [w for w in caught if "deepviz" in str(w.message) and "skipped" in str(w.message)]

    # Training went on to the end.
    assert trainer.current_epoch == 4 and trainer.global_step == 20
    # One clear warning, for the first failed write.
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert f"snapshot at step {full_at} skipped" in message and "No space left on device" in message
    assert "Nothing partial was left" in message and "training goes on" in message

    db = StatsDB(db_path)
    steps = db.steps()
    assert full_at not in steps and steps[0] == 0 and steps[-1] == 20, steps
    assert 15 not in steps  # still full during epoch 3's snapshot; freed before epoch 4's
    # Nothing partial: no staging leftovers, no temporary files, no folder of a step without its steps row.
    assert not list((db_path / "_staging").glob("*"))
    assert not [p for p in db_path.rglob("*") if p.name.endswith(".tmp")]
    run = db.resolve_run()
    for table in S.CORE_TABLES:
        if table.snapshot:
            folders = {int(p.name.split("=")[1]) for p in (db_path / table.name / f"run_id={run}").glob("step=*")}
            assert folders <= set(steps), (table.name, folders, steps)
    states = {int(p.stem.split("=")[1]) for p in (db_path / "states" / f"run_id={run}").glob("step=*.pt")}
    assert states <= set(steps)
    # Every step shown is whole, to the store and to plain DuckDB.
    for step in steps:
        assert len(db.get_stats(step).labels) == 60
    raw = duckdb.sql(f"SELECT step, count(*) FROM '{db_path}/predictions/**/*.parquet' GROUP BY step ORDER BY step").fetchall()
    assert [r[0] for r in raw] == steps and all(n == 60 for _, n in raw)
