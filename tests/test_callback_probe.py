"""StatsCallback(probe="val" / "train"): the probe from the trainer's own data, with real Lightning training."""

from __future__ import annotations

import warnings

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from .conftest import quiet_trainer
from .test_callback import CountBatches
from .test_probe import ImagesOnly
from deepviz import StatsCallback, StatsDB
from deepviz.errors import ConfigurationError
from trainers.models import SmallNet

VAL = slice(480, 780)


class DigitsData(L.LightningDataModule):
    """Loads its tensors in setup, as a DataModule does; counts how often it is set up and asked for loaders."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
        self.setups = 0
        self.val_loaders = 0

    def setup(self, stage):
        self.setups += 1
        self.train_set = TensorDataset(self.x[:320], self.y[:320])
        self.val_set = TensorDataset(self.x[VAL], self.y[VAL])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=64)

    def val_dataloader(self):
        self.val_loaders += 1
        return DataLoader(self.val_set, batch_size=100)


def run(tmp_path, name, probe, *, datamodule=None, train=None, val=None, callbacks=(), **kwargs):
    cb = StatsCallback(tmp_path / name, probe=probe, probe_size=50, probe_seed=4, **kwargs)
    trainer = quiet_trainer(max_epochs=1, callbacks=[cb, *callbacks])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|IterableDataset).*")
        trainer.fit(SmallNet(), train, val, datamodule=datamodule)
    return StatsDB(tmp_path / name)


def loaders(digits_tensors, val_set=None):
    x, y = digits_tensors
    val_set = val_set if val_set is not None else TensorDataset(x[VAL], y[VAL])
    return DataLoader(TensorDataset(x[:320], y[:320]), batch_size=64), DataLoader(val_set, batch_size=100)


def test_val_probe_is_the_same_from_loaders_a_datamodule_and_the_dataset(tmp_path, digits_tensors):
    x, y = digits_tensors
    dm = DigitsData(x, y)
    dbs = [
        run(tmp_path, "loaders", "val", train=loaders(digits_tensors)[0], val=loaders(digits_tensors)[1]),
        run(tmp_path, "datamodule", "val", datamodule=dm),
        run(tmp_path, "dataset", TensorDataset(x[VAL], y[VAL]), train=loaders(digits_tensors)[0]),
    ]
    assert dm.setups == 1 and dm.val_loaders == 1  # nothing set up or loaded a second time for the probe
    first = dbs[0]
    probes = first.probes()
    assert len(probes) == 50 and probes.probe_id.max() < 300  # indices into the validation set
    np.testing.assert_array_equal(probes.label, y[VAL].numpy()[probes.probe_id])
    np.testing.assert_array_equal(first.probe_inputs(), x[VAL].numpy()[probes.probe_id])
    for db in dbs[1:]:
        np.testing.assert_array_equal(db.probes().probe_id, probes.probe_id)
        np.testing.assert_array_equal(db.probes().label, probes.label)
        np.testing.assert_array_equal(db.probe_inputs(), first.probe_inputs())
        assert db.steps() == [0, 5]


def test_train_probe_takes_the_training_set_and_warns(tmp_path, digits_tensors):
    x, y = digits_tensors
    with pytest.warns(UserWarning, match=r"probe='train' takes the probe from the training set.*Use probe='val'"):
        db = run(tmp_path, "db", "train", datamodule=DigitsData(x, y))
    ids = db.probes().probe_id.to_numpy()
    np.testing.assert_array_equal(db.probe_inputs(), x[:320].numpy()[ids])
    assert db.steps() == [0, 5]


class Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y))


def fails_before_training(tmp_path, match, **kwargs):
    counter = CountBatches()
    with pytest.raises(ConfigurationError, match=match):
        run(tmp_path, "db", kwargs.pop("probe", "val"), callbacks=[counter], **kwargs)
    assert counter.batches == 0


def test_val_probe_without_a_validation_loader(tmp_path, digits_tensors):
    fails_before_training(tmp_path, r"probe='val': the trainer has no validation dataloader when training starts\. "
                          r"Pass one to trainer\.fit \(or a DataModule with val_dataloader\), or give the probe dataset",
                          train=loaders(digits_tensors)[0])


def test_val_probe_with_several_validation_loaders(tmp_path, digits_tensors):
    train, val = loaders(digits_tensors)
    fails_before_training(tmp_path, r"probe='val': the trainer has 2 validation dataloaders \(DataLoader, DataLoader\); the probe must be "
                          r"one dataset\. Give the one you want: probe=its_dataset\.", train=train, val=[val, val])


def test_val_probe_from_an_iterable_dataset(tmp_path, digits_tensors):
    x, y = digits_tensors
    train, val = loaders(digits_tensors, Stream(x[VAL], y[VAL]))
    fails_before_training(tmp_path, r"probe='val' is the trainer's validation dataset \(Stream\): The probe is an "
                          r"IterableDataset \(Stream\): it has no index", train=train, val=val)


def test_val_probe_without_labels(tmp_path, digits_tensors):
    train, _ = loaders(digits_tensors)
    val = DataLoader(ImagesOnly(digits_tensors[0][VAL]), batch_size=100)
    fails_before_training(tmp_path, r"probe='val' is the trainer's validation dataset \(ImagesOnly\): Probe item 0 is "
                          r"a Tensor, not an \(image, label\) pair", train=train, val=val)


@pytest.mark.parametrize(
    ("probe", "match"),
    [
        ("test", r"StatsCallback's probe must be 'val' or 'train', a Dataset of \(image, label\) pairs or a pair "
                 r"\(images, labels\); got the string 'test'\.$"),
        (None, r"StatsCallback needs a probe set: .*probe='val' or 'train' \(the trainer's own dataset\), or "
               r"probe=\(images, labels\)\."),
    ],
)
def test_bad_probe_names_fail_in_init(probe, match):
    with pytest.raises(ConfigurationError, match=match):
        StatsCallback("db", probe=probe)


def test_validate_outside_a_fit_records_nothing(tmp_path, digits_tensors):
    train, val = loaders(digits_tensors)
    cb = StatsCallback(tmp_path / "db", probe="val", probe_size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet_trainer(callbacks=[cb]).validate(SmallNet(), val)
    assert cb.recorder is None and not (tmp_path / "db").exists()
