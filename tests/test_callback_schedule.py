"""StatsCallback(schedule="log"): dense early snapshots, with real Lightning training on digits."""

from __future__ import annotations

import pytest

from .conftest import digits_loaders
from .test_callback import fit, probe_pair
from deepviz import StatsCallback, StatsDB
from deepviz.errors import ConfigurationError


def steps_of(tmp_path, digits_tensors, batch_size=64, **kwargs):
    fit(tmp_path, digits_tensors, loaders=digits_loaders(digits_tensors, batch_size=batch_size), **kwargs)
    return StatsDB(tmp_path / "db").step_table()


def test_log_then_every_epoch(tmp_path, digits_tensors):
    table = steps_of(tmp_path, digits_tensors, batch_size=16, schedule="log")  # 20 steps an epoch
    assert list(table.step) == [0, 1, 2, 4, 8, 16, 20, 40]  # 32 is a power of two, but after the first epoch
    assert list(table.trigger) == ["start"] + ["train_steps"] * 5 + ["validation"] * 2
    assert list(table.epoch) == [0, 0, 0, 0, 0, 0, 0, 1]
    # the steps' weights differ: each snapshot is its own step's model
    db = StatsDB(tmp_path / "db")
    assert len({db.get_stats(s).probs_by_image.tobytes() for s in db.steps()}) == 8


def test_log_before_the_first_of_every_n_epochs(tmp_path, digits_tensors):
    table = steps_of(tmp_path, digits_tensors, epochs=4, every_n_epochs=2, schedule="log")  # 5 steps an epoch
    assert list(table.step) == [0, 1, 2, 4, 8, 10, 20]  # 16 is in the third epoch, after the first regular snapshot


def test_log_below_every_n_train_steps(tmp_path, digits_tensors):
    table = steps_of(tmp_path, digits_tensors, every_n_train_steps=3, schedule="log")
    assert list(table.step) == [0, 1, 2, 3, 6, 9]  # 4 and 8 are powers of two, past the first regular step 3


def test_without_a_schedule_nothing_changes(tmp_path, digits_tensors):
    assert list(steps_of(tmp_path, digits_tensors, batch_size=16).step) == [0, 20, 40]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule": "linear"}, r"schedule must be None or 'log' \(steps 0, 1, 2, 4, 8, \.\.\. before the first "
                                 r"regular snapshot\), got 'linear'\."),
        ({"schedule": "log", "every_n_train_steps": 1}, r"schedule='log' adds steps 1, 2, 4, 8, \.\.\. but "
                                                         r"every_n_train_steps=1 snapshots every step already"),
        ({"every_n_epochs": 2, "every_n_train_steps": 3}, r"every_n_epochs=2 and every_n_train_steps=3 were both "
                                                           r"given; snapshots follow one of them"),
    ],
)
def test_nonsense_schedules_fail_in_init(digits_tensors, kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        StatsCallback("db", probe=probe_pair(digits_tensors), **kwargs)
