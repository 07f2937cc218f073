"""One probe thumbnail is read with the row group that holds it, never with every other one."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz.errors import CorruptDataError, NotFoundError
from deepviz.store import thumbs
from tests.test_store import write_run

N = 3 * thumbs.PROBE_ROW_GROUP + 5
PNG_BYTES = 2048


def png_of(pid: int) -> bytes:
    # Distinct, incompressible bytes per image, so a wrong row or a whole-column read shows.
    return np.random.default_rng(pid).integers(0, 256, PNG_BYTES, dtype=np.uint8).tobytes()


@pytest.fixture()
def probes_db(tmp_path):
    root = tmp_path / "db"
    ids = np.arange(1000, 1000 + N)
    with StatsWriter(root) as writer:
        write_run(writer)
        writer.write_probes("r1", ids, np.zeros(N, int), ["c0", "c1", "c2"], [png_of(int(i)) for i in ids], np.zeros((N, 4), np.float32))
    return root


def probes_file(root):
    return next(root.glob("probes/run_id=r1/probes.parquet"))


def test_one_thumbnail_holds_one_row_group_not_the_column(probes_db):
    assert pq.ParquetFile(probes_file(probes_db)).metadata.num_row_groups == 4
    db = StatsDB(probes_db)
    assert db.thumbnail(1000 + 2 * thumbs.PROBE_ROW_GROUP + 7) == png_of(1000 + 2 * thumbs.PROBE_ROW_GROUP + 7)
    held = db.cache.nbytes
    assert held < 1.2 * thumbs.PROBE_ROW_GROUP * PNG_BYTES < N * PNG_BYTES / 2, held
    got = db.thumbnails_of([1000, 1000 + N - 1, 5])  # the first, the last and one the run lacks
    assert got == {1000: png_of(1000), 1000 + N - 1: png_of(1000 + N - 1)}


def test_a_db_written_as_one_row_group_is_streamed_not_held(probes_db, monkeypatch):
    path = probes_file(probes_db)
    pq.write_table(pq.read_table(path), path, row_group_size=N)  # a db written before row groups were bounded
    monkeypatch.setattr(thumbs, "THUMB_GROUP_MAX_BYTES", N * PNG_BYTES // 4)
    db = StatsDB(probes_db)
    assert db.thumbnails_of([1003, 1000 + N - 2]) == {1003: png_of(1003), 1000 + N - 2: png_of(1000 + N - 2)}
    assert db.cache.nbytes < 10_000  # the row-group ranges only: no thumbnails kept


def test_unknown_and_unreadable_thumbnails_say_so(probes_db):
    db = StatsDB(probes_db)
    with pytest.raises(NotFoundError, match=rf"Unknown probe image 7; the run has {N} probe images"):
        db.thumbnail(7)
    with pytest.raises(NotFoundError, match=r"Unknown probe image 'x': a probe image id is an integer"):
        db.thumbnail("x")
    path = probes_file(probes_db)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptDataError, match=r"Cannot read the thumbnails in .*probes\.parquet.*truncated or corrupt"):
        StatsDB(probes_db).thumbnail(1000)
