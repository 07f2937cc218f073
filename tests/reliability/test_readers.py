"""Readers during writes: the web UI answers every route, with no error, while a run trains and
snapshots into the db it serves.

Training runs in a subprocess (tests/test_store.py's script, snapshots every 2
steps with a slowed writer); this process polls every route of ``app.url_map``
for the steps committed at that moment, the SQL console included.
"""

from __future__ import annotations

import random
import time

from deepviz import StatsDB

from tests.test_store import check_complete, run_training

from .routes import calls, send


def test_every_route_answers_while_a_run_trains(tmp_path):
    from webui import create_app

    proc = run_training(tmp_path, "slow", "0.05:2", max_epochs=4)
    db_path = tmp_path / "db"
    deadline = time.monotonic() + 240
    while not list(db_path.glob("steps/run_id=*/step=*/step.parquet")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never committed a step"
        time.sleep(0.05)
    app = create_app(db_path, test_config={"TESTING": True})
    client = app.test_client()
    store = app.extensions["deepviz_db"]
    run = store.resolve_run()
    rng = random.Random(0)
    errors, sent, rounds, seen_steps = [], 0, 0, set()
    while proc.poll() is None or rounds < 2:
        committed = StatsDB(db_path).steps(run)
        step = rng.choice(committed)  # only committed steps are asked for
        seen_steps.update(committed)
        for call in calls(app, store, run, step=step):
            res = send(client, call)
            sent += 1
            if res.status_code != 200:
                errors.append((res.status_code, call.url, res.get_data(as_text=True)[:300]))
        rounds += 1
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert not errors, errors[:5]
    # It did read while training wrote: several rounds, over a growing list of steps.
    assert rounds >= 3 and len(seen_steps) >= 4, (rounds, seen_steps)
    assert check_complete(db_path) == StatsDB(db_path).steps(run)
    print(f"readers during writes: {sent} requests in {rounds} rounds, {len(errors)} errors")


def test_a_file_replaced_while_it_is_read_reads_whole(tmp_path):
    """The run row is rewritten (a resume, the run's end) while others read it: each read sees one version.

    Given a path, pyarrow opens the file once for the footer and again for the
    pages, and a replace in between read as a corrupt file (a resume racing
    another resume failed so in CI). The store reads through one open file.
    """
    import threading

    import pyarrow as pa

    from deepviz.store.codec import publish, read

    path = tmp_path / "run.parquet"
    versions = [pa.table({"a": [str(i) * width for i in range(50)]}) for width in (1, 200)]
    publish(versions[0], path, "run")
    stop = threading.Event()

    def rewrite():
        i = 0
        while not stop.is_set():
            publish(versions[i % 2], path, "run")
            i += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        seen = [read(path) for _ in range(1500)]
    finally:
        stop.set()
        writer.join()
    assert all(table.equals(versions[0]) or table.equals(versions[1]) for table in seen)
    assert {table.equals(versions[0]) for table in seen} == {True, False}  # both versions were read: it raced
