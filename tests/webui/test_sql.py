"""The SQL console: read-only, inside the db, with a row limit and a time limit."""

from __future__ import annotations

import shutil

import pytest

from deepviz import StatsDB
from deepviz.errors import QueryError
from webui.sql import sandboxed_query

from .conftest import assert_api_error


@pytest.fixture()
def limited_client(webui_db):
    from webui import create_app

    # A time limit that a never-ending query meets at once, and that a small query on busy shared cores stays well
    # inside (0.5 s failed so under load: a forked child and its views take that long there).
    app = create_app(webui_db, test_config={"TESTING": True, "SQL_MAX_ROWS": 7, "SQL_TIMEOUT_S": 2.5})
    return app.test_client()


def sql(client, query):
    return client.post("/api/sql", json={"query": query})


def test_select_over_the_views_returns_a_table(client, run_id):
    res = sql(client, "SELECT step, epoch, probe_acc, wall_time FROM steps ORDER BY step")
    assert res.status_code == 200, res.get_data(as_text=True)
    body = res.get_json()
    assert [c["name"] for c in body["columns"]] == ["step", "epoch", "probe_acc", "wall_time"]
    steps = StatsDB(client.application.config["DB_PATH"]).steps(run_id)
    assert [r[0] for r in body["rows"]] == steps
    assert all(isinstance(r[3], str) for r in body["rows"])  # timestamps as ISO text
    assert body["truncated"] is False and body["elapsed_ms"] >= 0


def test_describe_summarize_and_from_first_are_allowed(client):
    for query in ("DESCRIBE predictions", "SUMMARIZE steps", "FROM runs SELECT run_id", "SHOW TABLES"):
        assert sql(client, query).status_code == 200, query


def test_long_vectors_and_blobs_are_shortened(client):
    body = sql(client, "SELECT p.thumbnail, p.input, w.values FROM probes p, weights w LIMIT 1").get_json()
    thumb, blob, vector = body["rows"][0]
    assert thumb.startswith("<") and thumb.endswith("bytes>")
    assert blob.startswith("<") and blob.endswith("bytes>")  # probe inputs are blobs since schema 2
    assert vector[-1].endswith("items)") and len(vector) <= 33


def test_huge_result_is_cut_to_the_row_limit(limited_client):
    body = sql(limited_client, "SELECT * FROM range(10000000000)").get_json()
    assert body["truncated"] is True and len(body["rows"]) == 7 and body["max_rows"] == 7
    small = sql(limited_client, "SELECT * FROM range(7)").get_json()
    assert small["truncated"] is False and len(small["rows"]) == 7


def test_query_past_the_time_limit_is_stopped(limited_client):
    res = sql(limited_client, "SELECT count(*) FROM range(1000000000000) a")
    assert_api_error(res, 400, r"stopped after the time limit of 2\.5 s")
    # the app keeps answering afterwards
    assert sql(limited_client, "SELECT 1").status_code == 200


@pytest.mark.parametrize(
    "query, match",
    [
        ("SELECT * FROM read_csv('/etc/passwd', sep=':')", "reads only the db's own tables"),
        ("SELECT * FROM read_text('/etc/hostname')", "reads only the db's own tables"),
        ("SELECT * FROM glob('/etc/*')", "reads only the db's own tables"),
        ("SELECT * FROM 'https://example.com/data.csv'", "reads only the db's own tables"),
        ("COPY (SELECT 1) TO '/tmp/deepviz-sql-test.csv'", r"read-only .*COPY reads or writes files"),
        ("EXPORT DATABASE '/tmp/deepviz-sql-export'", r"EXPORT writes files"),
        ("CREATE TABLE t AS SELECT 1", r"CREATE would add to the database"),
        ("CREATE VIEW v AS SELECT 1", r"CREATE would add to the database"),
        ("INSERT INTO steps VALUES (1)", r"INSERT writes"),
        ("DROP VIEW steps", r"DROP would remove tables"),
        ("ATTACH '/tmp/other.duckdb' AS other", r"ATTACH opens other databases"),
        ("INSTALL httpfs", r"INSTALL and LOAD add extensions"),
        ("LOAD httpfs", r"INSTALL and LOAD add extensions"),
        ("SET enable_external_access = true", r"SET, RESET and USE change settings"),
        ("RESET enable_external_access", r"SET, RESET and USE change settings"),
        ("PRAGMA enable_profiling", r"PRAGMA changes or inspects settings"),
        ("SELECT 1; SELECT 2", r"exactly one statement; got 2"),
        ("SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/x.csv''')", "single SELECT"),
        ("SELEC 1", "syntax error"),
        ("   ", "query is empty"),
    ],
)
def test_everything_but_one_select_inside_the_db_is_refused(client, query, match):
    assert_api_error(sql(client, query), 400, match)


