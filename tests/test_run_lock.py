"""One writer per run: a second writer of a run stops at once; a failed commit undoes only its own work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deepviz import StatsDB, StatsWriter
from deepviz.errors import ConfigurationError, RunLockedError
from tests.faults import fail_on, watch_writes
from tests.test_store import write_run, write_step

REPO = Path(__file__).resolve().parents[1]
HOLDER = r"Run 'r1' is already being written by another process \(pid {pid} on host {host}, since 20\d\d-"
HOW_TO_BREAK = r"kill {pid}` on {host}\): its lock is released when it exits.*deleting .*_locks/run_id=r1\.lock"


def locked_message(pid: int) -> str:
    host = socket.gethostname()
    return HOLDER.format(pid=pid, host=host) + ".*" + HOW_TO_BREAK.format(pid=pid, host=host)


def test_second_writer_of_a_run_fails_at_once_naming_the_holder(tmp_path):
    first = StatsWriter(tmp_path)
    write_run(first)
    write_step(first, step=0)
    second = StatsWriter(tmp_path)
    start = time.perf_counter()
    for attempt in (lambda: second.open_run("r1"), lambda: write_step(second, step=1), lambda: write_run(second)):
        with pytest.raises(RunLockedError, match=locked_message(os.getpid())):
            attempt()
    assert time.perf_counter() - start < 1.0  # at once, not after a wait
    assert StatsDB(tmp_path).steps("r1") == [0]
    first.close()  # the lock goes with its holder
    assert second.open_run("r1") == [0]
    write_step(second, step=1)
    assert StatsDB(tmp_path).steps("r1") == [0, 1]


def test_a_locked_run_is_a_runtime_error_not_an_os_error(tmp_path):
    # The callback skips a snapshot on an OSError (a full disk); a second writer must stop instead.
    assert issubclass(RunLockedError, RuntimeError) and not issubclass(RunLockedError, OSError)


def test_two_runs_in_one_db_are_written_at_once(tmp_path):
    a, b = StatsWriter(tmp_path), StatsWriter(tmp_path)
    write_run(a, "ra")
    write_run(b, "rb")
    for step in range(3):
        write_step(a, "ra", step=step)
        write_step(b, "rb", step=step, seed=step)
    db = StatsDB(tmp_path)
    assert db.steps("ra") == db.steps("rb") == [0, 1, 2]
    assert a.open_run("ra") == [0, 1, 2] and b.open_run("rb") == [0, 1, 2]


# A real writer in another process resumes run r1 and writes its steps slowly,
# holding the lock from open_run on; this test process is the second writer.
RESUMER = textwrap.dedent(
    """
    import sys, time
    from deepviz import StatsWriter
    from tests.faults import install
    from tests.test_store import write_step

    db, first, last, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    writer = StatsWriter(db)
    committed = writer.open_run("r1")
    print("RESUMED", committed, flush=True)
    install(lambda path: time.sleep(delay))
    for step in range(first, last + 1):
        write_step(writer, step=step, seed=step)
    print("DONE", flush=True)
    """
)


def test_two_processes_resuming_one_run_lose_no_committed_step(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    for step in range(3):
        write_step(writer, step=step, seed=step)
    writer.close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", RESUMER, str(tmp_path), "3", "6", "0.05"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split(maxsplit=1) == ["RESUMED", "[0, 1, 2]\n"], proc.stderr.read()
        # Resuming the same run here, while the other process writes it: refused, naming that process.
        second = StatsWriter(tmp_path)
        with pytest.raises(RunLockedError, match=locked_message(proc.pid)):
            second.open_run("r1")
        with pytest.raises(RunLockedError, match=locked_message(proc.pid)):
            write_step(second, step=4)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "DONE" in out, err
    db = StatsDB(tmp_path)
    assert db.steps("r1") == [0, 1, 2, 3, 4, 5, 6]
    for step in db.steps("r1"):
        assert len(db.get_stats(step, "r1").probe_ids) == 6
    assert not list((tmp_path / "_staging").iterdir())
    assert second.open_run("r1") == [0, 1, 2, 3, 4, 5, 6]  # the lock went with the process


def test_failed_commit_removes_only_the_folders_it_moved(tmp_path, monkeypatch):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    write_step(writer, step=0)
    # Metrics added to step 5 before its snapshot: a folder of step 5 this snapshot did not create.
    writer.add_metrics("r1", 5, {"train_loss": 0.25})
    metrics = tmp_path / "metrics" / "run_id=r1" / "step=5"
    before = sorted(metrics.iterdir())
    fired = fail_on(monkeypatch, lambda path: path == tmp_path / "activations" / "run_id=r1" / "step=5",
                    OSError(28, "No space left on device"))
    with pytest.raises(OSError, match="No space left on device"):
        write_step(writer, step=5, state=b"weights")
    assert fired
    assert not (tmp_path / "predictions" / "run_id=r1" / "step=5").exists()
    assert not (tmp_path / "activations" / "run_id=r1" / "step=5").exists()
    assert sorted(metrics.iterdir()) == before  # not this writer's: left alone
    assert StatsDB(tmp_path).steps("r1") == [0]
    assert not list((tmp_path / "_staging").iterdir())


def test_commit_checks_again_that_the_step_is_not_written(tmp_path, monkeypatch):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    marker = tmp_path / "steps" / "run_id=r1" / "step=3" / "step.parquet"

    def commit_meanwhile(path: Path) -> None:
        # While step 3 is staged, a step 3 appears (as a second writer without the lock would make it).
        if path.name == "step.parquet" and "_staging" in path.parts and not marker.exists():
            marker.parent.mkdir(parents=True)
            marker.write_bytes(b"someone else's")

    watch_writes(monkeypatch, commit_meanwhile)
    with pytest.raises(ConfigurationError, match=r"Step 3 of run 'r1' is already written; a step is never written twice"):
        write_step(writer, step=3)
    assert marker.read_bytes() == b"someone else's"
    assert not (tmp_path / "predictions" / "run_id=r1" / "step=3").exists()


def test_a_killed_writers_leftovers_go_when_the_run_is_opened_under_its_lock(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    write_step(writer, step=0)
    writer.close()
    old = time.time() - 3600
    run_tmp = tmp_path / "runs" / "run_id=r1" / ".run-dead.tmp"
    stage = tmp_path / "_staging" / "r1--5--deadbeef" / "predictions"
    derived = tmp_path / "projections" / "run_id=r1" / "layer=fc"
    derived.mkdir(parents=True)
    stale, live = derived / ".part-old.tmp", derived / ".part-new.tmp"
    other_run = tmp_path / "_staging" / "r2--1--cafecafe"
    root_stale, root_live = tmp_path / ".deepviz.json.old.tmp", tmp_path / ".deepviz.json.new.tmp"
    for path in (run_tmp, stage / "p.parquet", stale, live, other_run / "x", root_stale, root_live):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    for path in (run_tmp, stale, root_stale):
        os.utime(path, (old, old))

    writer = StatsWriter(tmp_path)  # opening the db: only old temporary files at its root go
    assert not root_stale.exists() and root_live.exists()
    assert writer.open_run("r1") == [0]
    assert not run_tmp.exists() and not stage.parent.exists()
    # Derived files are written by readers too: a fresh temporary file may be a write in progress.
    assert not stale.exists() and live.exists()
    assert other_run.exists()  # another run's staging is its writer's business
    assert StatsDB(tmp_path).steps("r1") == [0]


def test_a_failure_after_the_marker_went_in_keeps_the_step(tmp_path, monkeypatch):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    fail_on(monkeypatch, lambda path: path == tmp_path / "steps" / "run_id=r1" / "step=2", RuntimeError("after the marker"))
    with pytest.raises(RuntimeError, match="after the marker"):
        write_step(writer, step=2)
    db = StatsDB(tmp_path)
    assert db.steps("r1") == [2] and len(db.get_stats(2, "r1").probe_ids) == 6  # committed: nothing undone
