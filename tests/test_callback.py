"""StatsCallback with real Lightning training on 8x8 digits: when it snapshots, what it records, how it fails."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
import pytorch_lightning
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import TensorDataset

from .conftest import digits_loaders, quiet_trainer
from .faults import fail_on, watch_writes
from .test_probe import ImagesOnly
from deepviz import StatsCallback, StatsDB
from deepviz import schema as S
from deepviz.errors import ConfigurationError, SchemaVersionError
from deepviz.probe import build_probe
from trainers.models import SmallNet


def probe_pair(digits_tensors):
    x, y = digits_tensors
    return x[480:780], y[480:780]


def fit(tmp_path, digits_tensors, *, epochs=2, model=None, val=True, callbacks=(), ckpt_path=None, pl=None,
        loaders=None, **cb_kwargs):
    """Train SmallNet (or ``model``) with a StatsCallback on ``tmp_path/db``; returns the callback and trainer."""
    cb_kwargs.setdefault("probe", probe_pair(digits_tensors))
    cb_kwargs.setdefault("probe_size", 60)
    cb = StatsCallback(tmp_path / "db", **cb_kwargs)
    (pl or L).seed_everything(0, verbose=False)
    train, val_loader = loaders or digits_loaders(digits_tensors)
    trainer = quiet_trainer(pl, max_epochs=epochs, callbacks=[cb, *callbacks], enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|is defined in __main__).*")
        trainer.fit(model or SmallNet(), train, val_loader if val else None, ckpt_path=ckpt_path)
    return cb, trainer


class CountBatches(L.Callback):
    """Records how many training batches ran and the module's mode around our snapshots."""

    def __init__(self):
        self.batches = 0
        self.modes = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches += 1

    def on_train_start(self, trainer, pl_module):  # runs after StatsCallback's step-0 snapshot
        self.modes.append(("train_start", all(m.training for m in pl_module.modules())))

    def on_validation_end(self, trainer, pl_module):  # runs after StatsCallback's epoch snapshot
        self.modes.append(("validation_end", not any(m.training for m in pl_module.modules())))


# --------------------------------------------------------------------------- when


def test_step_zero_then_every_validation_epoch(db):
    table = db.step_table()
    assert list(table.step) == [0, 5, 10]
    assert list(table.trigger) == ["start", "validation", "validation"]
    assert list(table.epoch) == [0, 0, 1]


def test_every_n_epochs(tmp_path, digits_tensors):
    fit(tmp_path, digits_tensors, epochs=4, every_n_epochs=2)
    assert StatsDB(tmp_path / "db").steps() == [0, 10, 20]


def test_every_n_train_steps(tmp_path, digits_tensors):
    fit(tmp_path, digits_tensors, every_n_train_steps=3)
    table = StatsDB(tmp_path / "db").step_table()
    assert list(table.step) == [0, 3, 6, 9]
    assert list(table.trigger) == ["start", "train_steps", "train_steps", "train_steps"]
    # metrics logged so far are recorded with the step
    assert table.loc[table.step == 6, "train_loss_step"].notna().all()


def test_epoch_end_when_there_is_no_validation(tmp_path, digits_tensors):
    fit(tmp_path, digits_tensors, val=False)
    table = StatsDB(tmp_path / "db").step_table()
    assert list(table.step) == [0, 5, 10] and list(table.trigger) == ["start", "epoch", "epoch"]
    assert table.loc[table.step > 0, "train_loss_epoch"].notna().all()


