"""The SQL console's sandbox, ``StatsDB.sandboxed_sql``: read-only, inside the db, within limits.

tests/webui/test_sql.py covers the route and the common refusals; these are
the rest of the ways out, tried on the store method itself.
"""

from __future__ import annotations

import os
import shutil

import pytest

from deepviz import StatsDB
from deepviz.errors import QueryError


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
    shutil.copytree(webui_db, odd)
    store = StatsDB(odd)
    assert store.sandboxed_sql("SELECT count(*) FROM steps", 10, 5.0)["rows"][0][0] == len(store.steps())
    with pytest.raises(QueryError, match="reads only the db's own tables"):
        store.sandboxed_sql("SELECT * FROM read_csv('/etc/passwd')", 10, 5.0)


def test_bad_arguments(store):
    with pytest.raises(QueryError, match="query is empty"):
        store.sandboxed_sql("", 10, 5.0)
    with pytest.raises(QueryError, match="characters long; at most 20000"):
        store.sandboxed_sql("SELECT 1" + " " * 20_000, 10, 5.0)
