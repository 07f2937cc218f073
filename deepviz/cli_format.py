"""How the ``deepviz`` command prints a result frame: an aligned table, CSV or JSON records."""

from __future__ import annotations

import base64
import json
import math
import sys

FORMATS = ("table", "csv", "json")


def jsonable(value):
    """A cell of a query result as JSON: arrays as lists, bytes as base64, NaN and NaT as null."""
    import numpy as np
    import pandas as pd

    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def for_text(value):
    """A cell for table and CSV output: bytes shown by size rather than dumped."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return value


def print_frame(frame, fmt: str, out=None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        records = [{str(k): jsonable(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
        json.dump(records, out, indent=None, allow_nan=False)
        out.write("\n")
        return
    if len(frame.columns):
        # DataFrame.map is pandas >= 2.1; applymap is its older name
        frame = (frame.map if hasattr(frame, "map") else frame.applymap)(for_text)
    if fmt == "csv":
        frame.to_csv(out, index=False)
        return
    if frame.empty:
        out.write(f"(0 rows; columns: {', '.join(map(str, frame.columns)) or 'none'})\n")
        return
    out.write(frame.to_string(index=False, max_colwidth=60) + "\n")
