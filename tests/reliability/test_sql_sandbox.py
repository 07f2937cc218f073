"""The SQL console's sandbox, ``StatsDB.sandboxed_sql``: read-only, inside the db, within limits.

tests/webui/test_sql.py covers the route and the common refusals; these are
the rest of the ways out, tried on the store method itself.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from deepviz import StatsDB
from deepviz.errors import ConfigurationError, QueryError


@pytest.fixture()
def store(db_copy):
    return StatsDB(db_copy)


@pytest.mark.parametrize(
    "query, match",
    [
        ("SELECT * FROM read_parquet('/etc/*.parquet')", "reads only the db's own tables"),
        ("SELECT * FROM read_blob('/etc/passwd')", "reads only the db's own tables"),
        ("SELECT * FROM read_json_auto('/etc/os-release')", "reads only the db's own tables"),
        ("SELECT * FROM glob('/tmp/**')", "reads only the db's own tables"),
        ("SELECT * FROM parquet_metadata('/etc/passwd')", "reads only the db's own tables"),
        ("SELECT getenv('HOME')", "reads only the db's own tables|getenv|disabled"),
        ("CREATE MACRO twice(x) AS x * 2", "CREATE would add to the database"),
        ("CREATE TEMP TABLE t AS SELECT 1", "CREATE would add to the database"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "CREATE would add to the database"),
        ("SET VARIABLE x = 1", "Refused: .*(SET, RESET and USE|SET VARIABLE) change"),
        ("USE memory", "SET, RESET and USE change settings|not queries"),
        ("DETACH memory", "DETACH changes the attached databases"),
        ("CALL pragma_version()", "CALL runs procedures"),
        ("CHECKPOINT", "Refused: the SQL console is read-only"),
        ("UPDATE steps SET epoch = 0", "UPDATE writes"),
        ("DELETE FROM steps", "DELETE writes"),
        ("ALTER VIEW steps RENAME TO s", "ALTER changes tables"),
        ("INSTALL httpfs FROM 'http://example.com'", "INSTALL and LOAD add extensions"),
        ("FORCE INSTALL httpfs", "INSTALL and LOAD add extensions"),
        ("WITH x AS (SELECT 1) SELECT * FROM read_csv('/etc/passwd')", "reads only the db's own tables"),
        ("SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'", "exactly one statement"),
        ("SELECT * FROM 's3://bucket/x.parquet'", "reads only the db's own tables"),
    ],
)
def test_refused(store, query, match):
    with pytest.raises(QueryError, match=match):
        store.sandboxed_sql(query, 10, 5.0)


def test_no_side_effect_survives_a_query(store, db_copy):
    before = sorted(p.relative_to(db_copy) for p in db_copy.rglob("*"))
    for query in ("CREATE MACRO twice(x) AS x * 2", "SET VARIABLE x = 1", "COPY steps TO 'leak.csv'",
                  f"COPY steps TO '{db_copy}/leak.parquet' (FORMAT parquet)", "ATTACH 'evil.duckdb'"):
        with pytest.raises(QueryError):
            store.sandboxed_sql(query, 10, 5.0)
    with pytest.raises(QueryError, match="(?i)twice.*(does not exist|not found)|Catalog"):
        store.sandboxed_sql("SELECT twice(2)", 10, 5.0)
    assert sorted(p.relative_to(db_copy) for p in db_copy.rglob("*")) == before
    assert not any(os.path.exists(p) for p in ("leak.csv", "evil.duckdb"))


def test_settings_cannot_be_read_back_to_unlock(store):
    # Reading settings is harmless; changing them is refused even inside a SELECT.
    out = store.sandboxed_sql("SELECT current_setting('enable_external_access') AS v", 10, 5.0)
    assert out["rows"] == [[False]]
    with pytest.raises(QueryError):
        store.sandboxed_sql("SELECT * FROM query('SET enable_external_access = true')", 10, 5.0)


def test_time_and_row_limits(store):
    with pytest.raises(QueryError, match=r"stopped after the time limit of 0\.3 s"):
        store.sandboxed_sql("SELECT count(*) FROM range(1000000000000) a, range(10) b", 10, 0.3)
    out = store.sandboxed_sql("SELECT * FROM range(100000000)", 5, 5.0)
    assert out["truncated"] is True and len(out["rows"]) == 5
    out = store.sandboxed_sql("SELECT repeat('x', 1000) FROM range(1000000)", 3, 5.0)
    assert len(out["rows"]) == 3 and out["truncated"] is True


def test_db_path_with_a_quote(webui_db, tmp_path):
    odd = tmp_path / "it's a db"
    shutil.copytree(webui_db, odd, ignore=shutil.ignore_patterns(".*.tmp"))
    store = StatsDB(odd)
    assert store.sandboxed_sql("SELECT count(*) FROM steps", 10, 5.0)["rows"][0][0] == len(store.steps())
    with pytest.raises(QueryError, match="reads only the db's own tables"):
        store.sandboxed_sql("SELECT * FROM read_csv('/etc/passwd')", 10, 5.0)


def test_bad_arguments(store):
    with pytest.raises(QueryError, match="query is empty"):
        store.sandboxed_sql("", 10, 5.0)
    with pytest.raises(QueryError, match="characters long; at most 20000"):
        store.sandboxed_sql("SELECT 1" + " " * 20_000, 10, 5.0)


def peak_rss() -> int:
    """This process's peak resident memory, in bytes (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def test_duckdb_runs_with_the_memory_limit_and_threads_given(store):
    query = "SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m"
    assert store.sandboxed_sql(query, 10, 30.0)["rows"] == [[1, "488.2 MiB"]]  # 512MB, as DuckDB shows it
    assert store.sandboxed_sql(query, 10, 30.0, memory_limit="1GB", threads=2)["rows"] == [[2, "953.6 MiB"]]
    with pytest.raises(ConfigurationError, match=r"memory_limit must be a size such as '512MB' or '2GB'; got 'lots'"):
        store.sandboxed_sql("SELECT 1", 10, 30.0, memory_limit="lots")
    with pytest.raises(ConfigurationError, match=r"threads must be a whole number, 1 or more; got 0"):
        store.sandboxed_sql("SELECT 1", 10, 30.0, threads=0)


def test_a_blow_up_query_is_stopped_within_the_time_limit_holding_no_memory_here(store):
    store.sandboxed_sql("SELECT 1", 1, 30.0)  # the first call starts the forkserver: no part of a query's time
    before = peak_rss()
    start = time.perf_counter()
    # One chunk of 50 lists of 5M numbers (2 GB): DuckDB cannot interrupt it; the child is killed.
    with pytest.raises(QueryError, match=r"stopped after the time limit of 2 s|memory limit of 512MB"):
        store.sandboxed_sql("SELECT range(0, 5000000) FROM range(50)", 1000, 2.0)
    assert time.perf_counter() - start < 2.0 + 1.0
    assert peak_rss() - before < 32 * 2**20  # the rows were never here


def test_a_query_over_its_memory_cap_is_stopped(store):
    start = time.perf_counter()
    with pytest.raises(QueryError, match=r"stopped: it needed more than the memory limit of 64MB"):
        store.sandboxed_sql("SELECT range(0, 5000000) FROM range(50)", 1000, 60.0, memory_limit="64MB")
    assert time.perf_counter() - start < 60


def test_a_result_too_large_to_convert_is_refused(store):
    with pytest.raises(QueryError, match=r"The result is too large: its first \d+ rows hold more than 16 MB"):
        store.sandboxed_sql("SELECT range(0, 100000) AS r FROM range(300)", 1000, 30.0)
