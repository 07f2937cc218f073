"""The SQL console: read-only queries over the db's tables, with a row limit and a time limit.

``POST /api/sql`` with ``{"query": "..."}`` answers
``{"columns": [{"name", "type"}], "rows": [[...]], "truncated": bool, "elapsed_ms": x}``.

Two layers keep a query inside the db and read-only:

1. DuckDB's parser (``extract_statements``) must find exactly one ``SELECT``
   statement (``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM t`` and ``VALUES``
   parse as SELECTs). COPY, CREATE, INSERT, ATTACH, INSTALL/LOAD, SET, PRAGMA,
   EXPORT... are refused by name before anything runs.
2. The connection itself is locked down: the db root is the only allowed
   directory, external access is off (no other files, no network, no
   extensions), and the configuration is locked so a query cannot undo it.
   DuckDB resolves ``..`` and symlinks before checking a path, so neither
   leads out of the db. The views over the db's Parquet are bound at query
   time, which is why the db root has to be in ``allowed_directories`` rather
   than relying on the views having been created before the lock.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import threading
import time

from flask import Blueprint, current_app, jsonify, request

from deepviz.errors import QueryError

from .errors import ApiError
from .params import db

bp = Blueprint("sql", __name__, url_prefix="/api")

MAX_QUERY_CHARS = 20_000
# Long list cells (probability vectors, activations, flattened inputs) are cut
# so that 1,000 rows of 3,072-float inputs do not become a 30 MB JSON answer.
MAX_LIST_ITEMS = 32
MAX_TEXT_CHARS = 2_000

_ALLOWED = {"SELECT"}
_WHY = {
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


def _refuse(kind: str) -> QueryError:
    why = _WHY.get(kind, f"{kind} statements are not queries")
    return QueryError(
        f"Refused: the SQL console is read-only and runs only SELECT queries ({why}). "
        "Write one SELECT, e.g. SELECT step, probe_acc FROM steps ORDER BY step."
    )


def _cell(value):
    """One result value as JSON: floats stay numbers (NaN/Inf -> null), the rest readable text."""
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            return value[:MAX_TEXT_CHARS] + f"… ({len(value)} characters)"
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (list, tuple)):
        items = [_cell(v) for v in value[:MAX_LIST_ITEMS]]
        if len(value) > MAX_LIST_ITEMS:
            items.append(f"… ({len(value)} items)")
        return items
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    return str(value)


def sandboxed_query(store, query: str, max_rows: int, timeout_s: float) -> dict:
    """Run one read-only SELECT over ``store``'s views, inside the db, within limits.

    Uses only ``store.connect()`` and the connection it returns, so it can move
    into ``StatsDB`` as a method. Raises ``QueryError`` (a ValueError) with a
    message saying what was refused or why the query stopped.
    """
    # Local import: this function belongs with the store (the only code that
    # touches DuckDB); it lives here until the store grows a sandboxed query.
    import duckdb

    if not isinstance(query, str) or not query.strip():
        raise QueryError("The query is empty. Write one SELECT, e.g. SELECT * FROM steps.")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"The query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are allowed.")
    con = store.connect()
    try:
        root = str(store.root.resolve()).replace("'", "''")
        for statement in (
            f"SET allowed_directories = ['{root}/']",
            "SET enable_external_access = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET lock_configuration = true",
        ):
            con.execute(statement)
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryError(f"{type(exc).__name__}: {exc}") from exc
        if len(statements) != 1:
            raise QueryError(f"Give exactly one statement; got {len(statements)}. Remove the extra ';'-separated statements.")
        kind = statements[0].type.name
        if kind not in _ALLOWED:
            raise _refuse(kind)

        timed_out = threading.Event()

        def stop():
            timed_out.set()
            con.interrupt()

        timer = threading.Timer(timeout_s, stop)
        start = time.perf_counter()
        timer.start()
        try:
            # A relation streams: only the first max_rows + 1 rows are ever produced.
            reader = con.sql(query).to_arrow_reader(max(1, min(max_rows + 1, 2048)))
            columns = [{"name": f.name, "type": str(f.type)} for f in reader.schema]
            rows: list[list] = []
            for batch in reader:
                for record in batch.to_pylist():
                    rows.append([_cell(v) for v in record.values()])
                if len(rows) > max_rows:
                    break
        except duckdb.PermissionException as exc:
            raise QueryError(
                f"Refused: the SQL console reads only the db's own tables and files ({exc}). "
                "Query the views instead: runs, steps, predictions, activations, metrics, ..."
            ) from exc
        except Exception as exc:
            # Errors raised while rows stream arrive through the Arrow reader as
            # pyarrow exceptions (OSError/ValueError) carrying DuckDB's message,
            # so the interrupt is recognised by the timer's flag, not by type.
            if timed_out.is_set():
                raise QueryError(
                    f"The query was stopped after the time limit of {timeout_s:g} s. "
                    "Narrow it (a WHERE on run_id/step, fewer columns, a LIMIT) and try again."
                ) from exc
            if isinstance(exc, (duckdb.Error, OSError, ValueError, RuntimeError)):
                raise QueryError(f"{type(exc).__name__}: {exc}") from exc
            raise
        finally:
            timer.cancel()
        elapsed_ms = 1000 * (time.perf_counter() - start)
    finally:
        con.close()
    truncated = len(rows) > max_rows
    return {"columns": columns, "rows": rows[:max_rows], "truncated": truncated, "elapsed_ms": round(elapsed_ms, 2)}


@bp.post("/sql")
def run_sql():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("Send a JSON object {\"query\": \"SELECT ...\"} with Content-Type: application/json.", 400)
    query = body.get("query")
    if not isinstance(query, str):
        raise ApiError(f"Parameter 'query' must be a string of SQL; got {type(query).__name__}.", 400)
    out = sandboxed_query(db(), query, int(current_app.config["SQL_MAX_ROWS"]), float(current_app.config["SQL_TIMEOUT_S"]))
    out["max_rows"] = int(current_app.config["SQL_MAX_ROWS"])
    return jsonify(out)
