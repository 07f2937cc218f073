"""SQL over the db: one DuckDB view per table over the files readable now, and the sandbox of the web console."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import duckdb
import pyarrow as pa

from .. import schema as S
from ..errors import ConfigurationError, QueryError
from .codec import duck_type, parquet_ok
from .layout import RUN_DIR, STEP_DIR, inside

if TYPE_CHECKING:
    from .reader import StatsDB

#: The longest query the sandbox accepts.
SQL_MAX_QUERY_CHARS = 20_000
#: The sandbox's DuckDB memory limit and threads, unless the caller gives others.
MEMORY_LIMIT = "512MB"
THREADS = 1
#: Rows fetched from DuckDB at a time: each batch is converted, then the limits are checked again.
BATCH_ROWS = 256
#: The most bytes (as Arrow holds them) of rows the sandbox converts to Python values for one answer.
MAX_RESULT_BYTES = 64 * 2**20

#: Why each kind of statement is refused by ``sandboxed``.
_SQL_REFUSED = {
    "COPY": "COPY reads or writes files",
    "EXPORT": "EXPORT writes files",
    "CREATE": "CREATE would add to the database",
    "INSERT": "INSERT writes",
    "UPDATE": "UPDATE writes",
    "DELETE": "DELETE writes",
    "DROP": "DROP would remove tables",
    "ALTER": "ALTER changes tables",
    "ATTACH": "ATTACH opens other databases",
    "DETACH": "DETACH changes the attached databases",
    "LOAD": "INSTALL and LOAD add extensions",
    "SET": "SET, RESET and USE change settings",
    "VARIABLE_SET": "SET VARIABLE changes settings",
    "PRAGMA": "PRAGMA changes or inspects settings",
    "CALL": "CALL runs procedures",
}


# --------------------------------------------------------------------------- views


def _file_ok(db: StatsDB, path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return db.cache.get(("footer", str(path), st.st_size, st.st_mtime_ns), lambda: parquet_ok(path))


def _parquet_files(db: StatsDB, base: Path, skipped: list[str]) -> list[Path]:
    """The ``*.parquet`` files under ``base``; folders linked from outside the db are reported, not entered."""
    out = []
    for folder, dirs, files in os.walk(base):
        for name in list(dirs):
            sub = Path(folder, name)
            if sub.is_symlink() and not inside(db._real_root, sub):
                skipped.append(f"{sub.relative_to(db.root)}/ (a link leading outside the db)")
                dirs.remove(name)
        out.extend(Path(folder, f) for f in files if f.endswith(".parquet"))
    return sorted(out)


def _committed(rel: Path, committed: Mapping[str, set[int]]) -> bool:
    """Is the file at ``rel`` (``<table>/run_id=<R>/step=<S>/<file>``) part of a committed step?"""
    if len(rel.parts) <= 3:
        return False
    run, step = RUN_DIR.match(rel.parts[1]), STEP_DIR.match(rel.parts[2])
    return bool(run and step and int(step.group(1)) in committed.get(run.group(1), ()))


def _table_files(db: StatsDB, table: S.Table, committed: Mapping[str, set[int]], skipped: list[str]) -> list[str]:
    """The readable Parquet files of a table, resolved, inside the db; snapshot tables only for committed steps."""
    out = []
    base = db.root / table.name
    if not base.is_dir():
        return out
    for path in _parquet_files(db, base, skipped):
        rel = path.relative_to(db.root)
        if table.snapshot and not _committed(rel, committed):
            continue  # not committed yet, or a crash leftover: invisible
        if not inside(db._real_root, path):
            skipped.append(f"{rel} (a link leading outside the db)")
        elif not _file_ok(db, path):
            skipped.append(f"{rel} (truncated or corrupt)")
        else:
            out.append(os.path.realpath(path))
    return out


def views_sql(db: StatsDB) -> list[str]:
    """Statements that make one view per table over the files readable now.

    The file lists are built here, not globbed by DuckDB at query time: a
    glob would fail every query on one truncated file, and could follow a
    link out of the db. Commit markers are listed first: a step's other
    folders were moved in before its marker, so every committed step is
    whole in the lists that follow.
    """
    committed = {run_id: set(db.layout.committed_steps(run_id)) for run_id in db.layout.step_runs()}
    skipped: list[str] = []
    statements = []
    for table in [S.STEPS] + [t for t in S.all_tables() if t is not S.STEPS]:
        files = _table_files(db, table, committed, skipped)
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            source = f"read_parquet([{listed}], hive_partitioning=false, union_by_name=true)"
        else:
            cols = ", ".join(f"NULL::{duck_type(t)} AS {n}" for n, t, _ in table.columns)
            source = f"(SELECT {cols} WHERE false)"
        if table is S.STEPS:
            # A table, read once: every query of this connection sees the same steps.
            statements.append(f"CREATE OR REPLACE TEMP TABLE steps AS SELECT * FROM {source}")
        else:
            statements.append(f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM {source}")
    db.skipped_files = skipped
    return statements


def connect(db: StatsDB, config: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per table.

    ``steps`` is read when the connection is made, and each view lists the
    files of the steps committed by then; connect again to see newer steps.
    Unreadable files, and links leading out of the db, are left out of the
    views (``db.skipped_files`` names them), so one bad file does not stop
    every query. ``config`` is DuckDB's, set before the views are made.
    """
    con = duckdb.connect(config=dict(config or {}))
    try:
        for statement in views_sql(db):
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _check_max_rows(max_rows) -> int:
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise ConfigurationError(f"max_rows must be a whole number of rows, 0 or more; got {max_rows!r}.")
    return max_rows


