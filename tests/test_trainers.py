"""Reference models and ``trainers.train.train``: tiny batches and short runs on digits."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from deepviz import StatsDB
from deepviz.errors import ConfigurationError
from trainers.models import MODELS, build_model
from trainers.train import DEFAULTS, checkpoint_root, final_metrics, train

# Each model at the input shape of a dataset it is the default (or the study's net) for.
MODEL_INPUTS = {
    "small": (1, 8),  # digits
    "fc64": (3, 32),  # folder (default size) / CIFAR-10
    "alexnet-small": (3, 32),  # CIFAR-10
    "mnist-cnn": (1, 28),  # MNIST, Fashion-MNIST
    "resnet18": (3, 32),
}


def test_every_model_has_an_input_shape_here():
    assert set(MODEL_INPUTS) == set(MODELS)
    assert {d.model for d in DEFAULTS.values()} <= set(MODELS)


@pytest.mark.parametrize("name, shape", [*MODEL_INPUTS.items(), ("alexnet-small", (3, 96))])  # 96: STL-10
def test_model_forward_and_one_training_batch(name, shape):
    channels, size = shape
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, image_size=size, n_classes=10)
    x = torch.rand(2, channels, size, size)
    y = torch.arange(2)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert any(isinstance(m, torch.nn.Linear) for m in model.modules())  # the callback captures Linear outputs

    before = {k: v.clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", enable_checkpointing=False)
    trainer.fit(model, loader, loader)
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # one optimizer step changed weights
    assert {"train_loss", "val_loss", "val_acc"} <= set(trainer.callback_metrics)
    assert torch.isfinite(trainer.callback_metrics["train_loss"])


def test_build_model_unknown_name():
    with pytest.raises(ConfigurationError, match=r"Unknown model 'vgg'\. Available: small, fc64, alexnet-small"):
        build_model("vgg", in_channels=3, image_size=32, n_classes=10)


def test_checkpoint_root(tmp_path):
    assert checkpoint_root(tmp_path / "stats_db") == tmp_path / "checkpoints"
    assert checkpoint_root(tmp_path / "stats_db", tmp_path / "ck") == tmp_path / "ck"
    assert checkpoint_root("stats_db") == Path.cwd() / "checkpoints"
    assert checkpoint_root("s3://bucket/team/db") == Path.cwd() / "checkpoints"  # not a local "s3:/bucket/team" folder


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset": "imagenet"}, r"Unknown dataset 'imagenet'\. Available: digits, cifar10"),
        ({"model": "vgg"}, r"Unknown model 'vgg'\. Available: small, fc64"),
        ({"epochs": 0}, r"epochs must be a positive integer, got 0"),
        ({"epochs": 1.5}, r"epochs must be a positive integer, got 1\.5"),
        ({"probe_size": 0}, r"probe_size must be a positive integer, got 0"),
        ({"batch_size": -2}, r"batch_size must be a positive integer, got -2"),
        ({"max_train": True}, r"max_train must be a positive integer, got True"),
        ({"image_size": 0}, r"image_size must be a positive integer, got 0"),
        ({"num_workers": -1}, r"num_workers must be an integer >= 0, got -1"),
        ({"lr": 0.0}, r"lr must be a positive number, got 0\.0"),
        ({"lr": float("inf")}, r"lr must be a positive number, got inf"),
        ({"every_n_train_steps": 0}, r"every_n_train_steps must be None or an integer >= 1, got 0"),
        ({"schedule": "lin"}, r"schedule must be None or 'log'.*got 'lin'"),
    ],
)
def test_train_rejects_bad_arguments_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        train(db=tmp_path / "db", progress=False, **kwargs)
    assert not (tmp_path / "db").exists()


def test_train_needs_both_splits(tmp_path):
    # one image per class: every image goes to train, none is left for validation and the probe
    for cls in ("cat", "dog"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        Image.new("RGB", (10, 10), (200, 10, 10)).save(tmp_path / "images" / cls / "a.png")
    with pytest.raises(ConfigurationError, match=r"Dataset 'folder' has 2 training and 0 test images"):
        train("folder", tmp_path / "images", db=tmp_path / "db", progress=False)


def short_run(tmp_path: Path, name: str, **kwargs) -> tuple[str, Path]:
    db = tmp_path / name / "db"
    run_id = train("digits", db=db, epochs=1, max_train=100, probe_size=30, progress=False, **kwargs)
    return run_id, db


def test_train_writes_a_run_and_checkpoints(tmp_path):
    run_id, db_path = short_run(tmp_path, "a", ckpt_dir=tmp_path / "ck", run_name="r1")
    db = StatsDB(db_path)
    assert db.run_ids() == [run_id]
    info = db.run_info(run_id)
    assert info["name"] == "r1" and info["n_probe"] == 30 and info["dataset"] == "digits"
    assert info["class_names"] == [str(d) for d in range(10)]
    assert db.steps(run_id) == [0, 4]  # 100 training images in batches of 32 -> 4 steps
    probes = db.probes(run_id)
    assert probes["label"].value_counts().min() >= 2  # stratified over the 10 classes
    # Lightning's files go to ckpt_dir/<run_id>; the db records its own per-step copy of each.
    assert (tmp_path / "ck" / run_id / "last.ckpt").is_file()
    ckpts = db.checkpoints(run_id)
    assert ckpts and all(Path(p).is_file() and Path(p) == (db.checkpoint_dir(run_id) / f"step={s}.ckpt").absolute()
                         for s, p in ckpts.items())
    metrics = final_metrics(db_path, run_id)
    assert 0.0 <= metrics["val_acc"] <= 1.0 and np.isfinite(metrics["val_loss"])


def test_train_is_reproducible_with_a_seed(tmp_path):
    run_a, db_a = short_run(tmp_path, "a", seed=3, lr=0.01)
    run_b, db_b = short_run(tmp_path, "b", seed=3, lr=0.01)
    a, b = StatsDB(db_a), StatsDB(db_b)
    pa_, pb = a.predictions(a.steps()[-1]), b.predictions(b.steps()[-1])
    np.testing.assert_array_equal(pa_["probe_id"], pb["probe_id"])
    np.testing.assert_allclose(pa_["probs"], pb["probs"], atol=1e-6)
    assert a.run_info()["hparams"]["lr"] == 0.01


def test_train_with_the_log_schedule(tmp_path):
    run_id = train("digits", db=tmp_path / "db", epochs=2, max_train=200, probe_size=30, progress=False, schedule="log")
    db = StatsDB(tmp_path / "db")
    assert db.steps(run_id) == [0, 1, 2, 4, 7, 14]  # 200 images in batches of 32: 7 steps an epoch


def test_the_train_command_takes_every_n_steps_and_schedule(tmp_path, capsys):
    from deepviz.cli import main

    db = tmp_path / "db"
    argv = ["train", "--dataset", "digits", "--epochs", "2", "--max-train", "100", "--probe-size", "20", "--no-progress",
            "--db", str(db), "--ckpt-dir", str(tmp_path / "ck")]
    assert main([*argv, "--every-n-steps", "3", "--run-name", "steps"]) == 0
    assert main([*argv, "--every-n-steps", "3", "--schedule", "log", "--run-name", "log"]) == 0

    def scheduled(run):  # the steps the schedule asked for; checkpoint saves (when val_acc improves) add others
        table = StatsDB(db).step_table(run)
        return list(table.step[table.trigger != "checkpoint"])

    # 100 images in batches of 32: 4 steps an epoch
    assert scheduled("steps") == [0, 3, 6]
    assert scheduled("log") == [0, 1, 2, 3, 6]
    with pytest.raises(SystemExit, match="2"):
        main([*argv, "--schedule", "lin"])
    assert "argument --schedule: invalid choice: 'lin' (choose from 'log')" in capsys.readouterr().err