def test_refused_writes_leave_no_file(client, webui_db, tmp_path):
    inside = webui_db / "leak.csv"
    outside = tmp_path / "leak.csv"
    for target in (inside, outside):
        assert_api_error(sql(client, f"COPY (SELECT * FROM steps) TO '{target}'"), 400, "read-only")
        assert not target.exists()


def test_paths_leading_out_of_the_db_are_refused(tmp_path, webui_db):
    # A copy, so the shared fixture is never changed.
    db_copy = tmp_path / "db"
    shutil.copytree(webui_db, db_copy, ignore=shutil.ignore_patterns(".*.tmp"))  # (another app may be writing a derived table)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (db_copy / "link.txt").symlink_to(secret)
    (db_copy / "linkdir").symlink_to(tmp_path)
    store = StatsDB(db_copy)
    root = db_copy.resolve()
    for path in (f"{root}/link.txt", f"{root}/linkdir/secret.txt", f"{root}/predictions/../../secret.txt", str(secret)):
        with pytest.raises(QueryError, match="reads only the db's own tables"):
            sandboxed_query(store, f"SELECT content FROM read_text('{path}')", 10, 5.0)
    # files of the db itself stay readable
    out = sandboxed_query(store, f"SELECT count(*) FROM read_parquet('{root}/predictions/**/*.parquet')", 10, 5.0)
    assert out["rows"][0][0] > 0


def test_sandboxed_query_checks_its_input(webui_db):
    store = StatsDB(webui_db)
    with pytest.raises(QueryError, match="characters long; at most"):
        sandboxed_query(store, "SELECT 1 " + " " * 30_000, 10, 5.0)
    with pytest.raises(QueryError, match="query is empty"):
        sandboxed_query(store, None, 10, 5.0)


def test_malformed_request_bodies(client):
    assert_api_error(client.post("/api/sql", data="SELECT 1"), 400, "Send a JSON object")
    assert_api_error(client.post("/api/sql", json=["SELECT 1"]), 400, "Send a JSON object")
    assert_api_error(client.post("/api/sql", json={"query": 5}), 400, "Parameter 'query' must be a string")
    assert_api_error(client.post("/api/sql", json={}), 400, "Parameter 'query' must be a string")
    assert_api_error(client.get("/api/sql"), 405, "")


def test_an_unreadable_file_is_reported_not_a_crash(tmp_path, webui_db):
    from webui import create_app

    db_copy = tmp_path / "db"
    shutil.copytree(webui_db, db_copy, ignore=shutil.ignore_patterns(".*.tmp"))  # (another app may be writing a derived table)
    victim = next(db_copy.glob("predictions/run_id=*/step=*/predictions.parquet"))
    victim.write_bytes(victim.read_bytes()[:100])
    client = create_app(db_copy, test_config={"TESTING": True}).test_client()
    # The bad file is left out of the views (and named), the other steps stay queryable.
    body = sql(client, "SELECT count(DISTINCT step) FROM predictions").get_json()
    assert body["rows"][0][0] == len(StatsDB(db_copy).steps()) - 1
    assert any(victim.name in f and "corrupt" in f for f in body["skipped"])


def test_a_blow_up_query_is_answered_within_the_time_limit(webui_db):
    """The limit covers the whole request: a query whose rows are huge lists is answered at the deadline
    (DuckDB's memory_limit and one thread bound what it takes meanwhile), not when it has finished."""
    import time

    from webui import create_app

    client = create_app(webui_db, test_config={"TESTING": True, "SQL_TIMEOUT_S": 1.0, "SQL_MEMORY_LIMIT": "200MB"}).test_client()
    start = time.perf_counter()
    res = client.post("/api/sql", json={"query": "SELECT range(0, 5000000) FROM range(50)"})
    elapsed = time.perf_counter() - start
    assert_api_error(res, 400, r"time limit of 1 s|Out of Memory|memory")
    assert elapsed < 1.0 + 1.0, elapsed


def test_the_console_runs_with_the_configured_memory_limit_and_threads(webui_db):
    from webui import create_app

    client = create_app(webui_db, test_config={"TESTING": True, "SQL_MEMORY_LIMIT": "200MB", "SQL_THREADS": 1}).test_client()
    body = client.post("/api/sql", json={"query": "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t"}).get_json()
    assert body["rows"] == [["190.7 MiB", 1]]  # DuckDB shows 200 MB in MiB
    # and a query cannot raise them: the configuration is locked
    assert_api_error(client.post("/api/sql", json={"query": "SET memory_limit = '8GB'"}), 400, "read-only")
