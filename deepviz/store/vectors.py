"""Vector columns: one ``fixed_size_binary`` cell of little-endian numbers per row, read back with one ``frombuffer``.

A list column (``list<float16>``, schema version 1) costs an offsets buffer and
Arrow's list machinery on every write and read; a row stored as one blob of its
raw bytes wrote 6.5x and read 7.4x faster at the same size (issue 13). What a
blob holds is in its field's metadata, so one file is enough to decode it:

- ``deepviz.dtype``: the numpy dtype of the values, little-endian (``<f2``, ``<f4``, ``|u1``);
- ``deepviz.width``: the number of values per row;
- ``deepviz.divisor`` (``|u1`` probe inputs only): the stored value is ``code / divisor``.

A db is data from elsewhere: every cell is checked against that metadata and
anything else is a ``CorruptDataError`` naming the column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import CorruptDataError
from .codec import list_to_numpy
from .inputs import decode

DTYPE, WIDTH, DIVISOR = b"deepviz.dtype", b"deepviz.width", b"deepviz.divisor"
#: The dtypes a blob may hold, by the numpy name stored in its metadata.
BLOB_DTYPES = {"<f2": np.dtype("<f2"), "<f4": np.dtype("<f4"), "|u1": np.dtype("|u1")}
#: The divisors of uint8 probe inputs: images as ``ToTensor`` gives them (``u / 255``) or as raw ``u``.
INPUT_DIVISORS = (255.0, 1.0)
#: Bytes of float32 values converted at a time when choosing the probe inputs' encoding: no temporary the size
#: of the whole probe, and the few passes over each chunk stay in the CPU's cache (3x faster than 8,192 rows).
CHUNK_BYTES = 1 << 20


def _chunk_rows(x: np.ndarray) -> int:
    return max(1, CHUNK_BYTES // max(1, x[0].size * 4)) if len(x) else 1


def blob_column(name: str, values: np.ndarray, dtype: str, extra: dict[bytes, bytes] | None = None) -> tuple[pa.Field, pa.Array]:
    """(N, ...) numpy -> the field and the ``fixed_size_binary`` array of its rows as ``dtype`` (``<f2``...)."""
    arr = np.asarray(values)
    arr = np.ascontiguousarray(arr.reshape(len(arr), int(np.prod(arr.shape[1:], dtype=np.int64))), dtype=BLOB_DTYPES[dtype])
    n, width = arr.shape
    metadata = {DTYPE: dtype.encode(), WIDTH: str(width).encode(), **(extra or {})}
    field = pa.field(name, pa.binary(width * arr.itemsize), metadata=metadata)
    return field, pa.FixedSizeBinaryArray.from_buffers(field.type, n, [None, pa.py_buffer(arr)])


def _meta(field: pa.Field, key: bytes, what: str) -> str:
    value = (field.metadata or {}).get(key)
    if value is None:
        raise CorruptDataError(f"Column {field.name!r} of {what} has no {key.decode()} in its metadata: it was not "
                               "written by deepviz, or the file was altered. Other steps stay readable.")
    return value.decode(errors="replace")


def _blob_format(field: pa.Field, what: str, allowed) -> tuple[np.dtype, int]:
    """The dtype and width a blob field's metadata names, checked against its type."""
    dtype = _meta(field, DTYPE, what)
    if dtype not in allowed:
        raise CorruptDataError(f"Column {field.name!r} of {what} says it holds {dtype[:20]!r}; allowed: "
                               f"{', '.join(allowed)}. The file is corrupt or not deepviz's; other steps stay readable.")
    itemsize = BLOB_DTYPES[dtype].itemsize
    try:
        width = int(_meta(field, WIDTH, what))
    except ValueError:
        width = -1
    if width < 0 or field.type.byte_width != width * itemsize:
        raise CorruptDataError(
            f"Column {field.name!r} of {what} has rows of {field.type.byte_width} bytes, but its metadata says "
            f"{_meta(field, WIDTH, what)[:20]} values of {dtype} ({itemsize} bytes each). The file is corrupt; "
            "other steps stay readable."
        )
    return BLOB_DTYPES[dtype], width


def _view(chunk: pa.FixedSizeBinaryArray, dtype: np.dtype, width: int) -> np.ndarray:
    """One Arrow chunk of blobs as an (n, width) numpy view of its buffer: no copy, no Python object per row."""
    n = len(chunk)
    if not (n and width):
        return np.zeros((n, width), dtype)
    return np.frombuffer(chunk.buffers()[1], dtype=dtype, count=n * width,
                         offset=chunk.offset * width * dtype.itemsize).reshape(n, width)


def blob_to_numpy(column: pa.ChunkedArray | pa.Array, field: pa.Field, what: str, allowed=("<f2", "<f4"),
                  out_dtype=None) -> np.ndarray:
    """A blob column -> (N, width) numpy: a view of Arrow's buffer for one chunk and no ``out_dtype``; else each
    chunk's view converted straight into one new array of ``out_dtype`` (one pass, no combined Arrow copy)."""
    dtype, width = _blob_format(field, what, allowed)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    nulls = sum(c.null_count for c in chunks)
    if nulls:
        raise CorruptDataError(f"Column {field.name!r} of {what} has {nulls} empty (null) rows; every "
                               "row must hold a vector. The file is corrupt; other steps stay readable.")
    if out_dtype is None and len(chunks) == 1:
        return _view(chunks[0], dtype, width)
    out = np.empty((sum(len(c) for c in chunks), width), out_dtype or dtype)
    start = 0
    for chunk in chunks:
        out[start:start + len(chunk)] = _view(chunk, dtype, width)
        start += len(chunk)
    return out


