"""The reader's guards and bounds: what is not a db, what is not a step, a corrupt derived file, bounded reads."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz.errors import ConfigurationError, CorruptDataError, NotFoundError
from deepviz.cache import Cache
from tests.test_store import write_run, write_step


@pytest.fixture()
def small_db(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    for step in (0, 45, 90):
        write_step(writer, step=step, seed=step)
    writer.close()
    return StatsDB(tmp_path)


def test_a_folder_that_is_not_a_stats_db_is_refused(tmp_path):
    with pytest.raises(NotFoundError, match=r"'/etc' is a folder but not a stats db \(it has no deepviz\.json and no runs/\)\. "
                                            r"Pass the folder given to StatsCallback or --db"):
        StatsDB("/etc")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotFoundError, match=r"is a file, not a stats db folder"):
        StatsDB(tmp_path / "notes.txt")
    with pytest.raises(NotFoundError, match=r"No stats db at '.*missing': it does not exist\. Train with StatsCallback"):
        StatsDB(tmp_path / "missing")


@pytest.mark.parametrize("step, match", [
    (45.9, r"Step must be an integer, got 45\.9 \(float\)\. A step is the trainer's global step"),
    (True, r"Step must be an integer, got True \(bool\)"),
    ("45.9", r"Step must be an integer, got '45\.9'\. A step is"),
    (None, r"Step must be an integer, got None \(NoneType\)"),
])
def test_a_step_that_is_not_a_whole_number_is_refused(small_db, step, match):
    with pytest.raises(ConfigurationError, match=match):
        small_db.get_stats(step)
    with pytest.raises(ConfigurationError, match=match):
        small_db.require_step("r1", step)


def test_whole_number_steps_of_any_type_are_taken(small_db):
    assert small_db.require_step("r1", np.int64(45)) == 45
    assert small_db.require_step("r1", 45.0) == 45 and small_db.get_stats(45.0).step == 45
    assert small_db.require_step("r1", "90") == 90
    with pytest.raises(NotFoundError, match=r"Unknown step 46 in run 'r1'\. Available steps: 0, 45, 90\."):
        small_db.require_step("r1", 46)


def test_an_unreadable_derived_file_is_corrupt_data_and_can_be_replaced(small_db):
    key = {"metric": "silhouette"}
    frame = pd.DataFrame({"step": [0], "layer": ["fc"], "value": [0.5]})
    small_db.put_derived("layer_quality", key, frame)
    path = small_db.root / "layer_quality" / "run_id=r1" / "metric=silhouette" / "part.parquet"
    assert small_db.get_derived("layer_quality", key).value.tolist() == [0.5]
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(CorruptDataError, match=rf"Cannot read {path}: .*truncated or corrupt"):
        StatsDB(small_db.root).get_derived("layer_quality", key)
    small_db.put_derived("layer_quality", key, frame.assign(value=[0.75]))  # the derived service recomputes
    assert small_db.get_derived("layer_quality", key).value.tolist() == [0.75]


def test_sql_with_max_rows_fetches_only_those_rows(small_db):
    start = time.perf_counter()
    frame = small_db.sql("SELECT * FROM range(1000000000)", max_rows=5)  # a billion rows: only 5 are made
    assert frame["range"].tolist() == [0, 1, 2, 3, 4] and time.perf_counter() - start < 5
    assert len(small_db.sql("SELECT step FROM steps", max_rows=2)) == 2
    assert small_db.sql("SELECT step FROM steps ORDER BY step").step.tolist() == [0, 45, 90]
    with pytest.raises(ConfigurationError, match=r"max_rows must be a whole number of rows, 0 or more; got -1"):
        small_db.sql("SELECT 1", max_rows=-1)


def test_the_cache_is_bounded_by_entries_and_bytes():
    cache = Cache(max_entries=3, max_bytes=10_000)
    for i in range(5):
        cache.get(("k", i), lambda i=i: i)
    assert len(cache) == 3 and cache.get(("k", 0), lambda: "rebuilt") == "rebuilt"
    cache.get("big", lambda: np.zeros(1000, np.float64))  # 8000 bytes: older entries make room
    cache.get("big2", lambda: np.zeros(500, np.float64))
    assert cache.nbytes <= 10_000 and cache.get("big2", lambda: None) is not None
    assert cache.latest("slot", 1, lambda: "v1") == "v1" and cache.latest("slot", 1, lambda: "again") == "v1"
    assert cache.latest("slot", 2, lambda: "v2") == "v2"


def test_a_db_keeps_one_bounded_cache(small_db):
    small_db.cache.max_entries = 4
    for step in small_db.steps():
        small_db.get_stats(step)
        small_db.activations(step, "fc")
    assert len(small_db.cache) <= 4
    np.testing.assert_array_equal(small_db.activations(0, "fc"), StatsDB(small_db.root).activations(0, "fc"))


def test_an_unknown_activation_dtype_is_refused_before_anything_is_written(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    with pytest.raises(ConfigurationError, match=r"activation_dtype must be one of float16, float32; got 'int8'"):
        write_step(writer, step=0, activation_dtype="int8")
    assert StatsDB(tmp_path).steps() == [] and not list((tmp_path / "_staging").glob("*"))
