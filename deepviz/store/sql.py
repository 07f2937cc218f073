"""SQL over the db: one DuckDB view per table over the files readable now (the web console's limits are in ``sandbox``)."""

from __future__ import annotations

import atexit
import os
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from .. import schema as S
from ..errors import ConfigurationError, QueryError
from .codec import arrow_type, duck_type, parquet_ok
from .layout import RUN_DIR, STEP_DIR, inside
from .remote import ObjPath

if TYPE_CHECKING:
    from .reader import StatsDB

# --------------------------------------------------------------------------- views


def _file_ok(db: StatsDB, path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return db.cache.get(("footer", str(path), st.st_size, st.st_mtime_ns), lambda: parquet_ok(path))


def _parquet_files(db: StatsDB, base: Path, skipped: list[str]) -> list[Path]:
    """The ``*.parquet`` files under ``base``; folders linked from outside the db are reported, not entered."""
    if isinstance(base, ObjPath):
        return sorted(base.rglob("*.parquet"))  # object stores have no links
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


def _table_files(db: StatsDB, table: S.Table, committed: Mapping[str, set[int]], skipped: list[str]) -> list:
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
            out.append(path if isinstance(path, ObjPath) else os.path.realpath(path))
    return out


def _duck_arrow_type(name: str) -> pa.DataType:
    """The Arrow type DuckDB scans a column as: float16, which DuckDB's Arrow scan lacks, read as float32."""
    return arrow_type(name.replace("float16", "float32"))


def _source(table: S.Table, files: list, datasets: dict[str, pads.Dataset]) -> str:
    """What a view selects from: ``read_parquet`` of local files, or a registered Arrow dataset of objects
    (DuckDB here cannot load httpfs; pyarrow reads the objects, DuckDB scans the dataset)."""
    if isinstance(files[0], ObjPath):
        name = f"_{table.name}_objects"
        schema = pa.schema([pa.field(n, _duck_arrow_type(t)) for n, t, _ in table.columns])
        datasets[name] = pads.dataset([f.path for f in files], schema=schema, format="parquet",
                                      filesystem=files[0].remote.fs)
        return name
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{listed}], hive_partitioning=false, union_by_name=true)"


def views_sql(db: StatsDB, datasets: dict[str, pads.Dataset]) -> list[str]:
    """Statements that make one view per table over the files readable now.

    The file lists are built here, not globbed by DuckDB at query time: a
    glob would fail every query on one truncated file, and could follow a
    link out of the db. Commit markers are listed first: a step's other
    folders were moved in before its marker, so every committed step is
    whole in the lists that follow. Object-store files are read through
    Arrow datasets, added to ``datasets`` by the name the statements use.
    """
    committed = {run_id: set(db.layout.committed_steps(run_id)) for run_id in db.layout.step_runs()}
    skipped: list[str] = []
    statements = []
    for table in [S.STEPS] + [t for t in S.all_tables() if t is not S.STEPS]:
        files = _table_files(db, table, committed, skipped)
        if files:
            source = _source(table, files, datasets)
        else:
            cols = ", ".join(f"NULL::{duck_type(t)} AS {n}" for n, t, _ in table.columns)
            source = f"(SELECT {cols} WHERE false)"
        if table is S.STEPS:
            # A table, read once: every query of this connection (and of its cursors) sees the same steps.
            statements.append(f"CREATE OR REPLACE TABLE steps AS SELECT * FROM {source}")
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
        datasets: dict[str, pads.Dataset] = {}
        statements = views_sql(db, datasets)
        for name, dataset in datasets.items():
            con.register(name, dataset)
        for statement in statements:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


# --------------------------------------------------------------------------- the shared connection


class _Shared:
    """A connection with the views of one state of the db's files, and the cursors open on it."""

    def __init__(self, signature: tuple, con, skipped: list[str]):
        self.signature, self.con, self.skipped = signature, con, skipped
        self.users = 0
        self.retired = False