def vectors_to_numpy(table: pa.Table, name: str, what: str) -> np.ndarray:
    """The (N, D) float32 rows of a vector column: a blob (schema 2) or a list (schema 1)."""
    field = table.schema.field(name)
    if pa.types.is_fixed_size_binary(field.type):
        return blob_to_numpy(table.column(name), field, what, out_dtype=np.float32)
    if pa.types.is_list(field.type) and pa.types.is_floating(field.type.value_type):
        return list_to_numpy(table.column(name))
    raise CorruptDataError(f"Column {name!r} of {what} is {field.type}; expected fixed_size_binary (or, before "
                           "schema version 2, a list of floats). The file is corrupt; other steps stay readable.")


# --------------------------------------------------------------------------- probe inputs


def _uint8_exact(x: np.ndarray, divisor: float) -> bool:
    """Is every value of ``x`` some ``code / divisor``, code in 0..255? Checked chunk by chunk."""
    rows = _chunk_rows(x)
    buf = np.empty((min(rows, len(x)),) + x.shape[1:], np.float32)
    codes = np.empty(buf.shape, np.uint8)
    for start in range(0, len(x), rows):
        chunk = x[start:start + rows]
        t, c = buf[: len(chunk)], codes[: len(chunk)]
        np.multiply(chunk, np.float32(divisor), out=t)
        np.rint(t, out=t)
        if not (t.min() >= 0 and t.max() <= 255):  # NaN fails too
            return False
        np.copyto(c, t, casting="unsafe")
        np.divide(c, np.float32(divisor), out=t, dtype=np.float32)
        if not np.array_equal(t, chunk):
            return False
    return True


def _float16_exact(x: np.ndarray) -> bool:
    rows = _chunk_rows(x)
    for start in range(0, len(x), rows):
        chunk = x[start:start + rows]
        if not np.array_equal(chunk.astype(np.float16).astype(np.float32), chunk, equal_nan=True):
            return False
    return True


def input_encoding(inputs: np.ndarray) -> tuple[str, float | None]:
    """How the probe inputs are stored, losslessly and as small as they allow: ``("|u1", divisor)`` when every
    value is ``code / 255`` (images as ``ToTensor`` makes them) or ``code`` (raw 0..255); else ``("<f2", None)``
    when float16 holds every value exactly; else ``("<f4", None)``. One pass; nothing the size of the probe."""
    x = _flat(inputs)
    for divisor in INPUT_DIVISORS:
        if _uint8_exact(x, divisor):
            return "|u1", divisor
    return ("<f2" if _float16_exact(x) else "<f4"), None


def input_column(name: str, inputs: np.ndarray, encoding: tuple[str, float | None] | None = None) -> tuple[pa.Field, pa.Array]:
    """The probe inputs (or some of their rows) as a blob column of ``encoding`` (``input_encoding``'s, found
    here when not given). What the model saw is what ``StatsDB.probe_inputs`` returns."""
    x = _flat(inputs)
    dtype, divisor = encoding or input_encoding(x)
    if divisor is None:
        return blob_column(name, x, dtype)
    codes = np.rint(np.multiply(x, np.float32(divisor), dtype=np.float32)).astype(np.uint8)
    return blob_column(name, codes, dtype, {DIVISOR: repr(divisor).encode()})


def _flat(inputs) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(inputs, dtype=np.float32).reshape(len(inputs), -1))


def inputs_to_numpy(table: pa.Table, name: str, what: str) -> np.ndarray:
    """The probe inputs as (N, D) float32: a blob of any ``input_column`` encoding, or a list (schema 1)."""
    return decode(*input_codes(table, name, what))


def input_codes(table: pa.Table, name: str, what: str) -> tuple[np.ndarray, float | None]:
    """The probe inputs as stored, (N, D), and their divisor: uint8 codes with the divisor that makes them the
    model's values, or float16/float32 values with None (a list column of schema 1 reads as float32)."""
    field = table.schema.field(name)
    if not pa.types.is_fixed_size_binary(field.type):
        return vectors_to_numpy(table, name, what), None
    if _meta(field, DTYPE, what) != "|u1":
        return blob_to_numpy(table.column(name), field, what, allowed=tuple(BLOB_DTYPES)), None
    values = blob_to_numpy(table.column(name), field, what, allowed=tuple(BLOB_DTYPES))
    divisor = _meta(field, DIVISOR, what)
    try:
        d = float(divisor)
    except ValueError:
        d = 0.0
    if d not in INPUT_DIVISORS:
        raise CorruptDataError(f"Column {name!r} of {what} has divisor {divisor[:20]!r}; allowed: "
                               f"{', '.join(map(repr, INPUT_DIVISORS))}. The file is corrupt or not deepviz's.")
    return values, d
