"""Faults during training: SIGKILL at 20 seeded random moments, most of them inside snapshot writes.

After each kill: plain DuckDB reads the db; every visible step is complete
(all probe rows, every layer); resuming from the last checkpoint continues the
same run and writes no step twice. The training script, the kill at the n-th
file of a snapshot and the completeness check are tests/test_store.py's (whose
three-kill test is the fast, unmarked version of this one).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from deepviz import StatsDB

from tests.test_store import check_complete, run_training

N_KILLS = 20
MAX_EPOCHS = 4  # steps 0, 5, 10, 15, 20 (5 batches an epoch)
ALL_STEPS = [0, 5, 10, 15, 20]
# A snapshot after validation has 12 hook points: 8 staged files (predictions,
# conv1.gap, conv2.gap, fc1, fc2, weights, state, step), then 4 folders moved in, steps last.
HOOKS_PER_SNAPSHOT = 12
# The checks use duckdb's module-level connection, which refuses a second caller
# while busy: the two workers take turns for them (they are quick).
CHECKS = threading.Lock()


def plan(seed: int = 0) -> list[tuple]:
    """14 kills at a random file of a random snapshot, 6 at a random time while every file is written slowly."""
    rng = random.Random(seed)
    cases = [("write", rng.choice([10, 15]), rng.randint(1, HOOKS_PER_SNAPSHOT)) for _ in range(14)]
    cases += [("time", rng.uniform(0.0, 3.0), None) for _ in range(N_KILLS - 14)]
    return cases


def wait_for(path: Path, proc, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def raw_counts(db_path: Path) -> dict[int, int]:
    """Rows per step in every predictions file, committed or not, read by plain DuckDB."""
    rows = duckdb.sql(f"SELECT step, count(*) FROM '{db_path}/predictions/**/*.parquet' GROUP BY step").fetchall()
    return dict(rows)


def kill_and_resume(root: Path, case: tuple) -> dict:
    kind, a, b = case
    root.mkdir()
    db_path = root / "db"
    if kind == "write":
        proc = run_training(root, "kill", f"{a}:{b}", max_epochs=MAX_EPOCHS)
        wait_for(db_path / "ARMED", proc)
    else:
        proc = run_training(root, "slow", "0.05:2", max_epochs=MAX_EPOCHS)
        wait_for(root / "ckpt" / "last.ckpt", proc)  # resuming needs a checkpoint
        time.sleep(a)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    # Plain DuckDB reads what the kill left, and every visible step is whole.
    with CHECKS:
        duckdb.sql(f"SELECT count(*) FROM '{db_path}/steps/**/*.parquet'").fetchall()
        visible = check_complete(db_path)
    if kind == "write":
        committed = b == HOOKS_PER_SNAPSHOT  # killed after the steps folder went in
        assert visible == [s for s in ALL_STEPS if s < a or (committed and s == a)], (case, visible)
    run_id = StatsDB(db_path).resolve_run()

    # Resume from the last checkpoint: the same run goes on and no step is written twice.
    proc = run_training(root, "resume", max_epochs=MAX_EPOCHS)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert out.split()[-1] == run_id
    with CHECKS:
        return _after_resume(db_path, run_id, case, visible, killed)


def _after_resume(db_path: Path, run_id: str, case: tuple, visible: list[int], killed: bool) -> dict:
    final = check_complete(db_path)
    assert set(visible) <= set(final) and set(ALL_STEPS) <= set(final), (case, final)
    db = StatsDB(db_path)
    assert db.run_ids() == [run_id] and db.run_info()["ended_at"] is not None
    counts = db.sql("SELECT step, count(*) AS n, count(DISTINCT probe_id) AS d FROM predictions GROUP BY step")
    assert (counts.n == 120).all() and (counts.d == 120).all(), counts
    # Nothing left over: every file on disk belongs to one committed step, once.
    assert not list((db_path / "_staging").glob("*"))
    assert set(raw_counts(db_path)) == set(final) and set(raw_counts(db_path).values()) == {120}
    layers = db.run_info()["layers"]
    acts = db.sql("SELECT step, count(*) AS n FROM activations GROUP BY step")
    assert (acts.n == 120 * len(layers)).all()
    return {"case": case, "killed_running": killed, "visible_after_kill": visible, "after_resume": final}


@pytest.mark.slow
def test_twenty_kills_lose_nothing_and_write_nothing_twice(tmp_path):
    cases = plan(seed=0)
    assert len(cases) == N_KILLS
    start = time.perf_counter()
    # Two at a time: each process spends most of its life importing torch or asleep in the hook.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda ic: kill_and_resume(tmp_path / f"kill{ic[0]:02d}", ic[1]), enumerate(cases)))
    assert sum(r["killed_running"] for r in results) == N_KILLS, "every kill hit a running process"
    print(f"kills={len(results)} in {time.perf_counter() - start:.0f} s; "
          f"mid-write={sum(c[0] == 'write' for c in cases)} random-time={sum(c[0] == 'time' for c in cases)}")