def test_never_during_the_sanity_check(tmp_path, digits_tensors, monkeypatch):
    cb = StatsCallback(tmp_path / "db", probe=probe_pair(digits_tensors), probe_size=30)
    states = []
    trainer = quiet_trainer(max_epochs=1, num_sanity_val_steps=2, enable_checkpointing=True,
                            callbacks=[cb, ModelCheckpoint(dirpath=tmp_path / "ckpt")])
    # At each file the writer writes: was the trainer in its sanity check then?
    watch_writes(monkeypatch, lambda path: states.append(trainer.sanity_checking))
    train, val = digits_loaders(digits_tensors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(SmallNet(), train, val)
    assert states and not any(states)
    assert list(StatsDB(tmp_path / "db").step_table().trigger) == ["start", "validation"]


def test_checkpoint_saves_are_snapshots_with_their_path(tmp_path, digits_tensors):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    fit(tmp_path, digits_tensors, callbacks=[ckpt])
    db = StatsDB(tmp_path / "db")
    table = db.step_table()
    assert list(table.step) == [0, 3, 5, 6, 9, 10]
    assert dict(zip(table.step, table.trigger))[3] == "checkpoint"
    paths = db.checkpoints()
    assert set(paths) == {3, 6, 9}
    for step, path in paths.items():
        assert Path(path).exists() and f"step={step}" in Path(path).name
    # The checkpoint rebuilds the model that made the snapshot.
    model = db.load_model(6)
    np.testing.assert_array_equal(model.conv1.weight.detach().numpy(), db.weights(6, "conv1"))


def test_resume_continues_the_run_and_writes_no_step_twice(tmp_path, digits_tensors):
    ckpt_dir = tmp_path / "ckpt"
    cb, _ = fit(tmp_path, digits_tensors, callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1)])
    db_path = tmp_path / "db"
    run = StatsDB(db_path).run_info()
    step10 = db_path / "predictions" / f"run_id={cb.run_id}" / "step=10" / "predictions.parquet"
    before = step10.stat().st_mtime_ns
    # Resume from the step-5 checkpoint: step 10 exists already and must not be written again.
    cb2, trainer = fit(tmp_path, digits_tensors, epochs=3, callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1)],
                       ckpt_path=str(ckpt_dir / "epoch=0-step=5.ckpt"))
    assert trainer.global_step == 15 and cb2.run_id == cb.run_id
    db = StatsDB(db_path)
    assert db.run_ids() == [cb.run_id]
    assert db.steps() == [0, 5, 10, 15]
    assert step10.stat().st_mtime_ns == before
    counts = db.sql("SELECT step, count(*) AS n FROM predictions GROUP BY step ORDER BY step")
    assert list(counts.n) == [60] * 4
    info = db.run_info()
    assert info["started_at"] == run["started_at"] and info["ended_at"] > run["ended_at"]
    assert cb2.state_dict() == {"run_id": cb.run_id, "written": [0, 5, 10, 15]}


def test_state_dict_round_trip(digits_tensors):
    a = StatsCallback("db", probe=probe_pair(digits_tensors))
    a.run_id, a.written = "r1", {0, 7}
    b = StatsCallback("db", probe=probe_pair(digits_tensors))
    b.load_state_dict(a.state_dict())
    assert (b.run_id, b.written) == ("r1", {0, 7})
    assert a.state_key == f"StatsCallback[db={Path('db').resolve()}]"  # resolved: any spelling of the path resumes


# --------------------------------------------------------------------------- both Lightning packages