def run(db: StatsDB, query: str, max_rows: int | None = None):
    """Run a SQL query over the views and return a pandas DataFrame; with ``max_rows``, fetch only that many rows."""
    if max_rows is not None:
        _check_max_rows(max_rows)
    con = connect(db)
    try:
        if max_rows is None:
            return con.execute(query).df()
        relation = con.sql(query)
        if relation is None:  # a statement without rows (CREATE, SET, ...)
            return con.execute("SELECT NULL WHERE false").df().iloc[:, :0]
        # A relation streams: only the batches needed for max_rows rows are ever produced.
        return _first_rows(relation.to_arrow_reader(max(1, min(max_rows, 2048))), max_rows).to_pandas()
    except (duckdb.Error, pa.ArrowException) as exc:
        raise QueryError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        con.close()


def _first_rows(reader: pa.RecordBatchReader, max_rows: int) -> pa.Table:
    batches, n = [], 0
    while n < max_rows:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        batches.append(batch.slice(0, max_rows - n))
        n += len(batches[-1])
    return pa.Table.from_batches(batches, schema=reader.schema)


# --------------------------------------------------------------------------- the sandbox


def sandboxed(db: StatsDB, query: str, max_rows: int = 1000, timeout_s: float = 5.0, *,
              memory_limit: str = MEMORY_LIMIT, threads: int = THREADS) -> dict[str, Any]:
    """Run one read-only SELECT over the views, inside the db, within row, time, memory and thread limits.

    For a query box in front of people who may not own the machine (the web
    UI's SQL console). Returns ``{"columns": [{"name", "type"}], "rows":
    [[python values]], "truncated": bool, "elapsed_ms": x, "skipped": [files
    left out of the views]}``. Raises ``QueryError`` saying what was refused
    or why the query stopped.

    Two layers keep a query inside the db and read-only:

    1. DuckDB's parser must find exactly one ``SELECT`` statement
       (``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM t`` and ``VALUES``
       parse as SELECTs). COPY, CREATE, INSERT, ATTACH, INSTALL/LOAD, SET,
       PRAGMA, EXPORT... are refused by name before anything runs.
    2. The connection is locked down: the db root is the only allowed
       directory, external access is off (no other files, no network, no
       extensions), and the configuration is locked so a query cannot undo
       it. DuckDB resolves ``..`` and symlinks before checking a path.

    And three keep it small: DuckDB's ``memory_limit`` and ``threads`` (set
    when the connection is made), rows fetched in batches of at most
    ``BATCH_ROWS`` rows and ``MAX_RESULT_BYTES`` in all, and one time limit
    over the whole call, connecting and converting rows to Python values
    included. The connection is in memory and used for this one query, so
    nothing a query does outlives it.
    """
    _check_query_text(query)
    _check_max_rows(max_rows)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigurationError(f"threads must be a whole number, 1 or more; got {threads!r}.")
    start = time.perf_counter()
    try:
        con = connect(db, {"memory_limit": memory_limit, "threads": threads})
    except duckdb.InvalidInputException as exc:
        raise ConfigurationError(f"Bad DuckDB setting memory_limit={memory_limit!r} ({exc}). Give a size such as '512MB' or '2GB'.") from exc
    try:
        _lock_down(con, db._real_root)
        _check_statement(con, query)
        columns, rows = _fetch(con, query, max_rows, start + timeout_s, timeout_s)
    finally:
        con.close()
    return {
        "columns": columns,
        "rows": rows[:max_rows],
        "truncated": len(rows) > max_rows,
        "elapsed_ms": round(1000 * (time.perf_counter() - start), 2),
        "skipped": list(db.skipped_files),
    }


