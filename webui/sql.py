"""The SQL console: read-only queries over the db's tables, with row, time and memory limits, on a small pool.

``POST /api/sql`` with ``{"query": "..."}`` answers
``{"columns": [{"name", "type"}], "rows": [[...]], "truncated": bool, "elapsed_ms": x,
"max_rows": n, "skipped": [files left out of the views]}``.

The sandbox itself (one SELECT, inside the db, locked-down DuckDB settings,
row and time limits) is ``StatsDB.sandboxed_sql``: the store is the only code
that touches DuckDB. This module checks the request and turns result values
into readable JSON.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import time

from flask import Blueprint, current_app, jsonify, request

from deepviz.store import SQL_MAX_QUERY_CHARS as MAX_QUERY_CHARS  # noqa: F401  (re-exported for callers)

from deepviz.errors import QueryError

from .errors import ApiError
from .params import db
from .state import state

bp = Blueprint("sql", __name__, url_prefix="/api")

# Long list cells (probability vectors, activations, flattened inputs) are cut
# so that 1,000 rows of 3,072-float inputs do not become a 30 MB JSON answer.
MAX_LIST_ITEMS = 32
MAX_TEXT_CHARS = 2_000
#: Seconds past the time limit a request waits for the sandbox to stop its query.
SQL_GRACE_S = 0.5


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


def sandboxed_query(store, query: str, max_rows: int, timeout_s: float, *, memory_limit: str = "512MB", threads: int = 1) -> dict:
    """``store.sandboxed_sql`` with every value made JSON-ready (see ``_cell``)."""
    out = store.sandboxed_sql(query, max_rows, timeout_s, memory_limit=memory_limit, threads=threads)
    out["rows"] = [[_cell(v) for v in row] for row in out["rows"]]
    return out


def _too_late(timeout_s: float) -> QueryError:
    return QueryError(f"The query was stopped after the time limit of {timeout_s:g} s (time spent waiting for a free "
                      "SQL worker counts). Narrow it (a WHERE on run_id/step, fewer columns, a LIMIT) and try again.")


def _run_in_pool(query: str) -> dict:
    """The query on the app's small SQL pool, within one deadline for the whole request.

    At most ``SQL_WORKERS`` queries run at once and ``SQL_QUEUE`` wait; more
    get a 429, so slow queries never hold the server's request threads.
    """
    config = current_app.config
    timeout_s = float(config["SQL_TIMEOUT_S"])
    deadline = time.monotonic() + timeout_s
    store, max_rows = db(), int(config["SQL_MAX_ROWS"])
    limits = {"memory_limit": str(config["SQL_MEMORY_LIMIT"]), "threads": int(config["SQL_THREADS"])}

    def work(_job) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _too_late(timeout_s)
        try:
            out = sandboxed_query(store, query, max_rows, left, **limits)
        except QueryError as exc:
            if time.monotonic() >= deadline - 0.01:  # stopped at the request's deadline: say the request's limit
                raise _too_late(timeout_s) from exc
            raise
        if time.monotonic() > deadline:  # the conversion counts too
            raise _too_late(timeout_s)
        return out

    pool = state().sql
    job = pool.submit(object(), work)
    # A little grace past the deadline, for the sandbox's own timer to interrupt the query. Past it the
    # client is answered anyway: a queued query is dropped, a running one finishes in its pool slot unread.
    if not job.wait(max(0.0, deadline - time.monotonic()) + SQL_GRACE_S):
        pool.cancel(job)
        raise _too_late(timeout_s)
    if job.exception is not None:
        raise job.exception
    return job.result


@bp.post("/sql")
def run_sql():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("Send a JSON object {\"query\": \"SELECT ...\"} with Content-Type: application/json.", 400)
    query = body.get("query")
    if not isinstance(query, str):
        raise ApiError(f"Parameter 'query' must be a string of SQL; got {type(query).__name__}.", 400)
    out = _run_in_pool(query)
    out["max_rows"] = int(current_app.config["SQL_MAX_ROWS"])
    return jsonify(out)
