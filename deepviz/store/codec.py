"""Arrow and Parquet: the schema's type names as Arrow types, vector columns, reading and atomic writing."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import CorruptDataError
from .remote import ObjPath

_SCALARS = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "binary": pa.binary(),
    # one row's values as raw bytes (``vectors.py``); the width is per file, in the field's type and metadata
    "fixed_size_binary": pa.binary(),
    "timestamp[ms, UTC]": pa.timestamp("ms", tz="UTC"),
}
_DUCK = {
    "string": "VARCHAR",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float16": "FLOAT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "binary": "BLOB",
    "fixed_size_binary": "BLOB",
    "timestamp[ms, UTC]": "TIMESTAMP WITH TIME ZONE",
}
_LIST = re.compile(r"^list<(.+)>$")


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type of a schema type name (``list<float32>`` -> ``pa.list_(pa.float32())``)."""
    m = _LIST.match(name)
    return pa.list_(arrow_type(m.group(1))) if m else _SCALARS[name]


def duck_type(name: str) -> str:
    """The DuckDB type of a schema type name (``list<float16>`` -> ``FLOAT[]``)."""
    m = _LIST.match(name)
    return duck_type(m.group(1)) + "[]" if m else _DUCK[name]


def arrow_schema(table: S.Table) -> pa.Schema:
    return pa.schema([pa.field(name, arrow_type(dtype)) for name, dtype, _ in table.columns])


def vector_column(arr: np.ndarray, dtype) -> pa.Array:
    """(N, ...) numpy -> a list column of flattened rows, converted in numpy first (faster than in arrow)."""
    arr = np.asarray(arr)
    arr = np.ascontiguousarray(arr.reshape(len(arr), int(np.prod(arr.shape[1:], dtype=np.int64))), dtype=dtype)
    n, d = arr.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d)
    return pa.ListArray.from_arrays(offsets, pa.array(arr.reshape(-1)))


def list_to_numpy(column: pa.ChunkedArray | pa.Array, dtype=np.float32) -> np.ndarray:
    """A list column of equal-length rows -> (N, D) numpy, without a Python loop."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    if n == 0:
        return np.zeros((0, 0), dtype=dtype)
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    width = int(offsets[1] - offsets[0])
    if not np.all(np.diff(offsets) == width):
        raise CorruptDataError("rows of a vector column have different lengths")
    return values.reshape(n, width).astype(dtype, copy=False)


def _where(path) -> tuple:
    """What pyarrow opens for ``path``: the local path, or an object's ``bucket/key`` and its filesystem."""
    return (path.path, path.remote.fs) if isinstance(path, ObjPath) else (path, None)


#: About this many bytes of rows per row group: the writer holds one row group's pages in memory at a time (the
#: probes of 100,000 images are 0.5 GB), and a reader gets the table in chunks of this size.
ROW_GROUP_BYTES = 64 * 2**20


