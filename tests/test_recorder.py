"""Recorder: the snapshots of a plain PyTorch loop, equal value for value to the callback's on the same weights."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch.utils.data import DataLoader, TensorDataset

from .conftest import REPO, quiet_trainer
from .test_callback import probe_pair
from deepviz import Recorder, StatsCallback, StatsDB
from deepviz.errors import ConfigurationError
from trainers.models import SmallNet


def initial_state() -> dict:
    torch.manual_seed(0)
    return SmallNet().state_dict()


def loaders(digits_tensors):
    """Train (in a fixed order: Lightning draws from a shuffling loader's generator its own way) and val loaders."""
    x, y = digits_tensors
    return DataLoader(TensorDataset(x[:320], y[:320]), batch_size=64), DataLoader(TensorDataset(x[320:480], y[320:480]), batch_size=64)


def plain_loop(db, digits_tensors, state: dict, epochs: int = 2) -> Recorder:
    """What Lightning's fit does with SmallNet, written out: same batches, same Adam, same snapshot steps."""
    model = SmallNet()
    model.load_state_dict(state)
    train, _ = loaders(digits_tensors)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.lr)
    step = 0
    with Recorder(db, model, probe=probe_pair(digits_tensors), probe_size=60) as rec:
        rec.snapshot(step, epoch=0)
        for epoch in range(epochs):
            model.train()
            for x, y in train:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
            rec.snapshot(step, epoch=epoch, metrics={"train_loss": loss.detach()})
    return rec


@pytest.fixture(scope="module")
def loop_and_callback(tmp_path_factory, digits_tensors):
    root = tmp_path_factory.mktemp("recorder")
    state = initial_state()
    plain_loop(root / "loop", digits_tensors, state)
    model = SmallNet()
    model.load_state_dict(state)
    cb = StatsCallback(root / "cb", probe=probe_pair(digits_tensors), probe_size=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet_trainer(max_epochs=2, callbacks=[cb]).fit(model, *loaders(digits_tensors))
    return StatsDB(root / "loop"), StatsDB(root / "cb")


def test_plain_loop_snapshots_equal_the_callbacks_at_every_step(loop_and_callback):
    loop, cb = loop_and_callback
    assert loop.steps() == cb.steps() == [0, 5, 10]
    np.testing.assert_array_equal(loop.probe_inputs(), cb.probe_inputs())
    last = None
    for step in loop.steps():
        a, b = loop.get_stats(step), cb.get_stats(step)
        np.testing.assert_array_equal(a.probe_ids, b.probe_ids)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.predictions, b.predictions)
        np.testing.assert_array_equal(a.probs_by_image, b.probs_by_image)
        np.testing.assert_array_equal(a.loss, b.loss)
        assert set(a.embeddings) == set(b.embeddings) == {"conv1.gap", "conv2.gap", "fc1", "fc2"}
        for layer in a.embeddings:
            np.testing.assert_array_equal(a.embeddings[layer], b.embeddings[layer])
        for layer in ("conv1", "conv2"):
            np.testing.assert_array_equal(a.weights[layer], b.weights[layer])
        state_a, state_b = loop.load_model(step).state_dict(), cb.load_model(step).state_dict()
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_b)
        # the steps differ: equality is not that of one frozen model
        assert last is None or not np.array_equal(last, a.probs_by_image)
        last = a.probs_by_image


def test_plain_loop_run_row_and_metrics(loop_and_callback):
    loop, cb = loop_and_callback
    info, other = loop.run_info(), cb.run_info()
    for key in ("model_class", "layers", "conv_layers", "n_probe", "n_params", "input_shape", "world_size", "hparams"):
        assert info[key] == other[key], key
    assert info["ended_at"] is not None
    assert list(loop.step_table().trigger) == ["snapshot"] * 3
    metrics = loop.metrics()
    assert set(metrics.step) == {5, 10} and set(metrics.name) == {"train_loss"}
    assert np.isfinite(metrics.value).all()


def test_each_step_is_what_its_weights_give(loop_and_callback):
    loop, _ = loop_and_callback
    inputs = torch.from_numpy(loop.probe_inputs())
    for step in loop.steps():
        with torch.no_grad():
            probs = torch.softmax(loop.load_model(step)(inputs), 1).numpy()
        np.testing.assert_allclose(loop.get_stats(step).probs_by_image, probs, rtol=1e-5, atol=1e-6)


