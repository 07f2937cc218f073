"""Two processes resume one run from one checkpoint at once, with real Lightning and slowed writes.

A run of 2 epochs on digits commits steps 0, 5 and 10 and leaves ``last.ckpt``
(step 10). Two training processes then resume it from that checkpoint to 4
epochs at the same moment, every staged file and committed folder slowed: the
first to open the run holds its lock while it writes steps 15 and 20; the other
stops at once with the lock message naming the holder. Plain reads afterwards
(StatsDB, DuckDB through ``db.sql`` and over the raw files) show every step
committed before the race, unchanged, plus the winner's, each whole and once.
The store-level version of this race is tests/test_run_lock.py's.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from deepviz import StatsDB
from tests.reliability.test_kills import raw_counts
from tests.test_callback import fit
from tests.test_store import check_complete

REPO = Path(__file__).resolve().parents[2]
N_PROBE = 60  # fit()'s default probe size
BEFORE = [0, 5, 10]  # 2 epochs of 5 batches, a snapshot after each validation
NEW = [15, 20]  # epochs 3 and 4 after resuming at step 10
DELAY = 0.15  # seconds at each of a snapshot's ~10 write points: the winner holds the lock for 3 s or more

# Both resumers wait for each other after their imports, so that they open the run together.
RESUMER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from sklearn.datasets import load_digits
    from tests.faults import install
    from tests.test_callback import fit

    torch.set_num_threads(1)
    root, name, delay = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype("float32")).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype("int64"))
    install(lambda path: time.sleep(delay))
    (root / f"ready-{name}").touch()
    deadline = time.monotonic() + 120
    while len(list(root.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    cb, trainer = fit(root, (x, y), epochs=4, ckpt_path=str(root / "ckpt" / "last.ckpt"),
                      callbacks=[ModelCheckpoint(dirpath=root / f"ckpt-{name}", save_last=True)])
    print("DONE", cb.run_id, trainer.global_step, flush=True)
    """
)


def lock_message(run_id: str, pid: int) -> str:
    """The RunLockedError line a second writer prints: the holder's pid and host, and how to break a stale lock."""
    host = re.escape(socket.gethostname())
    return (
        rf"RunLockedError: Run '{run_id}' is already being written by another process \(pid {pid} on host {host}, "
        rf"since 20\d\d-.*\(`kill {pid}` on {host}\): its lock is released when it exits\..*"
        rf"deleting \S*_locks/run_id={run_id}\.lock"
    )


def committed_files(db_path: Path, run_id: str, steps: list[int]) -> dict[str, int]:
    """Every file of the given steps' folders, with its modification time."""
    files = {}
    for table in ("predictions", "activations", "weights", "steps"):
        for step in steps:
            for path in (db_path / table / f"run_id={run_id}" / f"step={step}").iterdir():
                files[str(path.relative_to(db_path))] = path.stat().st_mtime_ns
    return files


@pytest.mark.slow  # ~25 s: two trainings that import torch and Lightning side by side
def test_two_trainings_resuming_one_run_at_once_lose_no_committed_step(tmp_path, digits_tensors):
    db_path = tmp_path / "db"
    cb, _ = fit(tmp_path, digits_tensors, callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    run_id = cb.run_id
    assert StatsDB(db_path).steps(run_id) == BEFORE
    before = committed_files(db_path, run_id, BEFORE)

    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-c", RESUMER, str(tmp_path), name, str(DELAY)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
    try:
        outs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    race_s = time.perf_counter() - start

    # Exactly one finished its training; the other stopped with the lock message naming the winner.
    codes = [proc.returncode for proc in procs]
    assert sorted(code == 0 for code in codes) == [False, True], (codes, [err[-3000:] for _, err in outs])
    won = codes.index(0)
    winner, loser = procs[won], procs[1 - won]
    assert outs[won][0].split() == ["DONE", run_id, "20"], outs[won][1][-3000:]
    assert "DONE" not in outs[1 - won][0]
    assert re.search(lock_message(run_id, winner.pid), outs[1 - won][1], re.S), outs[1 - won][1][-3000:]
    assert not list((tmp_path / f"ckpt-{'ab'[1 - won]}").glob("*.ckpt"))  # it stopped before training a batch

    # Every step committed before the race is there, untouched, and the winner's steps after it.
    db = StatsDB(db_path)
    assert db.run_ids() == [run_id] and db.steps(run_id) == BEFORE + NEW
    assert check_complete(db_path, N_PROBE) == BEFORE + NEW  # StatsDB and db.sql see each step whole
    assert committed_files(db_path, run_id, BEFORE) == before
    assert db.run_info(run_id)["ended_at"] is not None
    # Once each: one predictions file per step on disk, one row per probe image, one metric and checkpoint record.
    assert raw_counts(db_path) == {step: N_PROBE for step in BEFORE + NEW}
    once = db.sql("SELECT step, count(*) AS n, count(DISTINCT probe_id) AS d FROM predictions GROUP BY step")
    assert (once.n == N_PROBE).all() and (once.d == N_PROBE).all(), once
    twice = db.sql("SELECT step, name FROM metrics GROUP BY step, name HAVING count(*) > 1")
    assert twice.empty, twice
    kept = db.sql("SELECT step, count(*) AS n FROM checkpoints GROUP BY step ORDER BY step")
    assert list(kept.step) == BEFORE[1:] + NEW and (kept.n == 1).all(), kept
    assert not list((db_path / "_staging").glob("*"))
    print(f"before={BEFORE} after={db.steps(run_id)} race={race_s:.1f} s (winner pid {winner.pid}, loser pid {loser.pid})")
