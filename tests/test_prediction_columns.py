"""Some columns of a step's predictions read without the probabilities: the same values, per step."""

from __future__ import annotations

import numpy as np
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz.errors import ConfigurationError
from tests.test_store import write_run, write_step


def test_columns_are_those_of_the_full_read_at_each_step(tmp_path):
    with StatsWriter(tmp_path / "db") as writer:
        write_run(writer)
        write_step(writer, step=0, seed=0, order=[105, 100, 103, 101, 104, 102])  # written out of probe order
        write_step(writer, step=5, seed=1)
    db = StatsDB(tmp_path / "db")
    firsts = []
    for step in (0, 5):
        full = db.predictions(step)
        some = db.prediction_columns(step, ("pred", "correct", "confidence"))
        assert set(some) == {"probe_id", "pred", "correct", "confidence"}
        for name in some:
            np.testing.assert_array_equal(some[name], full[name])
        firsts.append(some["confidence"])
    assert not np.allclose(*firsts)  # each step answers with its own values


def test_the_probabilities_and_unknown_columns_are_refused(tmp_path):
    with StatsWriter(tmp_path / "db") as writer:
        write_run(writer)
        write_step(writer, step=0)
    with pytest.raises(ConfigurationError, match=r"Unknown prediction column\(s\) 'probs', 'x'\. Allowed: label, pred, loss, correct, confidence"):
        StatsDB(tmp_path / "db").prediction_columns(0, ("probs", "x"))
