"""Vectors as blobs (schema 2): activations and probe inputs round-trip, a schema 1 db keeps its lists."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz import schema as S
from deepviz.store import vectors

from .test_store import write_run, write_step


def _probes(writer: StatsWriter, inputs: np.ndarray, run_id: str = "r1") -> None:
    n = len(inputs)
    writer.write_probes(run_id, np.arange(n), np.zeros(n, int), ["c0", "c1", "c2"], [b"png"] * n, inputs)


def _input_field(root) -> pa.Field:
    return pq.read_schema(root / "probes" / "run_id=r1" / "probes.parquet").field("input")


def test_a_schema_1_db_keeps_its_list_columns_and_reads(tmp_path):
    # A db created by deepviz before schema 2: its version file says 1, and its writers keep writing lists,
    # so an older deepviz still reads it and its SQL views never mix FLOAT[] with BLOB.
    (tmp_path / S.VERSION_FILE).write_text(json.dumps({"schema_version": 1}))
    writer = StatsWriter(tmp_path)
    write_run(writer)
    inputs = np.random.default_rng(0).normal(size=(6, 1, 2, 2)).astype(np.float32)
    _probes(writer, inputs)
    given = write_step(writer)
    path = tmp_path / "activations" / "run_id=r1" / "step=0" / "fc.parquet"
    assert pq.read_schema(path).field("vector").type == pa.list_(pa.float16())
    assert _input_field(tmp_path).type == pa.list_(pa.float32())
    assert duckdb.sql(f"SELECT typeof(vector) FROM '{path}' LIMIT 1").fetchall()[0][0] == "FLOAT[]"
    db = StatsDB(tmp_path)
    assert db.run_info()["schema_version"] == 1
    np.testing.assert_array_equal(db.activations(0, "fc"), given["activations"]["fc"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(db.probe_inputs(), inputs)


def test_a_new_db_is_schema_2_with_blobs(tmp_path):
    writer = StatsWriter(tmp_path)
    assert json.loads((tmp_path / S.VERSION_FILE).read_text())["schema_version"] == S.SCHEMA_VERSION == 2
    write_run(writer)
    given = write_step(writer, n=5, d=7)
    field = pq.read_schema(tmp_path / "activations" / "run_id=r1" / "step=0" / "fc.parquet").field("vector")
    assert field.type == pa.binary(14) and field.metadata[b"deepviz.width"] == b"7"
    db = StatsDB(tmp_path)
    assert db.run_info()["schema_version"] == 2
    got = db.activations(0, "fc")
    assert got.shape == (5, 7) and got.dtype == np.float32
    np.testing.assert_array_equal(got, given["activations"]["fc"].astype(np.float16).astype(np.float32))


def test_activations_in_any_row_order_come_back_in_probe_order(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    order = [104, 100, 103, 101, 102]
    given = write_step(writer, n=5, order=order, activation_dtype="float32")
    sort = np.argsort(order)
    np.testing.assert_array_equal(StatsDB(tmp_path).activations(0, "fc"), given["activations"]["fc"][sort])


def _images(n=12, shape=(3, 4, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype(np.uint8)


@pytest.mark.parametrize(
    ("make", "dtype", "divisor"),
    [
        (lambda u: u.astype(np.float32) / np.float32(255), "|u1", b"255.0"),  # as ToTensor makes them
        (lambda u: u.astype(np.float32), "|u1", b"1.0"),  # raw 0..255
        (lambda u: (u // 16).astype(np.float32) / 16, "<f2", None),  # k / 16: float16 holds it exactly
        (lambda u: (u.astype(np.float32) / 255 - 0.45) / 0.25, "<f4", None),  # normalised: nothing smaller is exact
        (lambda u: np.where(u > 250, np.nan, u / 16).astype(np.float32), "<f2", None),  # NaN stays NaN
    ],
    ids=["unit", "raw", "sixteenths", "normalised", "nan"],
)
def test_probe_inputs_are_stored_small_and_read_back_exactly(tmp_path, make, dtype, divisor):
    inputs = make(_images())
    writer = StatsWriter(tmp_path)
    writer.write_run({"run_id": "r1", "name": "r1", "class_names": ["a"], "input_shape": [3, 4, 4], "layers": []})
    _probes(writer, inputs)
    field = _input_field(tmp_path)
    assert field.metadata[b"deepviz.dtype"] == dtype.encode() and field.metadata.get(b"deepviz.divisor") == divisor
    assert field.type.byte_width == 48 * int(dtype[-1])
    got = StatsDB(tmp_path).probe_inputs()
    assert got.dtype == np.float32 and got.shape == inputs.shape
    np.testing.assert_array_equal(got, inputs)


def test_a_value_off_the_grid_in_a_later_chunk_keeps_the_inputs_exact(monkeypatch):
    monkeypatch.setattr(vectors, "CHUNK_BYTES", 4 * 48 * 4)
    x = _images(n=10).astype(np.float32) / np.float32(255)
    field, _ = vectors.input_column("input", x)
    assert field.metadata[b"deepviz.dtype"] == b"|u1"
    x[9, 0, 0, 0] = np.float32(0.3)  # not k/255, in the third chunk only
    field, column = vectors.input_column("input", x)
    assert field.metadata[b"deepviz.dtype"] == b"<f4"
    np.testing.assert_array_equal(vectors.inputs_to_numpy(pa.table({"input": column}, schema=pa.schema([field])),
                                                          "input", "test").reshape(x.shape), x)


def test_decoding_is_a_view_of_arrows_buffer():
    field, column = vectors.blob_column("vector", np.arange(12, dtype=np.float32).reshape(3, 4), "<f2")
    values = vectors.blob_to_numpy(column, field, "test")
    assert values.dtype == np.dtype("<f2") and values.shape == (3, 4)
    assert not values.flags.owndata and values.base is not None  # no copy, no Python object per row
    np.testing.assert_array_equal(values[1:], vectors.blob_to_numpy(column.slice(1), field, "test"))


def test_vectors_written_in_several_row_groups_read_back_whole(tmp_path, monkeypatch):
    from deepviz.store import codec

    monkeypatch.setattr(codec, "ROW_GROUP_BYTES", 200)  # a few rows per group
    writer = StatsWriter(tmp_path)
    write_run(writer)
    inputs = np.arange(40 * 4, dtype=np.float32).reshape(40, 1, 2, 2)
    _probes(writer, inputs)
    given = write_step(writer, n=40, d=4)
    path = tmp_path / "activations" / "run_id=r1" / "step=0" / "fc.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    assert pq.ParquetFile(tmp_path / "probes" / "run_id=r1" / "probes.parquet").metadata.num_row_groups > 1
    db = StatsDB(tmp_path)
    np.testing.assert_array_equal(db.activations(0, "fc"), given["activations"]["fc"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(db.probe_inputs(), inputs)


def test_thumbnails_are_stored_byte_for_byte(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    pngs = [bytes([i]) * (i * 7) for i in range(9)]  # sizes 0..56, one empty
    writer.write_probes("r1", np.arange(9), np.zeros(9, int), ["c0", "c1", "c2"], pngs, np.zeros((9, 1, 2, 2), np.float32))
    assert StatsDB(tmp_path).thumbnails() == dict(enumerate(pngs))
