"""The web console's SQL sandbox: one read-only SELECT, inside the db, in a child process held to limits.

Why a child process. DuckDB checks for an interrupt between chunks of rows,
and ``SELECT range(0, 5000000) FROM range(50)`` builds its one chunk, 2 GB of
lists, in one go: neither ``con.interrupt()`` nor DuckDB's ``memory_limit``
(which covers its buffer manager, not every vector) stops it in time. A child
process can be killed. It is forked from a forkserver that has this module,
DuckDB and pyarrow loaded, so it starts in milliseconds; the parent waits for
its answer until the deadline and watches its resident memory. As with any
multiprocessing code, a script that calls it keeps its own top-level work
under ``if __name__ == "__main__":`` (the child imports the main module).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from typing import TYPE_CHECKING, Any

import duckdb

from ..errors import ConfigurationError, QueryError
from .sql import check_max_rows, connect

if TYPE_CHECKING:
    from .reader import StatsDB

#: The longest query the sandbox accepts.
SQL_MAX_QUERY_CHARS = 20_000
#: DuckDB's memory limit and threads in the sandbox, unless the caller gives others.
MEMORY_LIMIT = "512MB"
THREADS = 1
#: What the child may hold beyond DuckDB's limit (interpreter, pyarrow, rows being converted) before it is killed.
PROCESS_OVERHEAD = 256 * 2**20
#: Rows fetched from DuckDB at a time.
BATCH_ROWS = 256
#: The most bytes (as Arrow holds them) of rows converted to Python values for one answer.
MAX_RESULT_BYTES = 16 * 2**20
#: How often the parent looks at the child's memory.
POLL_S = 0.02

#: Why each kind of statement is refused.
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
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def sandboxed(db: StatsDB, query: str, max_rows: int = 1000, timeout_s: float = 5.0, *,
              memory_limit: str = MEMORY_LIMIT, threads: int = THREADS) -> dict[str, Any]:
    """Run one read-only SELECT over the views, inside the db, within row, time, memory and thread limits.

    Returns ``{"columns": [{"name", "type"}], "rows": [[python values]],
    "truncated": bool, "elapsed_ms": x, "skipped": [files left out of the
    views]}``. Raises ``QueryError`` saying what was refused or why the query
    stopped.

    Two layers keep a query inside the db and read-only:

    1. DuckDB's parser must find exactly one ``SELECT`` statement
       (``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM t`` and ``VALUES``
       parse as SELECTs). COPY, CREATE, INSERT, ATTACH, INSTALL/LOAD, SET,
       PRAGMA, EXPORT... are refused by name before anything runs.
    2. The connection is locked down: the db root is the only allowed
       directory, external access is off (no other files, no network, no
       extensions), and the configuration is locked so a query cannot undo
       it. DuckDB resolves ``..`` and symlinks before checking a path.

    And these keep it small: DuckDB's ``memory_limit`` and ``threads``, set
    before the configuration is locked; rows fetched in batches of
    ``BATCH_ROWS``, at most ``MAX_RESULT_BYTES`` in all; a child process
    killed when ``timeout_s`` (from its start to its answer, conversion to
    Python values included) has passed or when it holds more than ``memory_limit`` plus
    ``PROCESS_OVERHEAD``. Nothing a query does outlives the call.
    """
    _check_query_text(query)
    check_max_rows(max_rows)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigurationError(f"threads must be a whole number, 1 or more; got {threads!r}.")
    cap = parse_size(memory_limit) + PROCESS_OVERHEAD
    start = time.perf_counter()
    _check_statement(query)
    kind, value = _in_child(str(db.root), query, max_rows, memory_limit, threads, timeout_s, cap)
    if kind == "timeout":
        raise QueryError(
            f"The query was stopped after the time limit of {timeout_s:g} s. "
            "Narrow it (a WHERE on run_id/step, fewer columns, a LIMIT) and try again."
        )
    if kind == "memory":
        raise QueryError(
            f"The query was stopped: it needed more than the memory limit of {memory_limit}. "
            "Narrow it (fewer rows, no large lists such as range(0, 5000000)) and try again."
        )
    if kind == "error":
        raise QueryError(value)
    db.skipped_files = value["skipped"]
    rows = value["rows"]
    return {
        "columns": value["columns"],
        "rows": rows[:max_rows],
        "truncated": len(rows) > max_rows,
        "elapsed_ms": round(1000 * (time.perf_counter() - start), 2),
        "skipped": list(value["skipped"]),
    }


def parse_size(text: str) -> int:
    """Bytes of a DuckDB size such as ``512MB`` or ``2GiB``."""
    m = _SIZE.match(text) if isinstance(text, str) else None
    if not m or m.group(2).upper() not in _UNITS:
        raise ConfigurationError(f"memory_limit must be a size such as '512MB' or '2GB'; got {text!r}.")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _check_query_text(query) -> None:
    if not isinstance(query, str) or not query.strip():
        raise QueryError("The query is empty. Write one SELECT, e.g. SELECT * FROM steps.")
    if len(query) > SQL_MAX_QUERY_CHARS:
        raise QueryError(f"The query is {len(query)} characters long; at most {SQL_MAX_QUERY_CHARS} are allowed.")


def _check_statement(query: str) -> None:
    """Exactly one SELECT, by DuckDB's own parser (nothing runs)."""
    con = duckdb.connect()
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        con.close()
    if len(statements) != 1:
        raise QueryError(f"Give exactly one statement; got {len(statements)}. Remove the extra ';'-separated statements.")
    kind = statements[0].type.name
    if kind != "SELECT":
        why = _SQL_REFUSED.get(kind, f"{kind} statements are not queries")
        raise QueryError(
            f"Refused: the SQL console is read-only and runs only SELECT queries ({why}). "
            "Write one SELECT, e.g. SELECT step, probe_acc FROM steps ORDER BY step."
        )


