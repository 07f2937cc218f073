"""DDP: each rank captures its shard of the probe set, rank zero gathers in probe order and writes alone.

Through the callback under Lightning's DDP strategy, and through a Recorder in a plain loop under
``torch.distributed`` (gloo, two processes started with ``torch.multiprocessing.spawn``).

A 2-process CPU (gloo) run is compared with a single-process run of the same
model, seed and initial weights. Lightning launches the second process by
re-running the script, so the DDP run lives in a script run with
``sys.executable``.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import digits_loaders, quiet_trainer
from deepviz import Recorder, StatsCallback, StatsDB
from trainers.models import SmallNet

REPO = Path(__file__).resolve().parents[1]

DDP_SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    import torch
    torch.set_num_threads(1)
    import lightning.pytorch as pl
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset
    from deepviz import StatsCallback
    from trainers.models import SmallNet

    db, weights, probe = sys.argv[1:4]
    warnings.simplefilter("ignore")
    def no_pickles(*args, **kwargs):
        raise RuntimeError("gather_object: gloo gathers tensors, the snapshot must send those")
    torch.distributed.gather_object = no_pickles
    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype("float32")).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype("int64"))
    pl.seed_everything(0, verbose=False)
    model = SmallNet()
    model.load_state_dict(torch.load(weights))
    forwards = []
    def count(module, args):  # images through the model (Lightning's DDP wrapper also calls it with the batch list)
        if isinstance(args[0], torch.Tensor):
            forwards.append(len(args[0]))
    model.register_forward_pre_hook(count)
    train = DataLoader(TensorDataset(x[:320], y[:320]), batch_size=64)
    val = DataLoader(TensorDataset(x[320:480], y[320:480]), batch_size=80)
    # batch_size=32: each rank runs its 60 probe rows in two batches; probe="val": 121 of validation's 160,
    # which Lightning's DistributedSampler shares out, 80 rows a rank
    probe = (x[480:780], y[480:780]) if probe == "pair" else probe
    cb = StatsCallback(db, probe=probe, probe_size=121, batch_size=32)
    trainer = pl.Trainer(
        strategy="ddp", devices=2, accelerator="cpu", max_epochs=2, callbacks=[cb], logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
    )
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        trainer.fit(model, train, val)
    said = [str(w.message) for w in said if str(w.message).startswith("deepviz:")]
    with open(f"{db}.rank{trainer.global_rank}.txt", "w") as f:
        f.write(repr((forwards, said)))
    """
)


RECORDER_SCRIPT = textwrap.dedent(
    """
    import os, sys, warnings
    from collections import OrderedDict
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import torch.nn.functional as F
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from deepviz import Recorder

    def small_net():  # SmallNet's layers and state dict keys, without importing Lightning (slow) three times
        return nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(1, 16, 3, padding=1), relu1=nn.ReLU(), conv2=nn.Conv2d(16, 32, 3, padding=1),
            relu2=nn.ReLU(), pool=nn.MaxPool2d(2), flat=nn.Flatten(), fc1=nn.Linear(32 * 4 * 4, 64), relu3=nn.ReLU(),
            fc2=nn.Linear(64, 10)))

    def work(rank, db, weights, data, port):
        torch.set_num_threads(1)
        warnings.simplefilter("ignore")
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group("gloo", rank=rank, world_size=2)
        x, y = torch.load(data)
        model = small_net()
        model.load_state_dict(torch.load(weights))
        def no_pickles(*args, **kwargs):
            raise RuntimeError("gather_object: gloo gathers tensors, the snapshot must send those")
        dist.gather_object = no_pickles
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.5)
        with Recorder(db, model, probe=(x[480:780], y[480:780]), probe_size=121, batch_size=32) as rec:
            rec.snapshot(0)
            for step in range(1, 4):  # each rank trains on its own rows; DDP averages the gradients
                rows = slice(rank * 160 + (step - 1) * 40, rank * 160 + step * 40)
                optimizer.zero_grad()
                F.cross_entropy(ddp(x[rows]), y[rows]).backward()
                optimizer.step()
            rec.snapshot(3, epoch=0)
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(work, args=tuple(sys.argv[1:5]), nprocs=2)
    """
)


