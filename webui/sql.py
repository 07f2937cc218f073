"""The SQL console: read-only queries over the db's tables, with a row limit and a time limit.

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

from flask import Blueprint, current_app, jsonify, request

from deepviz.store import SQL_MAX_QUERY_CHARS as MAX_QUERY_CHARS  # noqa: F401  (re-exported for callers)

from .errors import ApiError
from .params import db

bp = Blueprint("sql", __name__, url_prefix="/api")

# Long list cells (probability vectors, activations, flattened inputs) are cut
# so that 1,000 rows of 3,072-float inputs do not become a 30 MB JSON answer.
MAX_LIST_ITEMS = 32
MAX_TEXT_CHARS = 2_000


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
    """``store.sandboxed_sql`` with every value made JSON-ready (see ``_cell``)."""
    out = store.sandboxed_sql(query, max_rows, timeout_s)
    out["rows"] = [[_cell(v) for v in row] for row in out["rows"]]
    return out


@bp.post("/sql")
def run_sql():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("Send a JSON object {\"query\": \"SELECT ...\"} with Content-Type: application/json.", 400)
    query = body.get("query")
    if not isinstance(query, str):
        raise ApiError(f"Parameter 'query' must be a string of SQL; got {type(query).__name__}.", 400)
    max_rows = int(current_app.config["SQL_MAX_ROWS"])
    out = sandboxed_query(db(), query, max_rows, float(current_app.config["SQL_TIMEOUT_S"]))
    out["max_rows"] = max_rows
    return jsonify(out)
