"""StatsDB.sql's shared connection: views made once per state of the files, a cursor per query, and what a
query sees is always the files as they are."""

from __future__ import annotations

import threading

import duckdb
import pytest

from deepviz import StatsDB
from deepviz import schema as S
from deepviz.errors import QueryError
from deepviz.store import StatsWriter
from tests.test_store import write_run, write_step

PER_STEP = "SELECT step, count(*) AS n, avg(loss) AS loss FROM predictions GROUP BY step ORDER BY step"


@pytest.fixture()
def db(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    for step in (0, 45):
        write_step(writer, step=step, seed=step)
    writer.close()
    return StatsDB(tmp_path)


def test_queries_share_one_connection_until_a_step_is_committed(db):
    first = db.sql(PER_STEP)
    con = db._shared_sql.con
    assert db.sql(PER_STEP).equals(first) and db._shared_sql.con is con
    with StatsWriter(db.root) as writer:
        given = write_step(writer, step=90, seed=90)
    after = db.sql(PER_STEP)
    assert after.step.tolist() == [0, 45, 90] and after.loss.iloc[-1] == pytest.approx(given["loss"].mean())
    assert db.sql("SELECT step FROM steps ORDER BY step").step.tolist() == [0, 45, 90]
    assert db._shared_sql.con is not con
    with pytest.raises(duckdb.ConnectionException, match="closed"):
        con.execute("SELECT 1")  # the old one was closed: it had no cursor left


def test_a_file_corrupted_in_place_is_left_out_at_the_next_query(db):
    assert db.sql(PER_STEP).step.tolist() == [0, 45]
    path = db.layout.file(S.PREDICTIONS, "r1", 45)
    path.write_bytes(path.read_bytes()[:100])
    assert db.sql(PER_STEP).step.tolist() == [0]
    assert any("predictions.parquet (truncated or corrupt)" in f for f in db.skipped_files)


def test_statements_other_than_one_select_run_apart_and_change_nothing_later_queries_see(db):
    db.sql("CREATE TABLE mine AS SELECT 1 AS x")
    db.sql("DROP VIEW predictions")
    assert db.sql(PER_STEP).step.tolist() == [0, 45]
    with pytest.raises(QueryError, match=r"CatalogException: .*mine does not exist"):
        db.sql("SELECT * FROM mine")
    assert db.sql("SELECT 1 AS a; SELECT 2 AS a").a.tolist() == [2]  # several statements: the last one's rows


def test_threads_querying_while_steps_are_committed_see_whole_states(db):
    answers, errors = [], []

    def ask():
        try:
            for _ in range(15):
                frame = db.sql(PER_STEP)
                answers.append((tuple(frame.step), tuple(frame.n)))
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    with StatsWriter(db.root) as writer:
        for step in (90, 135, 180):
            write_step(writer, step=step, seed=step)
    for thread in threads:
        thread.join()
    assert errors == []
    steps = [0, 45, 90, 135, 180]
    assert {a for a in answers} <= {(tuple(steps[:k]), (6,) * k) for k in range(2, 6)}
    assert db.sql(PER_STEP).step.tolist() == steps
