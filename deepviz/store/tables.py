"""The Arrow tables of one snapshot, row by row as ``schema.py`` defines them."""

from __future__ import annotations

from datetime import datetime, timezone
import itertools
from typing import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa

from .. import schema as S
from .codec import arrow_schema, vector_column
from .vectors import blob_column, input_column, input_encoding

ACTIVATION_DTYPES = {"float16": np.float16, "float32": np.float32}
#: The schema version that stores vectors as blobs (``vectors.py``); a db of an older one keeps its list columns.
BLOB_VERSION = 2


def _keys(run_id: str, step: int, n: int) -> dict[str, pa.Array]:
    return {"run_id": pa.array([run_id] * n, pa.string()), "step": pa.array(np.full(n, step, dtype=np.int64))}


def predictions(run_id: str, step: int, probe_ids, labels, probs, loss) -> pa.Table:
    n = len(probe_ids)
    probs = np.asarray(probs, dtype=np.float32)
    pred = probs.argmax(axis=1).astype(np.int32) if probs.size else np.zeros(n, np.int32)
    labels = np.asarray(labels, dtype=np.int32)
    columns = {
        **_keys(run_id, step, n),
        "probe_id": pa.array(np.asarray(probe_ids, dtype=np.int64)),
        "label": pa.array(labels),
        "pred": pa.array(pred),
        "probs": vector_column(probs, np.float32),
        "loss": pa.array(np.asarray(loss, dtype=np.float32)),
        "correct": pa.array(pred == labels),
        "confidence": pa.array(probs.max(axis=1) if probs.size else np.zeros(n, np.float32)),
    }
    return pa.table(columns, schema=arrow_schema(S.PREDICTIONS))


def _with_field(table: S.Table, field: pa.Field) -> pa.Schema:
    schema = arrow_schema(table)
    return schema.set(schema.get_field_index(field.name), field)


def activations(run_id: str, step: int, layer: str, probe_ids, values, activation_dtype: str,
                version: int = S.SCHEMA_VERSION) -> pa.Table:
    """One layer's rows; ``version``: the db's schema version (1 stores ``list<float16>``)."""
    n = len(probe_ids)
    dtype = np.dtype(ACTIVATION_DTYPES[activation_dtype])
    if version >= BLOB_VERSION:
        field, vector = blob_column("vector", values, dtype.newbyteorder("<").str)
    else:
        vector = vector_column(np.asarray(values), dtype)
        field = pa.field("vector", vector.type)
    columns = {
        **_keys(run_id, step, n),
        "layer": pa.array([layer] * n, pa.string()),
        "probe_id": pa.array(np.asarray(probe_ids, dtype=np.int64)),
        "vector": vector,
    }
    return pa.table(columns, schema=_with_field(S.ACTIVATIONS, field))


def weights(run_id: str, step: int, tensors: Mapping[str, np.ndarray]) -> pa.Table:
    names = list(tensors)
    columns = {
        **_keys(run_id, step, len(names)),
        "layer": pa.array(names, pa.string()),
        "shape": pa.array([list(np.shape(tensors[k])) for k in names], pa.list_(pa.int32())),
        "values": pa.array([np.asarray(tensors[k], np.float32).ravel() for k in names], pa.list_(pa.float32())),
    }
    return pa.table(columns, schema=arrow_schema(S.WEIGHTS))


def metrics(run_id: str, step: int, values: Mapping[str, float]) -> pa.Table:
    names = sorted(values)
    columns = {
        **_keys(run_id, step, len(names)),
        "name": pa.array(names, pa.string()),
        "value": pa.array([float(values[k]) for k in names], pa.float64()),
    }
    return pa.table(columns, schema=arrow_schema(S.METRICS))


def step_row(
    run_id: str, step: int, *, epoch: int, trigger: str, correct: np.ndarray, loss, layers: Iterable[str],
    nonfinite_layers: Iterable[str], has_state: bool,
) -> pa.Table:
    """The commit marker: one ``steps`` row summing up the snapshot."""
    n = len(correct)
    row = {
        "run_id": run_id,
        "step": step,
        "epoch": int(epoch),
        "wall_time": datetime.now(timezone.utc),
        "trigger": trigger,
        "probe_acc": float(np.mean(correct)) if n else float("nan"),
        "probe_loss": float(np.mean(loss)) if n else float("nan"),
        "n_probe": n,
        "layers": list(layers),
        "nonfinite_layers": list(nonfinite_layers),
        "has_state": has_state,
    }
    return pa.Table.from_pylist([row], schema=arrow_schema(S.STEPS))


def checkpoint(run_id: str, step: int, path: str) -> pa.Table:
    return pa.Table.from_pylist([{"run_id": run_id, "step": int(step), "path": str(path)}], schema=arrow_schema(S.CHECKPOINTS))


def run(row: dict) -> pa.Table:
    return pa.Table.from_pylist([row], schema=arrow_schema(S.RUNS))


def _binary(cells: list[bytes]) -> pa.Array:
    """A binary column built at its exact size (Arrow's builder grows by doubling: up to twice the PNGs' bytes)."""
    offsets = np.zeros(len(cells) + 1, np.int64)
    np.cumsum([len(c) for c in cells], out=offsets[1:])
    if offsets[-1] >= 2**31:  # past int32 offsets: Arrow's builder splits it into chunks
        return pa.array(cells, pa.binary())
    buffers = [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(cells))]
    return pa.Array.from_buffers(pa.binary(), len(cells), buffers)


def probes(run_id: str, probe_ids, labels, class_names, thumbnails: Iterable[bytes], inputs, rows: int,
           version: int = S.SCHEMA_VERSION) -> Iterator[pa.Table]:
    """The probe rows, ``rows`` at a time (one row group each), all of one schema: ``thumbnails`` is read as the
    tables are made, and the inputs are stored as ``vectors.input_encoding`` chooses for all of them
    (``list<float32>`` in a schema 1 db). Nothing the size of the whole probe is made."""
    labels = np.asarray(labels, dtype=np.int32)
    probe_ids = np.asarray(probe_ids, dtype=np.int64)
    names = pa.array(list(class_names), pa.string())
    encoding = input_encoding(inputs) if version >= BLOB_VERSION else None
    pngs = iter(thumbnails)
    for start in range(0, max(len(labels), 1), rows):
        part = slice(start, start + rows)
        if encoding is not None:
            field, stored = input_column("input", inputs[part], encoding)
        else:
            stored = vector_column(np.asarray(inputs[part]), np.float32)
            field = pa.field("input", stored.type)
        n = len(labels[part])
        cells = list(itertools.islice(pngs, n))
        if len(cells) != n:
            raise ValueError(f"{len(cells) + start} thumbnails for {len(labels)} probe images: one each is needed.")
        yield pa.table({
            "run_id": pa.array([run_id] * n, pa.string()),
            "probe_id": pa.array(probe_ids[part]),
            "label": pa.array(labels[part]),
            "class_name": names.take(pa.array(labels[part])),
            "thumbnail": _binary(cells),
            "input": stored,
        }, schema=_with_field(S.PROBES, field))
    if next(pngs, None) is not None:
        raise ValueError(f"More thumbnails than the {len(labels)} probe images: one each is needed.")
