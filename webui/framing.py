"""The one binary framing of arrays sent to the browser, read there by ``api.js:decodeBinary``
into typed arrays, and the compact encodings of per-point columns (``?format=lean``).

Layout of a response:

- a little-endian ``uint32``: the length of the header;
- the header, UTF-8 JSON ``{"meta": {...}, "arrays": [spec, ...]}``, padded with spaces so
  that the arrays start at a multiple of 8 bytes;
- each array's raw little-endian bytes at ``offset`` (counted from the end of the header),
  padded to 8 bytes, so a ``Float32Array`` can view them in place.

A spec is ``{"name", "dtype", "shape", "offset"}``; ``dtype`` is a numpy name (``uint8``,
``int32``, ``float32``, ...). Two compact encodings add to it:

- ``"quant": {"lo": [...], "hi": [...], "steps": S}``: unsigned integers standing for floats,
  ``value = lo + raw * (hi - lo) / S``, one ``lo``/``hi`` per column of the last axis; a raw
  value above ``S`` (the type's maximum) stands for a value that was not finite (read as NaN).
  uint16 keeps 1/65,534 of the range: a confidence to 0.0015 %, a layout to 1/65,534 of its extent.
- ``"dtype": "bits"``: booleans packed 8 to a byte, least significant bit first; ``shape`` is
  the count of booleans (the bytes are ``ceil(n / 8)``), read as a ``Uint8Array`` of 0 and 1.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np
from flask import Response

from deepviz.errors import UntrustedDataError

#: JavaScript numbers hold integers exactly up to here; larger ids would be rounded.
JS_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class Encoded:
    """An array already in its wire form: ``raw`` bytes-to-be and what the spec adds."""

    raw: np.ndarray
    shape: tuple[int, ...]
    spec: dict


def _ranges(cols: np.ndarray, finite: np.ndarray, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """One range per column (a layout's x and y): the one given, or its finite values' (0 when none)."""
    width = cols.shape[1]
    if lo is not None:
        return np.full(width, lo, np.float32), np.full(width, hi, np.float32)
    if cols.size and finite.all():  # the common case: no copy per column
        return cols.min(axis=0).astype(np.float32), cols.max(axis=0).astype(np.float32)
    parts = [c[f] for c, f in zip(cols.T, finite.T)]
    return (np.array([c.min() if c.size else 0.0 for c in parts], np.float32),
            np.array([c.max() if c.size else 0.0 for c in parts], np.float32))


def quantised(values, dtype=np.uint16, lo: float | None = None, hi: float | None = None) -> Encoded:
    """Floats as unsigned integers over [lo, hi] (both given) or, per column of the last axis,
    the data's own range; values that are not finite become the type's maximum."""
    v = np.asarray(values, dtype=np.float32)
    cols = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v.reshape(-1, 1)
    finite = np.isfinite(cols)
    lo_, hi_ = _ranges(cols, finite, lo, hi)
    steps = int(np.iinfo(dtype).max) - 1
    span = np.where(hi_ > lo_, hi_ - lo_, 1.0).astype(np.float32)
    # In place on one copy, a column per row (numpy's inner loop then runs along the 100,000
    # points, not along 2 axes): shift, scale, round half up; clipped only to a range given
    # (the data's own range holds every finite value).
    x = np.array(cols.T, dtype=np.float32, order="C")
    bad = ~finite.T
    has_bad = bool(bad.any())
    if has_bad:
        x[bad] = np.broadcast_to(lo_[:, None], x.shape)[bad]
    if lo is not None:
        np.clip(x, lo_[:, None], hi_[:, None], out=x)
    x -= lo_[:, None]
    x *= (steps / span).astype(np.float32)[:, None]
    x += 0.5
    raw = x.astype(dtype)
    if has_bad:
        raw[bad] = steps + 1
    raw = np.ascontiguousarray(raw.T).reshape(v.shape)
    return Encoded(raw, v.shape, {"quant": {"lo": lo_.astype(float).tolist(), "hi": hi_.astype(float).tolist(), "steps": steps}})


def unit_interval(values) -> Encoded:
    """Values in [0, 1] (probabilities, confidences) as uint16."""
    return quantised(values, np.uint16, 0.0, 1.0)


def bits(values) -> Encoded:
    """Booleans packed 8 to a byte."""
    b = np.asarray(values).astype(bool).ravel()
    return Encoded(np.packbits(b, bitorder="little"), (len(b),), {"dtype": "bits"})


def classes(values, n_classes: int) -> np.ndarray:
    """Class indices in the smallest type that holds ``n_classes``."""
    dtype = np.uint8 if n_classes <= 2**8 else np.uint16 if n_classes <= 2**16 else np.int32
    return np.asarray(values).astype(dtype)


def ids(values) -> Encoded:
    """Integer ids as int32 when they fit, else float64 (exact in JavaScript up to 2**53)."""
    v = np.asarray(values, dtype=np.int64)
    if not v.size or (v.min() >= -(2**31) and v.max() < 2**31):
        return Encoded(v.astype(np.int32), v.shape, {})
    if np.abs(v).max() > JS_SAFE_INTEGER:
        raise UntrustedDataError(f"Ids up to {int(np.abs(v).max())} cannot be sent to the browser exactly; at most {JS_SAFE_INTEGER} can. "
                                 "Give the probe images ids below 2**53 (their index in the dataset).")
    return Encoded(v.astype(np.float64), v.shape, {})  # as they are: float64 is not narrowed here


def _wire(arr) -> tuple[bytes, dict]:
    if isinstance(arr, Encoded):
        raw = np.ascontiguousarray(arr.raw)
        spec = {"dtype": raw.dtype.name, **arr.spec, "shape": list(arr.shape)}
    else:
        raw = np.ascontiguousarray(arr)
        if raw.dtype == np.float64:
            raw = raw.astype(np.float32)
        if raw.dtype == np.int64:
            raw = raw.astype(np.int32)
        if raw.dtype == np.bool_:
            raw = raw.astype(np.uint8)
        spec = {"dtype": raw.dtype.name, "shape": list(raw.shape)}
    return raw.astype(raw.dtype.newbyteorder("<"), copy=False).tobytes(), spec


def binary(arrays: dict, meta: dict | None = None) -> Response:
    """Arrays (numpy, or ``Encoded`` by the functions above) as one response in the framing above."""
    specs, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        raw, spec = _wire(arr)
        specs.append({"name": name, **spec, "offset": offset})
        pad = (-len(raw)) % 8
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    header = json.dumps({"meta": meta or {}, "arrays": specs}).encode()
    header += b" " * ((-(len(header) + 4)) % 8)
    body = struct.pack("<I", len(header)) + header + b"".join(chunks)
    return Response(body, mimetype="application/octet-stream")
