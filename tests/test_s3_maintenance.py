"""``deepviz gc`` and ``deepviz sync`` (``deepviz/store/maintenance.py``) against moto's S3 server on loopback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from deepviz import StatsDB
from deepviz import schema as S
from deepviz.errors import ConfigurationError, RunLockedError
from deepviz.store import StatsWriter
from deepviz.store import remote as R
from deepviz.store.maintenance import gc, sync

from tests.s3_server import s3_db, s3_endpoint  # noqa: F401 (fixtures: s3_db needs s3_endpoint in scope)
from tests.test_s3 import whole_steps, write_tiny_run, write_tiny_snapshot


def test_sync_pushes_committed_steps_resumably_and_idempotently(populated_db, s3_db, monkeypatch):  # noqa: F811
    local = StatsDB(populated_db)
    run_id = local.resolve_run()
    # Interrupted after 7 objects: whatever it left is invisible or whole, and a second sync finishes the job.
    writes, real_write = [], R.ObjPath.write_bytes

    def interrupt(self, data):
        writes.append(self)
        if len(writes) == 7:
            raise OSError("connection reset")
        real_write(self, data)

    monkeypatch.setattr(R.ObjPath, "write_bytes", interrupt)
    with pytest.raises(OSError, match="connection reset"):
        sync(populated_db, s3_db)
    monkeypatch.undo()
    partial = whole_steps(s3_db) if StatsDB(s3_db).run_ids() else []
    assert set(partial) <= set(local.steps())
    report = sync(populated_db, s3_db)
    assert report.copied
    remote = StatsDB(s3_db)
    assert remote.steps(run_id) == local.steps(run_id) and whole_steps(s3_db) == local.steps(run_id)
    for step in local.steps(run_id):
        assert np.array_equal(remote.predictions(step)["probs"], local.predictions(step)["probs"])
    assert remote.metrics(run_id).sort_values(["step", "name"]).values.tolist() == \
        local.metrics(run_id).sort_values(["step", "name"]).values.tolist()
    again = sync(populated_db, s3_db)
    assert [k for k in again.copied if "/runs/" not in k] == []  # nothing but the run row, which may change


def test_gc_removes_orphans_only(s3_db):  # noqa: F811
    from deepviz.store.claims import ClaimedStep

    writer = StatsWriter(s3_db)
    write_tiny_run(writer, "r", [0, 5])
    # A writer that died inside step 10: its claim and one file, no marker.
    dead = ClaimedStep(writer.layout, "r", 10, lambda path: None)
    dead.acquire()
    dead.write(S.PREDICTIONS, "predictions.parquet", pa.table({"a": [1]}))
    young = gc(s3_db)  # default: only orphans older than an hour
    assert young.removed == [] and len(young.skipped) == 2
    dry = gc(s3_db, older_than_s=0, dry_run=True)
    assert len(dry.removed) == 2 and StatsDB(s3_db).layout.claim_file("r", 10).exists()
    report = gc(s3_db, older_than_s=0)
    layout = writer.layout
    assert sorted(report.removed) == sorted([str(layout.claim_file("r", 10)), str(layout.step_dir(S.PREDICTIONS, "r", 10))])
    root = R.open_root(s3_db, ttl_s=0)
    assert [p.key for p in root.rglob("*") if "step=10" in p.key] == []
    assert whole_steps(s3_db, 4) == [0, 5]
    write_tiny_snapshot(writer, "r", 10)  # the step can be written now
    assert whole_steps(s3_db, 4) == [0, 5, 10]


def test_gc_on_a_local_db_passes_over_a_run_being_written(tmp_path):
    writer = StatsWriter(tmp_path / "db")
    write_tiny_run(writer, "r", [0])
    orphan = writer.layout.step_dir(S.PREDICTIONS, "r", 5)
    orphan.mkdir(parents=True)
    (orphan / "predictions.parquet").write_bytes(b"partial")
    held = gc(tmp_path / "db", older_than_s=0)  # the writer holds the run's lock
    assert held.removed == [] and held.skipped == ["run r: being written by a live process"]
    writer.close()
    assert gc(tmp_path / "db", older_than_s=0).removed == [str(orphan)]
    assert not orphan.exists() and StatsDB(tmp_path / "db").steps("r") == [0]


def test_sync_stops_at_a_step_a_training_claimed(populated_db, s3_db):  # noqa: F811
    local = StatsDB(populated_db)
    run_id, first = local.resolve_run(), local.steps()[0]
    training = StatsWriter(s3_db).layout.claim_file(run_id, first)
    assert training.put_if_absent(b'{"pid": 7, "host": "gpu-node-3"}')
    with pytest.raises(RunLockedError, match=r"_claims/run_id=.*/step=0\.json is claimed by another writer \(gpu-node-3, "
                                             r"pid 7\): a training is writing this step"):
        sync(populated_db, s3_db)


def test_gc_refuses_a_negative_age(s3_db):  # noqa: F811
    write_tiny_run(StatsWriter(s3_db), "r", [])
    with pytest.raises(ConfigurationError, match=r"older_than_s must be 0 or more seconds; got -1"):
        gc(s3_db, older_than_s=-1)


def test_a_writer_whose_claim_was_collected_loses_to_the_one_that_committed(s3_db):  # noqa: F811
    from deepviz.store.claims import ClaimedStep

    writer = StatsWriter(s3_db)
    write_tiny_run(writer, "r", [0])
    slow = ClaimedStep(writer.layout, "r", 5, lambda path: None)
    slow.acquire()
    slow.write(S.STEPS, "step.parquet", pa.table({"a": [1]}))
    gc(s3_db, older_than_s=0)  # too short a bound: it took the slow writer's claim
    write_tiny_snapshot(StatsWriter(s3_db), "r", 5)
    with pytest.raises(RunLockedError, match=r"Step 5 of run 'r' was committed by another writer while this one wrote it"):
        slow.commit()
    slow.abort()  # not its claim or files any more: nothing is removed
    assert whole_steps(s3_db, 4) == [0, 5]