def _signature(db: StatsDB) -> tuple:
    """What the views of a local db depend on, cheaply: every entry under the tables' folders with its
    ``lstat`` (a file or a link that comes, goes, is replaced or rewritten changes it)."""
    out = []
    stack = [os.path.join(db.root, t.name) for t in S.all_tables()]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # a table without files yet
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                out.append((entry.path, st.st_ino, st.st_size, st.st_mtime_ns))
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return tuple(sorted(out))


def _current(db: StatsDB) -> _Shared:
    """The db's shared entry, its views remade (on a new connection) when a file came, went or changed."""
    signature = _signature(db)
    entry = db._shared_sql
    if entry is not None and entry.signature == signature:
        return entry
    con = duckdb.connect()
    try:
        for statement in views_sql(db, {}):
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    if entry is not None:
        entry.retired = True
        _close_if_idle(entry)
    db._shared_sql = _Shared(signature, con, list(db.skipped_files))
    _OPEN.add(db._shared_sql)
    return db._shared_sql


def _close_if_idle(entry: _Shared) -> None:
    if entry.retired and entry.users == 0:
        entry.con.close()
        _OPEN.discard(entry)


#: The shared connections still open, held weakly: one whose StatsDB is gone is collected (and closed) with it,
#: and each left is closed when the interpreter exits, before its objects are torn down: a DuckDB connection
#: left to the interpreter's last collection aborted `deepviz runs` at exit in CI ("terminate called without an
#: active exception").
_OPEN: weakref.WeakSet[_Shared] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for entry in list(_OPEN):
        entry.con.close()
    _OPEN.clear()


@contextmanager
def shared(db: StatsDB) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor (DuckDB's connection for one thread) on the shared views of a local db, closed on leaving.

    The views are made once per state of the db's files, not per query: they
    are remade when a file comes, goes or changes (see ``_signature``). An
    old connection is closed once its last cursor is.
    """
    with db._shared_sql_lock:
        entry = _current(db)
        entry.users += 1
        cursor = entry.con.cursor()
        db.skipped_files = list(entry.skipped)
    try:
        yield cursor
    finally:
        cursor.close()
        with db._shared_sql_lock:
            entry.users -= 1
            _close_if_idle(entry)


def check_max_rows(max_rows) -> int:
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise ConfigurationError(f"max_rows must be a whole number of rows, 0 or more; got {max_rows!r}.")
    return max_rows


def run(db: StatsDB, query: str, max_rows: int | None = None):
    """Run a SQL query over the views and return a pandas DataFrame; with ``max_rows``, fetch only that many rows.

    On a local db one SELECT runs on a cursor of the db's shared connection
    (``shared``); anything else (CREATE, SET, several statements), and every
    query on object storage (whose Arrow datasets are registered on one
    connection only), on a connection of its own, so that it cannot change
    what later queries see.
    """
    if max_rows is not None:
        check_max_rows(max_rows)
    try:
        if not isinstance(db.root, ObjPath):
            with shared(db) as cursor:
                if _one_select(cursor, query):
                    return _fetch(cursor, query, max_rows)
        con = connect(db)
        try:
            return _fetch(con, query, max_rows)
        finally:
            con.close()
    except (duckdb.Error, pa.ArrowException) as exc:
        raise QueryError(f"{type(exc).__name__}: {exc}") from exc


def _one_select(con, query: str) -> bool:
    statements = con.extract_statements(query)
    return len(statements) == 1 and statements[0].type.name == "SELECT"


def _fetch(con, query: str, max_rows: int | None):
    if max_rows is None:
        return con.execute(query).df()
    relation = con.sql(query)
    if relation is None:  # a statement without rows (CREATE, SET, ...)
        return con.execute("SELECT NULL WHERE false").df().iloc[:, :0]
    # A relation streams: only the batches needed for max_rows rows are ever produced.
    return _first_rows(relation.to_arrow_reader(max(1, min(max_rows, 2048))), max_rows).to_pandas()


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