# --------------------------------------------------------------------------- the parent's side


def _context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # children start with DuckDB and pyarrow loaded
    return ctx


def _rss(pid: int) -> int:
    """Resident bytes of a process (Linux; 0 where /proc is missing, and then only DuckDB's limit holds)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _in_child(root: str, query: str, max_rows: int, memory_limit: str, threads: int, timeout_s: float, cap: int):
    """``(kind, value)`` from the child: ``ok``/``error``, or ``timeout``/``memory`` when it had to be killed.

    The clock starts once the child runs: the first call of a process also
    starts the forkserver (an interpreter importing DuckDB), which is no part
    of any query's time.
    """
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    # The child is forked from the forkserver, whose environment is the one of its own start: give it this
    # process's object-store settings (endpoint, credentials) as they are now.
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    proc = ctx.Process(target=_child, args=(send, root, query, max_rows, memory_limit, threads, aws), daemon=True)
    proc.start()
    deadline = time.perf_counter() + timeout_s
    send.close()
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return "timeout", None
            if recv.poll(min(POLL_S, left)):
                answer = recv.recv()
                return ("timeout", None) if time.perf_counter() > deadline else answer
            if _rss(proc.pid) > cap:
                return "memory", None
            if not proc.is_alive() and not recv.poll():
                return "error", f"The query's process ended without an answer (exit code {proc.exitcode})."
    except EOFError:
        return "error", f"The query's process ended without an answer (exit code {proc.exitcode})."
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()


# --------------------------------------------------------------------------- the child's side


def _child(send, root: str, query: str, max_rows: int, memory_limit: str, threads: int, aws: dict) -> None:
    from .reader import StatsDB

    for key in [k for k in os.environ if k.startswith("AWS_") and k not in aws]:
        del os.environ[key]
    os.environ.update(aws)
    try:
        db = StatsDB(root)
        con = connect(db, {"memory_limit": memory_limit, "threads": threads})
        try:
            _lock_down(con, db._real_root)
            columns, rows = _fetch(con, query, max_rows)
        finally:
            con.close()
        send.send(("ok", {"columns": columns, "rows": rows, "skipped": db.skipped_files}))
    except QueryError as exc:
        send.send(("error", str(exc)))
    except Exception as exc:  # anything else still answers, with its type
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


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


def _fetch(con, query: str, max_rows: int) -> tuple[list[dict], list[list]]:
    """The columns and at most ``max_rows + 1`` rows, fetched in bounded batches."""
    import pyarrow as pa

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
                    f"{MAX_RESULT_BYTES // 2**20} MB. Select fewer or smaller columns (a vector's length rather "
                    "than the vector), or fewer rows."
                )
            rows.extend(list(r.values()) for r in batch.to_pylist())
            if len(rows) > max_rows:
                break
        return columns, rows
    except duckdb.PermissionException as exc:
        raise QueryError(
            f"Refused: the SQL console reads only the db's own tables and files ({exc}). "
            "Query the views instead: runs, steps, predictions, activations, metrics, ..."
        ) from exc
    except duckdb.OutOfMemoryException as exc:
        raise QueryError(f"The query needed more than its memory limit ({exc}). Narrow it and try again.") from exc
    except (duckdb.Error, pa.ArrowException) as exc:
        # Errors raised while rows stream arrive through the Arrow reader as pyarrow exceptions.
        raise QueryError(f"{type(exc).__name__}: {exc}") from exc
