"""The ``deepviz`` command on a db in object storage: ``--endpoint-url``, ``runs``/``sql`` on s3://, ``gc``, ``sync``."""

from __future__ import annotations

import os

import pytest

from deepviz import StatsDB

from tests.cli_support import assert_error, run_main
from tests.s3_server import s3_db, s3_endpoint  # noqa: F401 (fixtures)
from tests.test_s3 import write_tiny_run


def test_sql_and_runs_read_an_s3_db_with_the_endpoint_given_on_the_command_line(capsys, s3_db, monkeypatch):  # noqa: F811
    from deepviz.store import StatsWriter

    write_tiny_run(StatsWriter(s3_db), "r", [0, 5])
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the option says where the store is
    code, out, err = run_main(capsys, "--endpoint-url", endpoint, "sql", s3_db,
                              "SELECT step, count(*) AS n FROM predictions GROUP BY step ORDER BY step", "--format", "csv")
    assert code == 0, err
    assert out.splitlines() == ["step,n", "0,4", "5,4"]
    code, out, err = run_main(capsys, "runs", s3_db)
    assert code == 0 and "r" in out.split()


def test_a_bad_endpoint_is_refused_before_anything_runs(capsys):
    code, out, err = run_main(capsys, "--endpoint-url", "minio:9000", "runs", "s3://bucket/db")
    assert code == 2 and "--endpoint-url must start with http:// or https://, got 'minio:9000'" in err


def test_sync_then_gc_from_the_command_line(capsys, populated_db, s3_db):  # noqa: F811
    code, out, err = run_main(capsys, "sync", str(populated_db), s3_db)
    assert code == 0, err
    assert out.strip().startswith(f"synced {populated_db} -> {s3_db}: ") and "objects copied" in out
    assert StatsDB(s3_db).steps() == StatsDB(populated_db).steps()
    code, out, err = run_main(capsys, "gc", s3_db, "--older-than", "0", "--dry-run")
    assert code == 0 and out.strip() == "would remove 0 orphans of uncommitted steps; committed steps untouched"
    code, out, err = run_main(capsys, "sync", s3_db, str(populated_db))
    assert_error(code, err, r"deepviz sync copies a local db to object storage: got 's3://.*' -> '.*'\. Give a local folder")


def test_gc_refuses_a_negative_age_on_the_command_line(capsys):
    code, out, err = run_main(capsys, "gc", "stats_db", "--older-than", "-5")
    assert code == 2 and "expected a number of seconds, 0 or more, got '-5'" in err


def test_an_empty_s3_prefix_becomes_an_empty_db_a_server_can_wait_on(s3_db):  # noqa: F811
    from deepviz.store import StatsWriter, prepare_db

    assert prepare_db(s3_db) is True  # nothing there yet: made an empty db
    assert StatsDB(s3_db).runs().empty
    write_tiny_run(StatsWriter(s3_db), "r", [0])
    assert prepare_db(s3_db) is False  # a db now: left as it is
    assert StatsDB(s3_db).steps("r") == [0]


def test_the_sql_sandbox_reads_object_storage_with_the_settings_of_now(s3_db, monkeypatch):  # noqa: F811
    # Its child is forked from a forkserver whose environment is that of the forkserver's start, which may come
    # before the endpoint was set (the first console query of a server, another test): the child must get the
    # caller's object-store settings as they are at the query.
    from deepviz.errors import QueryError
    from deepviz.store import StatsWriter

    write_tiny_run(StatsWriter(s3_db), "r", [0, 5])
    db = StatsDB(s3_db)
    assert db.sandboxed_sql("SELECT count(*) FROM steps", timeout_s=60)["rows"] == [[2]]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(QueryError, match=r"OSError"):
        db.sandboxed_sql("SELECT count(*) FROM steps", timeout_s=60)
