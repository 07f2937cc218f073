"""The background writer: the loop waits only for a full queue, each step keeps its own weights, errors surface.

A real Recorder and StatsWriter on digits; the writer is held at its write points through the one fault seam.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from .faults import fail_on, watch_writes
from .test_callback import probe_pair
from deepviz import Recorder, StatsCallback, StatsDB
from deepviz.errors import ConfigurationError
from trainers.models import SmallNet


@pytest.mark.parametrize("size", [0, 65, True, "2", None])
def test_write_queue_is_bounded(tmp_path, digits_tensors, size):
    match = rf"write_queue must be an integer from 1 to 64 \(snapshots waiting .*\), got {size!r}\."
    with pytest.raises(ConfigurationError, match=match):
        Recorder(tmp_path / "db", SmallNet(), probe=probe_pair(digits_tensors), write_queue=size)
    with pytest.raises(ConfigurationError, match=match):
        StatsCallback(tmp_path / "db", probe=probe_pair(digits_tensors), write_queue=size)


def nudge(model) -> dict:
    """Change every weight (as an optimizer step does); returns a copy of the new state."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_loop_waits_only_for_a_full_queue_and_each_step_keeps_its_weights(tmp_path, digits_tensors, monkeypatch):
    torch.manual_seed(0)
    model = SmallNet()
    rec = Recorder(tmp_path / "db", model, probe=probe_pair(digits_tensors), probe_size=30, write_queue=2)
    rec.start()
    gate = threading.Event()
    watch_writes(monkeypatch, lambda path: gate.wait(60))  # every write point waits until the gate opens
    states = {}
    for step in (1, 2, 3):  # 1 is taken by the writer (and held), 2 and 3 wait in the queue
        states[step] = nudge(model)
        start = time.perf_counter()
        assert rec.snapshot(step) is True
        assert time.perf_counter() - start < 10, "snapshot waited for the held writer with room in the queue"
    states[4] = nudge(model)
    fourth = threading.Thread(target=rec.snapshot, args=(4,))
    fourth.start()
    fourth.join(1.0)
    assert fourth.is_alive(), "a full queue must make the loop wait"
    assert StatsDB(tmp_path / "db").steps() == []
    nudge(model)  # the weights move on while the writes are held: the snapshots keep theirs
    gate.set()
    fourth.join(60)
    rec.close()
    db = StatsDB(tmp_path / "db")
    assert db.steps() == [1, 2, 3, 4] and db.run_info()["ended_at"] is not None
    inputs = torch.from_numpy(db.probe_inputs())
    for step, state in states.items():
        stored = torch.load(db.state_path(step), weights_only=True)
        assert all(torch.equal(stored[k], state[k]) for k in state)
        np.testing.assert_array_equal(db.get_stats(step).weights["conv1"], state["conv1.weight"].numpy())
        net = SmallNet()
        net.load_state_dict(state)
        with torch.no_grad():
            probs = torch.softmax(net.eval()(inputs), 1).numpy()
        np.testing.assert_allclose(db.get_stats(step).probs_by_image, probs, rtol=1e-5, atol=1e-6)


def test_an_error_in_the_writer_is_raised_on_the_loops_thread_and_leaves_the_run_open(tmp_path, digits_tensors,
                                                                                       monkeypatch):
    rec = Recorder(tmp_path / "db", SmallNet(), probe=probe_pair(digits_tensors), probe_size=20)
    assert rec.snapshot(0) is True
    rec.flush()
    fail_on(monkeypatch, lambda path: True, RuntimeError("the writer broke"))
    assert rec.snapshot(1) is True  # handed over: the writer fails later, on its own thread
    with pytest.raises(RuntimeError, match="the writer broke"):
        rec.close()
    db = StatsDB(tmp_path / "db")
    assert db.steps() == [0] and db.run_info()["ended_at"] is None  # as a crashed training leaves it
    again = Recorder(tmp_path / "db", SmallNet(), probe=probe_pair(digits_tensors), probe_size=20)
    assert again.start(rec.run_id) == rec.run_id  # the lock was released
    again.release()


def test_a_full_disk_in_the_writer_warns_on_the_loops_thread_and_training_goes_on(tmp_path, digits_tensors,
                                                                                   monkeypatch):
    rec = Recorder(tmp_path / "db", SmallNet(), probe=probe_pair(digits_tensors), probe_size=20)
    rec.start()
    fail_on(monkeypatch, lambda path: True, OSError(28, "No space left on device"))
    assert rec.snapshot(1) is True
    with pytest.warns(UserWarning, match=r"snapshot at step 1 skipped: \[Errno 28\] No space left.*training goes on"):
        rec.flush()
    assert rec.snapshot(2) is True
    rec.close()
    assert StatsDB(tmp_path / "db").steps() == [2]