class PLNet(pytorch_lightning.LightningModule):
    """A module of the older ``pytorch_lightning`` package."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_works_with_the_pytorch_lightning_package(tmp_path, digits_tensors):
    assert isinstance(StatsCallback("db", probe=probe_pair(digits_tensors)), pytorch_lightning.Callback)
    fit(tmp_path, digits_tensors, model=PLNet(), pl=pytorch_lightning)
    db = StatsDB(tmp_path / "db")
    assert db.steps() == [0, 5, 10]
    assert db.run_info()["layers"] == ["conv.gap", "fc"] and db.run_info()["conv_layers"] == ["conv"]
    assert db.get_stats(10).embeddings["fc"].shape == (60, 10)


# --------------------------------------------------------------------------- probe


class NamedDigits(TensorDataset):
    classes = [f"digit {i}" for i in range(10)]


def test_probe_as_a_dataset_picks_the_same_images_as_the_pair(tmp_path, digits_tensors):
    x, y = probe_pair(digits_tensors)
    fit(tmp_path, digits_tensors, epochs=1, probe=NamedDigits(x, y), probe_size=50, probe_seed=3,
        layers=["conv2", "relu3"], run_name="dataset-probe")
    db = StatsDB(tmp_path / "db")
    probes = db.probes()
    expected = build_probe((x, y), 50, seed=3)
    np.testing.assert_array_equal(probes.probe_id, expected.ids)
    np.testing.assert_array_equal(db.probe_inputs(), expected.inputs.numpy())
    assert probes.class_name.tolist() == [f"digit {i}" for i in expected.labels.tolist()]
    # stratified: 50 of 300 images, each class within one of its share
    share = np.bincount(y.numpy(), minlength=10) / len(y) * 50
    assert np.all(np.abs(np.bincount(probes.label, minlength=10) - share) <= 1)
    info = db.run_info("dataset-probe")
    assert info["layers"] == ["conv2", "relu3"] and info["probe_seed"] == 3
    s = db.get_stats(5)
    assert s.embeddings["conv2"].shape == (50, 32 * 8 * 8) and s.embeddings["relu3"].min() >= 0


# --------------------------------------------------------------------------- errors


class ConvOnlyNet(SmallNet):
    """No Linear layer at all: a global-average-pooled conv head."""

    def __init__(self):
        super().__init__()
        del self.fc1, self.fc2
        self.head = nn.Conv2d(32, 10, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.gap(self.head(self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x))))))).flatten(1)


def fails_before_training(tmp_path, digits_tensors, exc, match, model=None, **cb_kwargs):
    counter = CountBatches()
    with pytest.raises(exc, match=match):
        fit(tmp_path, digits_tensors, model=model, callbacks=[counter], **cb_kwargs)
    assert counter.batches == 0, "the error must come at setup, before the first batch"


def test_unknown_layer_fails_at_setup_listing_names(tmp_path, digits_tensors):
    fails_before_training(tmp_path, digits_tensors, ConfigurationError,
                          r"Unknown layer 'fc9'\. Available: conv1, relu1, conv2, relu2, pool, fc1, relu3, fc2, conv1\.gap, conv2\.gap\.",
                          layers=["fc1", "fc9"])


def test_model_without_linear_captures_its_pooled_convs_by_default(tmp_path, digits_tensors):
    fit(tmp_path, digits_tensors, epochs=1, model=ConvOnlyNet())
    db = StatsDB(tmp_path / "db")
    assert db.run_info()["layers"] == ["conv1.gap", "conv2.gap", "head.gap"]
    assert db.activations(5, "head.gap").shape == (60, 10)


def test_model_without_linear_works_with_layers(tmp_path, digits_tensors):
    fit(tmp_path, digits_tensors, epochs=1, model=ConvOnlyNet(), layers=["head"])
    assert StatsDB(tmp_path / "db").activations(5, "head").shape == (60, 10 * 4 * 4)


def test_probe_without_labels_fails_at_setup(tmp_path, digits_tensors):
    fails_before_training(tmp_path, digits_tensors, ConfigurationError,
                          r"Probe item 0 is a Tensor, not an \(image, label\) pair",
                          probe=ImagesOnly(digits_tensors[0][:40]))


def test_negative_probe_label_fails_at_setup(tmp_path, digits_tensors):
    x, y = probe_pair(digits_tensors)
    fails_before_training(tmp_path, digits_tensors, ConfigurationError,
                          r"Probe label -1 \(at index 3\) is negative; labels must be class indices",
                          probe=(x, torch.where(torch.arange(len(y)) == 3, -1, y)))


def test_probe_label_beyond_the_class_names_fails_at_setup(tmp_path, digits_tensors):
    x, y = probe_pair(digits_tensors)
    fails_before_training(tmp_path, digits_tensors, ConfigurationError,
                          r"The probe has label 99, but class_names names 10 classes \(labels 0\.\.9\)",
                          probe=(x, torch.where(y == 3, 99, y)), class_names=[str(i) for i in range(10)])


def test_probe_label_beyond_the_models_outputs_fails_before_training(tmp_path, digits_tensors):
    x, y = probe_pair(digits_tensors)
    fails_before_training(tmp_path, digits_tensors, ConfigurationError,
                          r"Probe label 99 is outside \[0, 10\): SmallNet gives 10 class scores per image",
                          probe=(x, torch.where(y == 3, 99, y)))


def test_probe_of_the_wrong_shape_fails_before_training(tmp_path, digits_tensors):
    x, y = probe_pair(digits_tensors)
    fails_before_training(tmp_path, digits_tensors, ConfigurationError,
                          r"SmallNet\.forward failed on the probe images, of shape \(3, 8, 8\) each.*"
                          r"Its first layer, conv1 \(Conv2d\), takes 1 input channel",
                          probe=(x.expand(-1, 3, -1, -1), y))


def test_unwritable_db_fails_at_setup(tmp_path, digits_tensors):
    # Tests run as root, where permission bits do not stop writes: a regular
    # file in the path makes the folder impossible to create for anyone.
    (tmp_path / "blocker").write_text("a file, not a folder")
    counter = CountBatches()
    cb = StatsCallback(tmp_path / "blocker" / "db", probe=probe_pair(digits_tensors))
    trainer = quiet_trainer(max_epochs=1, callbacks=[cb, counter])
    with pytest.raises(ConfigurationError, match=r"stats db folder '.*blocker/db' is not writable"):
        trainer.fit(SmallNet(), *digits_loaders(digits_tensors))
    assert counter.batches == 0


def test_newer_schema_fails_at_setup(tmp_path, digits_tensors):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / S.VERSION_FILE).write_text(json.dumps({"schema_version": S.SCHEMA_VERSION + 5}))
    fails_before_training(tmp_path, digits_tensors, SchemaVersionError,
                          rf"schema version {S.SCHEMA_VERSION + 5}; this deepviz reads schema versions up to {S.SCHEMA_VERSION}")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probe": None}, r"StatsCallback needs a probe set.*probe=\(images, labels\)"),
        ({"every_n_epochs": 0}, "every_n_epochs must be an integer >= 1, got 0"),
        ({"every_n_train_steps": -2}, "every_n_train_steps must be None or an integer >= 1, got -2"),
        ({"activation_dtype": "bfloat16"}, "activation_dtype must be 'float16' or 'float32', got 'bfloat16'"),
        ({"save_state": "yes"}, "save_state must be True, False or 'auto', got 'yes'"),
        ({"probe_size": 0}, "probe_size must be a positive integer or None"),
        ({"layers": "fc1"}, "layers must be a list of module names, got 'fc1'"),
        ({"layers": ["fc1", "a/b"]}, r"Layer name 'a/b' cannot be used as a file name"),
        ({"probe_size": True}, r"probe_size must be a positive integer or None \(all\), got True"),
        ({"batch_size": 0}, r"batch_size must be a positive integer, got 0\."),
        ({"batch_size": -1}, r"batch_size must be a positive integer, got -1\."),
        ({"batch_size": "64"}, r"batch_size must be a positive integer, got '64'\."),
        ({"class_names": "abc"}, r"class_names must be a list of strings.*got 'abc'.*a single string is not split"),
        ({"class_names": [0, 1]}, r"class_names must be a list of strings, one per class index, got \[0, 1\]"),
    ],
)
def test_bad_arguments_fail_in_init(digits_tensors, kwargs, match):
    kwargs = {"probe": probe_pair(digits_tensors), **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        StatsCallback("db", **kwargs)


class NaNNet(SmallNet):
    """fc1 outputs NaN for every input from the start."""

    def __init__(self):
        super().__init__()
        with torch.no_grad():
            self.fc1.bias[0] = float("nan")


def test_nan_is_stored_flagged_and_warned_once(tmp_path, digits_tensors):
    with pytest.warns(UserWarning, match=r"NaN or Inf in fc1, fc2, logits at step 0.*stored as they are.*flagged") as record:
        fit(tmp_path, digits_tensors, model=NaNNet())
    assert sum("NaN or Inf" in str(w.message) for w in record) == 1
    db = StatsDB(tmp_path / "db")
    assert db.steps() == [0, 5, 10]
    for step in db.steps():
        s = db.get_stats(step)
        # at step 0 only the layers after the NaN bias; training then spreads it into the convs too
        expected = ["fc1", "fc2", "logits"]
        assert s.nonfinite_layers == expected if step == 0 else set(expected) <= set(s.nonfinite_layers)
        assert np.isnan(s.embeddings["fc1"][:, 0]).all()
    # stored as they are: at step 0 only the unit with the NaN bias is NaN (training then spreads it)
    assert np.isfinite(db.activations(0, "fc1")[:, 1:]).all()
    assert db.sql("SELECT count(*) AS n FROM steps WHERE len(nonfinite_layers) > 0").n[0] == 3


def test_failed_write_warns_once_and_training_goes_on(tmp_path, digits_tensors, monkeypatch):
    calls = []
    fail_on(monkeypatch, lambda path: calls.append(path) or len(calls) == 1, OSError(28, "No space left on device"))
    cb = StatsCallback(tmp_path / "db", probe=probe_pair(digits_tensors), probe_size=30)
    trainer = quiet_trainer(max_epochs=2, callbacks=[cb])
    with pytest.warns(UserWarning, match=r"snapshot at step 0 skipped: \[Errno 28\] No space left.*training goes on"):
        trainer.fit(SmallNet(), *digits_loaders(digits_tensors))
    db = StatsDB(tmp_path / "db")
    assert db.steps() == [5, 10] and trainer.global_step == 10
    assert not list((tmp_path / "db" / "_staging").iterdir())
    assert not (tmp_path / "db" / "predictions" / f"run_id={cb.run_id}" / "step=0").exists()


# --------------------------------------------------------------------------- how


def test_model_mode_restored_after_capture(tmp_path, digits_tensors):
    spy = CountBatches()
    fit(tmp_path, digits_tensors, callbacks=[spy])
    assert spy.modes == [("train_start", True), ("validation_end", True), ("validation_end", True)]


def test_metadata_and_metrics(tmp_path, digits_tensors):
    fit(tmp_path, digits_tensors, dataset_name="digits", class_names=list("abcdefghij"), save_state=False,
        activation_dtype="float32")
    db = StatsDB(tmp_path / "db")
    info = db.run_info()
    assert info["class_names"] == list("abcdefghij") and info["dataset"] == "digits"
    assert info["activation_dtype"] == "float32" and info["ended_at"] is not None
    assert "SmallNet(" in info["model_summary"] and info["hparams"]["lr"] == 3e-3
    assert not db.step_table().has_state.any() and db.steps_with_weights() == []
    metrics = db.metrics()
    assert {"train_loss_epoch", "train_acc", "val_loss", "val_acc"} <= set(metrics.name)
    assert set(metrics.step) == {5, 10}