def _row_group_rows(table: pa.Table) -> int:
    return max(1, ROW_GROUP_BYTES * table.num_rows // max(1, table.nbytes)) if table.num_rows else 1


def _options(schema: pa.Schema, vector_columns: Iterable[str]) -> dict:
    vectors = set(vector_columns)
    # Dictionary encoding of float vectors halves write speed for no gain:
    # use it only for the small repeated string columns.
    return {
        "compression": "zstd",
        "use_dictionary": [c for c in schema.names if c not in vectors and pa.types.is_string(schema.field(c).type)],
        "write_statistics": [c for c in schema.names if c not in vectors],
    }


def write_parquet(table: pa.Table | Iterable[pa.Table], path: Path | ObjPath, vector_columns: Iterable[str] = (),
                  row_group_size: int | None = None) -> None:
    """One table, or a stream of tables of one schema each written as its own row group (never all held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    where, filesystem = _where(path)
    if isinstance(table, pa.Table):
        pq.write_table(table, where, filesystem=filesystem, **_options(table.schema, vector_columns),
                       row_group_size=min(row_group_size or table.num_rows or 1, _row_group_rows(table)))  # at most so many rows, and bytes
    else:
        writer = None  # each table a row group (or more: at most ROW_GROUP_BYTES each)
        try:
            for part in table:
                if writer is None:
                    writer = pq.ParquetWriter(where, part.schema, filesystem=filesystem, **_options(part.schema, vector_columns))
                writer.write_table(part, row_group_size=min(max(1, part.num_rows), _row_group_rows(part)))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"No rows, not even a schema, to write to {path}.")
    if filesystem is not None:
        path.remote.changed()


#: Temporary files of ``publish`` end with this; ``layout.remove_stale_temps`` finds them by it.
TMP_SUFFIX = ".tmp"


def publish(table: pa.Table | Iterable[pa.Table], final: Path, tmp_prefix: str, vector_columns: Iterable[str] = (), row_group_size: int | None = None) -> None:
    """Write ``table`` to ``final`` atomically: a hidden temporary name, then a rename.

    A failed write (a full disk) removes its temporary file, so nothing
    partial stays behind; a folder it had to create stays only if something
    else is in it. On object storage an object appears whole or not at all
    (and a rename would be a copy): one table is written in place; a stream
    of them, whose upload a failure can cut short, under a temporary key
    copied to ``final`` once whole.
    """
    if isinstance(final, ObjPath) and isinstance(table, pa.Table):
        write_parquet(table, final, vector_columns, row_group_size)
        return
    tmp = final.with_name(f".{tmp_prefix}-{uuid.uuid4().hex}{TMP_SUFFIX}")
    created = not isinstance(final, ObjPath) and not final.parent.exists()
    try:
        write_parquet(table, tmp, vector_columns, row_group_size)
        tmp.replace(final) if isinstance(tmp, ObjPath) else os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                final.parent.rmdir()
        raise


#: Objects up to this size are read whole, in one request: one replaced while it is read (the run row at the
#: run's end, a derived table) then reads as one version or fails and is read again. Larger ones (a step's
#: activations, the probes) are never replaced, and pyarrow reads only the columns asked for.
WHOLE_READ_MAX_BYTES = 16 * 2**20
OBJECT_READ_TRIES = 3


def _read_object(path: ObjPath, columns) -> pa.Table:
    if path.stat().st_size > WHOLE_READ_MAX_BYTES:
        return pq.read_table(path.path, columns=columns, filesystem=path.remote.fs)
    for _ in range(OBJECT_READ_TRIES - 1):
        try:
            return pq.read_table(pa.BufferReader(path.read_bytes()), columns=columns)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError):
            continue  # replaced between the size lookup and the read: read it again
    return pq.read_table(pa.BufferReader(path.read_bytes()), columns=columns)


def _read_file(path: Path, columns) -> pa.Table:
    # One open file for the footer and the pages: given a path, pyarrow opens it
    # once for each, and a file replaced in between (the run row rewritten by
    # its writer) reads one version's footer over the other's pages.
    with open(path, "rb") as handle:
        return pq.read_table(handle, columns=columns)


def read(path: Path | ObjPath, columns=None) -> pa.Table:
    try:
        return _read_object(path, columns) if isinstance(path, ObjPath) else _read_file(path, columns)
    except FileNotFoundError as exc:
        # Callers check what may legitimately be absent before reading: a file
        # that vanishes here is a lost part of the db, not an unknown name.
        raise CorruptDataError(f"Missing file {path}: it was deleted or never written. Other steps stay readable.") from exc
    except (pa.ArrowException, OSError) as exc:
        raise CorruptDataError(f"Cannot read {path}: {_reason(exc, path)} The file is truncated or corrupt; other steps stay readable.") from exc


def read_row_groups(path: Path | ObjPath, columns=None) -> Iterator[tuple[int, pa.Table]]:
    """``(rows of the file, one row group's table)`` for each row group in turn: a large file read without
    holding its columns whole. Errors as ``read``'s."""
    try:
        with contextlib.ExitStack() as stack:
            if isinstance(path, ObjPath):
                pf = pq.ParquetFile(path.path, filesystem=path.remote.fs)
            else:
                pf = pq.ParquetFile(stack.enter_context(open(path, "rb")))  # one handle, as _read_file
            for i in range(pf.metadata.num_row_groups):
                yield pf.metadata.num_rows, pf.read_row_group(i, columns=columns)
    except FileNotFoundError as exc:
        raise CorruptDataError(f"Missing file {path}: it was deleted or never written. Other steps stay readable.") from exc
    except (pa.ArrowException, OSError) as exc:
        raise CorruptDataError(f"Cannot read {path}: {_reason(exc, path)} The file is truncated or corrupt; other steps stay readable.") from exc


def _reason(exc: BaseException, path: Path) -> str:
    """Arrow's message without the path it repeats (the caller's message names the file once)."""
    text = re.sub(r"^Could not open Parquet input source '[^']*':\s*", "", str(exc).strip())
    text = text.replace(f"'{path}'", "the file").replace(str(path), "the file")
    return text if text.endswith(".") else text + "."


def parquet_ok(path: Path) -> bool:
    """A cheap validity check: the footer parses (a truncated or garbage file fails it)."""
    where, filesystem = _where(path)
    try:
        pq.read_metadata(where, filesystem=filesystem)
        return True
    except (pa.ArrowException, OSError):
        return False