def test_an_exception_leaves_the_run_open_and_it_can_be_continued(tmp_path, digits_tensors):
    model = SmallNet()
    with pytest.raises(RuntimeError, match="boom"):
        with Recorder(tmp_path / "db", model, probe=probe_pair(digits_tensors), probe_size=20) as rec:
            rec.snapshot(0)
            raise RuntimeError("boom")
    db = StatsDB(tmp_path / "db")
    assert db.run_info()["ended_at"] is None  # as a crashed training leaves it
    # the lock is released: another Recorder continues the run, skipping the committed step
    again = Recorder(tmp_path / "db", model, probe=probe_pair(digits_tensors), probe_size=20)
    assert again.start(rec.run_id) == rec.run_id
    assert again.snapshot(0) is False and again.snapshot(3, epoch=1) is True
    again.close()
    db = StatsDB(tmp_path / "db")
    assert db.run_ids() == [rec.run_id] and db.steps() == [0, 3]
    assert db.run_info()["ended_at"] is not None


def test_a_step_is_written_once(tmp_path, digits_tensors):
    with Recorder(tmp_path / "db", SmallNet(), probe=probe_pair(digits_tensors), probe_size=20) as rec:
        assert rec.snapshot(2, epoch=0) is True
        assert rec.snapshot(2, epoch=0) is False
    assert StatsDB(tmp_path / "db").steps() == [2]


@pytest.mark.parametrize(
    ("model", "probe", "match"),
    [
        ("net", None, r"Recorder needs a probe set: probe=val_dataset \(probe_size=1000 picks 1000 of it\) or probe=\(images, labels\)\."),
        ("net", "val", r"Recorder's probe must be a Dataset.*got the string 'val'\. probe='val' or 'train' is StatsCallback's"),
        ({"fc": 1}, "pair", r"Recorder needs the torch nn\.Module being trained as model, got dict\."),
    ],
)
def test_bad_arguments_fail_at_once(tmp_path, digits_tensors, model, probe, match):
    model = SmallNet() if model == "net" else model
    probe = probe_pair(digits_tensors) if probe == "pair" else probe
    with pytest.raises(ConfigurationError, match=match):
        Recorder(tmp_path / "db", model, probe=probe)
    assert not (tmp_path / "db").exists()


# --------------------------------------------------------------------------- the README's loop


def readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    return match.group(1)


def test_the_readme_plain_loop_runs_and_records(tmp_path):
    code = readme_block("### Without Lightning: a plain PyTorch loop")
    assert "import lightning" not in code and "Recorder(" in code
    assert len([line for line in code.splitlines() if line.strip()]) <= 25
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    db = StatsDB(tmp_path / "stats_db")
    run = db.run_info()
    assert f"run {run['run_id']} is in ./stats_db" in proc.stdout
    assert run["name"] == "digits-loop" and run["ended_at"] is not None
    assert db.steps() == [0, 45, 90, 135]  # 1437 training images in batches of 32: 45 steps an epoch
    first, last = db.get_stats(0), db.get_stats(135)
    assert (last.predictions == last.labels).mean() > (first.predictions == first.labels).mean() + 0.5
    assert set(db.metrics().name) == {"train_loss"}


def test_the_recorder_needs_no_lightning():
    code = ("import sys, deepviz; deepviz.Recorder; import deepviz.datasets; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"


def test_the_writers_thread_runs_no_torch_operation(tmp_path):
    """The writer's jobs (the probe's thumbnails and file, each snapshot's write) are numpy and Arrow only.

    A torch operation on another thread that runs in parallel (a min over the probe, say) gives that thread an
    OpenMP team of its own; with more OpenMP threads than cores, the training's own team stops spinning
    between operations, and training ran 10-20% slower for the rest of the run. Every ATen operation the
    jobs run is recorded here, on the writer's thread; ``detach`` is a view.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    ran: list[str] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ran.append(str(func))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    x = torch.randn(300, 1, 8, 8) * 3  # outside [0, 1]: the thumbnails' range is the probe's own min and max
    y = torch.randint(0, 10, (300,))
    rec = Recorder(tmp_path / "db", SmallNet(), probe=(x, y), probe_size=None, save_state=True)
    submit = rec._writes.submit

    def recorded(job):
        def run():
            with Record():
                job()
        return submit(run)

    rec._writes.submit = recorded
    rec.start()
    rec.snapshot(0)
    rec.snapshot(5, metrics={"val_acc": torch.tensor(0.5)})
    rec.close()
    assert len(ran) > 0  # the recording saw the jobs' tensors
    assert set(ran) == {"aten.detach.default"}, sorted(set(ran))
    db = StatsDB(tmp_path / "db")
    assert db.steps() == [0, 5] and len(db.thumbnails()) == 300