def _check_query_text(query) -> None:
    if not isinstance(query, str) or not query.strip():
        raise QueryError("The query is empty. Write one SELECT, e.g. SELECT * FROM steps.")
    if len(query) > SQL_MAX_QUERY_CHARS:
        raise QueryError(f"The query is {len(query)} characters long; at most {SQL_MAX_QUERY_CHARS} are allowed.")


def _lock_down(con, real_root: str) -> None:
    root = real_root.replace("'", "''")
    for statement in (
        f"SET allowed_directories = ['{root}/']",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def _check_statement(con, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"{type(exc).__name__}: {exc}") from exc
    if len(statements) != 1:
        raise QueryError(f"Give exactly one statement; got {len(statements)}. Remove the extra ';'-separated statements.")
    kind = statements[0].type.name
    if kind != "SELECT":
        why = _SQL_REFUSED.get(kind, f"{kind} statements are not queries")
        raise QueryError(
            f"Refused: the SQL console is read-only and runs only SELECT queries ({why}). "
            "Write one SELECT, e.g. SELECT step, probe_acc FROM steps ORDER BY step."
        )


class _TimeUp(Exception):
    """The deadline passed while rows were being converted (DuckDB was not running to interrupt)."""


def _fetch(con, query: str, max_rows: int, deadline: float, timeout_s: float) -> tuple[list[dict], list[list]]:
    """The columns and at most ``max_rows + 1`` rows, in bounded batches, stopped at ``deadline``."""
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        con.interrupt()

    timer = threading.Timer(max(0.0, deadline - time.perf_counter()), stop)
    timer.start()
    try:
        # A relation streams: only the batches needed for max_rows + 1 rows are ever produced.
        reader = con.sql(query).to_arrow_reader(max(1, min(max_rows + 1, BATCH_ROWS)))
        columns = [{"name": f.name, "type": str(f.type)} for f in reader.schema]
        rows: list[list] = []
        nbytes = 0
        for batch in reader:
            nbytes += batch.nbytes
            if nbytes > MAX_RESULT_BYTES:
                raise QueryError(
                    f"The result is too large: its first {len(rows) + batch.num_rows} rows hold more than "
                    f"{MAX_RESULT_BYTES // 2**20} MB. Select fewer or smaller columns (a vector's length, not the vector), "
                    "or fewer rows."
                )
            rows.extend(list(r.values()) for r in batch.to_pylist())
            if time.perf_counter() > deadline:
                raise _TimeUp
            if len(rows) > max_rows:
                break
        return columns, rows
    except duckdb.PermissionException as exc:
        raise QueryError(
            f"Refused: the SQL console reads only the db's own tables and files ({exc}). "
            "Query the views instead: runs, steps, predictions, activations, metrics, ..."
        ) from exc
    except (_TimeUp, duckdb.Error, pa.ArrowException, OSError, ValueError, RuntimeError) as exc:
        # Errors raised while rows stream arrive through the Arrow reader as
        # pyarrow exceptions (OSError/ValueError) carrying DuckDB's message,
        # so the interrupt is recognised by the timer's flag, not by type.
        if isinstance(exc, _TimeUp) or timed_out.is_set():
            raise QueryError(
                f"The query was stopped after the time limit of {timeout_s:g} s. "
                "Narrow it (a WHERE on run_id/step, fewer columns, a LIMIT) and try again."
            ) from exc
        if isinstance(exc, QueryError):
            raise
        raise QueryError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        timer.cancel()
