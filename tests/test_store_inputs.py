"""The probe inputs as the db keeps them (``StatsDB.stored_inputs``): compact codes, decoded on demand to exactly
what ``probe_inputs`` returns, whatever the encoding (uint8 codes, float16, float32, a schema 1 list)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz import schema as S
from deepviz.store.inputs import StoredInputs

from .test_store import write_run
from .test_store_vectors import _probes

N = 7000  # more than one block of rows


def _inputs(kind: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    u = rng.integers(0, 256, (N, 1, 2, 2))
    return {"u8/255": u / 255, "u8": u, "f16": u / 8 - 3, "f32": rng.normal(size=u.shape)}[kind].astype(np.float32)


@pytest.mark.parametrize("kind, stored", [("u8/255", np.uint8), ("u8", np.uint8), ("f16", np.float16), ("f32", np.float32)])
def test_stored_inputs_decode_to_the_probe_inputs(tmp_path, kind, stored):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    given = _inputs(kind)
    given[[5, 900]] = given[[900, 5]]
    _probes(writer, given)
    db = StatsDB(tmp_path)
    inputs = db.stored_inputs("r1")
    assert isinstance(inputs, StoredInputs) and inputs.codes.dtype == stored
    assert inputs.shape == (N, 1, 2, 2) and len(inputs) == N
    np.testing.assert_array_equal(db.probe_inputs("r1"), given)
    np.testing.assert_array_equal(inputs.rows(900), given[900])
    np.testing.assert_array_equal(inputs.rows([3, 1]), given[[3, 1]])
    np.testing.assert_array_equal(np.concatenate(list(inputs.blocks(rows=1000))), given.reshape(N, -1))
    stats = inputs.channel_stats()
    np.testing.assert_allclose(stats["min"], given.min(axis=(0, 2, 3)))
    np.testing.assert_allclose(stats["max"], given.max(axis=(0, 2, 3)))
    np.testing.assert_allclose(stats["mean"], given.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], given.std(axis=(0, 2, 3)), rtol=1e-4)
    # what probe_inputs hands out is the caller's: writing to it changes nothing kept
    out = db.probe_inputs("r1")
    out[:] = -1
    np.testing.assert_array_equal(db.probe_inputs("r1"), given)


def test_a_schema_1_db_reads_its_list_inputs(tmp_path):
    (tmp_path / S.VERSION_FILE).write_text(json.dumps({"schema_version": 1}))
    writer = StatsWriter(tmp_path)
    write_run(writer)
    given = _inputs("u8/255")[:50]
    _probes(writer, given)
    inputs = StatsDB(tmp_path).stored_inputs("r1")
    assert inputs.codes.dtype == np.float32 and inputs.divisor is None
    np.testing.assert_array_equal(inputs.rows(slice(None)), given)


def test_stored_inputs_are_cached_by_their_compact_size(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    _probes(writer, _inputs("u8/255"))
    db = StatsDB(tmp_path)
    first = db.stored_inputs("r1")
    assert db.stored_inputs("r1") is first
    assert first.nbytes == N * 4  # one byte a value, a quarter of float32


def test_the_probes_are_written_as_their_thumbnails_stream_in_and_a_failure_leaves_no_file(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    given = _inputs("u8/255")
    folder = tmp_path / "probes" / "run_id=r1"

    def failing():
        for i in range(N):
            if i == 2500:
                raise OSError("the thumbnail encoder died")
            yield b"png%d" % i

    with pytest.raises(OSError, match="encoder died"):
        writer.write_probes("r1", np.arange(N), np.zeros(N, int), ["c0"], failing(), given)
    assert not folder.exists() or not any(folder.iterdir())  # no probes file, no temporary file
    with pytest.raises(ValueError, match=r"6999 thumbnails for 7000 probe images"):
        writer.write_probes("r1", np.arange(N), np.zeros(N, int), ["c0"], (b"png%d" % i for i in range(N - 1)), given)
    with pytest.raises(ValueError, match="More thumbnails than the 7000 probe images"):
        writer.write_probes("r1", np.arange(N), np.zeros(N, int), ["c0"], (b"png%d" % i for i in range(N + 1)), given)
    assert not folder.exists() or not any(folder.iterdir())

    writer.write_probes("r1", np.arange(N), np.zeros(N, int), ["c0"], (b"png%d" % i for i in range(N)), given)
    db = StatsDB(tmp_path)
    np.testing.assert_array_equal(db.probe_inputs("r1"), given)
    assert db.thumbnail(6543, "r1") == b"png6543"


@pytest.mark.parametrize("shape", [[], [3, -1, 4], [0, 4]])
def test_a_nonsense_input_shape_in_a_db_from_elsewhere_is_corrupt_data(tmp_path, shape):
    from deepviz.errors import CorruptDataError

    writer = StatsWriter(tmp_path)
    write_run(writer)
    _probes(writer, _inputs("u8/255")[:10])
    writer.update_run("r1", input_shape=shape)
    with pytest.raises(CorruptDataError, match="input_shape .* must be the positive sizes of one input"):
        StatsDB(tmp_path).stored_inputs("r1")