def run_script(root, text: str, *args: str) -> None:
    """Run ``text`` as a script in ``root`` (a fresh interpreter, as a multi-process launch needs)."""
    script = root / "script.py"
    script.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def recorder_ddp(tmp_path_factory, digits_tensors):
    """A plain loop under torch.distributed (2 gloo processes, no Lightning) and a one-process Recorder at step 0."""
    root = tmp_path_factory.mktemp("recorder_ddp")
    torch.manual_seed(1)
    init = SmallNet()
    torch.save(init.state_dict(), root / "init.pt")
    torch.save(digits_tensors, root / "digits.pt")
    run_script(root, RECORDER_SCRIPT, *(str(root / f) for f in ("ddp_db", "init.pt", "digits.pt")), free_port())
    x, y = digits_tensors
    with Recorder(root / "single_db", init, probe=(x[480:780], y[480:780]), probe_size=121) as rec:
        rec.snapshot(0)
    return StatsDB(root / "ddp_db"), StatsDB(root / "single_db")


@pytest.mark.slow  # three interpreters start torch: ~10 s alone, ~30 s on a loaded machine
def test_recorder_under_torch_distributed_writes_one_run_from_rank_zero(recorder_ddp):
    ddp, single = recorder_ddp
    assert len(ddp.run_ids()) == 1 and ddp.steps() == [0, 3]
    assert ddp.run_info()["world_size"] == 2 and ddp.run_info()["ended_at"] is not None
    a, b = ddp.get_stats(0), single.get_stats(0)
    np.testing.assert_array_equal(a.probe_ids, b.probe_ids)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_allclose(a.probs_by_image, b.probs_by_image, rtol=1e-6, atol=1e-7)
    for layer in ("fc1", "fc2"):
        np.testing.assert_allclose(a.embeddings[layer], b.embeddings[layer], rtol=1e-3, atol=1e-4)
    # step 3 is what its own (trained, different) weights give, in probe order
    trained = SmallNet()
    trained.load_state_dict(torch.load(ddp.state_path(3), weights_only=True))
    with torch.no_grad():
        logits = trained.eval()(torch.from_numpy(ddp.probe_inputs()))
    s = ddp.get_stats(3)
    np.testing.assert_allclose(s.probs_by_image, torch.softmax(logits, 1).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(s.probs_by_image, a.probs_by_image, atol=1e-3)


@pytest.fixture(scope="module")
def ddp_and_single(tmp_path_factory, digits_tensors):
    root = tmp_path_factory.mktemp("ddp")
    torch.manual_seed(0)
    init = SmallNet()
    torch.save(init.state_dict(), root / "init.pt")
    run_script(root, DDP_SCRIPT, str(root / "ddp_db"), str(root / "init.pt"), "pair")

    x, y = digits_tensors
    model = SmallNet()
    model.load_state_dict(torch.load(root / "init.pt"))
    cb = StatsCallback(root / "single_db", probe=(x[480:780], y[480:780]), probe_size=121)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet_trainer(max_epochs=1, callbacks=[cb]).fit(model, *digits_loaders(digits_tensors))
    return StatsDB(root / "ddp_db"), StatsDB(root / "single_db")


def test_only_rank_zero_writes_one_run(ddp_and_single):
    ddp, _ = ddp_and_single
    assert len(ddp.run_ids()) == 1
    info = ddp.run_info()
    assert info["world_size"] == 2 and info["n_probe"] == 121
    # 320 images, 2 ranks, batches of 64: 3 steps per epoch
    assert ddp.steps() == [0, 3, 6]
    counts = ddp.sql("SELECT step, count(*) AS n, count(DISTINCT probe_id) AS d FROM predictions GROUP BY step")
    assert (counts.n == 121).all() and (counts.d == 121).all()


def test_step_zero_is_identical_to_a_single_process_run(ddp_and_single):
    ddp, single = ddp_and_single
    a, b = ddp.get_stats(0), single.get_stats(0)
    np.testing.assert_array_equal(a.probe_ids, b.probe_ids)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    # Shards run in other batch sizes than the single process: equal to float rounding.
    np.testing.assert_allclose(a.probs_by_image, b.probs_by_image, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6, atol=1e-7)
    for layer in ("fc1", "fc2"):
        np.testing.assert_allclose(a.embeddings[layer], b.embeddings[layer], rtol=1e-3, atol=1e-4)
    for layer in ("conv1", "conv2"):
        np.testing.assert_array_equal(a.weights[layer], b.weights[layer])


def test_every_step_is_what_its_weights_give_in_probe_order(ddp_and_single):
    ddp, _ = ddp_and_single
    inputs = torch.from_numpy(ddp.probe_inputs())
    for step in ddp.steps():
        model = ddp.load_model(step)  # from the state dict stored with the step
        with torch.no_grad():
            logits = model(inputs)
        s = ddp.get_stats(step)
        np.testing.assert_allclose(s.probs_by_image, torch.softmax(logits, 1).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.embeddings["fc2"], logits.numpy(), rtol=2e-3, atol=2e-3)


def rank_log(db_path, rank: int) -> tuple[list[int], list[str]]:
    """(batch sizes of every forward of the model, deepviz warnings) on one rank of a DDP_SCRIPT run."""
    forwards, said = ast.literal_eval(Path(f"{db_path}.rank{rank}.txt").read_text())
    return forwards, said


def test_the_extra_pass_runs_each_ranks_share_of_the_probe(ddp_and_single):
    ddp, _ = ddp_and_single
    for rank in (0, 1):
        forwards, said = rank_log(ddp.root, rank)
        # per epoch 3 training batches and 1 validation batch; steps 0, 3, 6 each 2 probe batches (61/60 rows)
        assert said == [] and len(forwards) == 2 * (3 + 1) + 3 * 2


@pytest.fixture(scope="module")
def ddp_piggyback(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_piggyback")
    torch.manual_seed(0)
    torch.save(SmallNet().state_dict(), root / "init.pt")
    run_script(root, DDP_SCRIPT, str(root / "ddp_db"), str(root / "init.pt"), "val")
    return StatsDB(root / "ddp_db")


@pytest.mark.slow  # two processes start torch and Lightning: ~20 s alone, more on a loaded machine
def test_piggyback_under_ddp_lands_every_ranks_rows_in_probe_order(ddp_piggyback, digits_tensors):
    ddp = ddp_piggyback
    x, _ = digits_tensors
    assert ddp.steps() == [0, 3, 6] and ddp.run_info()["n_probe"] == 121
    ids = ddp.get_stats(3).probe_ids
    # probe ids index the validation set; its images are what the db stores, in that order
    np.testing.assert_array_equal(ddp.probe_inputs(), x[320:480][torch.as_tensor(ids)].numpy())
    for rank in (0, 1):
        forwards, said = rank_log(ddp.root, rank)
        # validation's own forward gave steps 3 and 6: only step 0 (before any validation) took probe batches
        assert said == [] and len(forwards) == 2 * (3 + 1) + 2
    inputs = torch.from_numpy(ddp.probe_inputs())
    for step in (3, 6):
        model = ddp.load_model(step)
        with torch.no_grad():
            logits = model(inputs)
        s = ddp.get_stats(step)
        np.testing.assert_array_equal(s.probe_ids, ids)
        np.testing.assert_allclose(s.probs_by_image, torch.softmax(logits, 1).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.embeddings["fc2"], logits.numpy(), rtol=2e-3, atol=2e-3)
    assert not np.allclose(ddp.get_stats(3).probs_by_image, ddp.get_stats(6).probs_by_image, atol=1e-3)
