"""Request-parameter parsing shared by every blueprint, so no handler repeats the checks.

Each getter raises ``ApiError`` (400) naming the parameter, what was given and
what is allowed; run/step/layer lookups raise 404s that name the missing thing.
"""

from __future__ import annotations

import struct

import numpy as np
from flask import Response, current_app, request

from deepviz import StatsDB

from .errors import ApiError


def db() -> StatsDB:
    return current_app.extensions["deepviz_db"]


def _raw(name: str):
    value = request.args.get(name)
    return None if value is None or value == "" else value


def get_int(name: str, default: int | None = None, *, lo: int | None = None, hi: int | None = None, required: bool = False) -> int | None:
    value = _raw(name)
    if value is None:
        if required:
            raise ApiError(f"Missing parameter '{name}': give an integer.", 400)
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(f"Parameter '{name}' must be an integer, got {value[:50]!r}.", 400) from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ApiError(f"Parameter '{name}' must be between {lo} and {hi}, got {number}.", 400)
    return number


def get_float(name: str, default: float | None = None, *, lo: float | None = None, hi: float | None = None) -> float | None:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ApiError(f"Parameter '{name}' must be a number, got {value[:50]!r}.", 400) from None
    if not np.isfinite(number) or (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ApiError(f"Parameter '{name}' must be a finite number between {lo} and {hi}, got {value[:50]!r}.", 400)
    return number


def get_choice(name: str, choices, default: str | None = None) -> str:
    value = _raw(name)
    if value is None:
        if default is None:
            raise ApiError(f"Missing parameter '{name}'. Allowed: {', '.join(choices)}.", 400)
        return default
    if value not in choices:
        raise ApiError(f"Parameter '{name}' must be one of {', '.join(choices)}; got {value[:50]!r}.", 400)
    return value


def get_str(name: str, default: str | None = None, *, max_len: int = 200) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    if len(value) > max_len:
        raise ApiError(f"Parameter '{name}' is too long ({len(value)} characters; at most {max_len}).", 400)
    return value


def run_id(run: str) -> str:
    """Resolve the run in the URL (404 naming it when unknown)."""
    return db().resolve_run(run)


def step_of(run: str, step) -> int:
    """Check that ``step`` is a committed step of ``run`` (404 naming it when not)."""
    try:
        number = int(step)
    except (TypeError, ValueError):
        raise ApiError(f"Step must be an integer, got {str(step)[:50]!r}.", 400) from None
    return db().require_step(run, number)


def layer_of(run: str, step: int | None = None, name: str = "layer", required: bool = True) -> str | None:
    """The ``layer`` parameter, checked against the run's captured layers."""
    layers = db().layers(step, run) if step is not None else db().layers(None, run)
    value = _raw(name)
    if value is None:
        if not required:
            return None
        if not layers:
            raise ApiError("This run captured no layers.", 404)
        return layers[-2] if len(layers) > 1 else layers[0]
    if value not in layers:
        raise ApiError(f"Unknown layer {value[:50]!r}. Available: {', '.join(layers)}.", 404)
    return value


def binary(arrays: dict[str, np.ndarray], meta: dict | None = None) -> Response:
    """Arrays as one compact binary response, read in the browser into typed arrays.

    Layout: a little-endian uint32 header length, a UTF-8 JSON header
    ``{"meta":..., "arrays": [{"name", "dtype", "shape", "offset"}]}``, then the
    raw little-endian arrays, each aligned to 8 bytes (so a Float32Array can view them).
    """
    import json

    specs, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        if arr.dtype == np.int64:
            arr = arr.astype(np.int32)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        specs.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape), "offset": offset})
        pad = (-len(raw)) % 8
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    header = json.dumps({"meta": meta or {}, "arrays": specs}).encode()
    header += b" " * ((-(len(header) + 4)) % 8)
    body = struct.pack("<I", len(header)) + header + b"".join(chunks)
    return Response(body, mimetype="application/octet-stream")
