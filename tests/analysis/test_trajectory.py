import numpy as np
import pytest

from deepviz.analysis.trajectory import first_stable_correct, flip_steps, predictions, trajectory
from deepviz.errors import ConfigurationError


def onehot(preds, c=3, p=0.8):
    out = np.full((len(preds), c), (1 - p) / (c - 1))
    out[np.arange(len(preds)), preds] = p
    return out


def test_flip_steps_and_first_stable_correct():
    probs = onehot([2, 2, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(predictions(probs), [2, 2, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(flip_steps(probs), [2, 4, 5])
    assert first_stable_correct(probs, 0) == 5
    assert first_stable_correct(onehot([0, 0]), 0) == 0
    assert first_stable_correct(onehot([0, 1]), 0) is None
    assert flip_steps(onehot([1])).size == 0


def test_trajectory_table():
    probs = onehot([1, 0, 1, 0], c=2, p=0.9)
    t = trajectory(probs, 0, steps=[10, 20, 30, 40])
    assert list(t.columns) == ["step", "pred", "p_true", "p_pred", "correct", "flipped"]
    assert t.step.tolist() == [10, 20, 30, 40]
    assert t.correct.tolist() == [False, True, False, True]
    assert t.flipped.tolist() == [False, True, True, True]
    np.testing.assert_allclose(t.p_pred, 0.9)
    np.testing.assert_allclose(t.p_true, [0.1, 0.9, 0.1, 0.9])


def test_errors():
    with pytest.raises(ConfigurationError, match=r"probs must be \(S steps, C classes\) for one image; got shape \(3,\)"):
        predictions(np.ones(3))
    with pytest.raises(ConfigurationError, match=r"label must be a class id in 0..2; got 3"):
        first_stable_correct(onehot([0]), 3)
    with pytest.raises(ConfigurationError, match=r"steps has shape \(1,\) but probs has 2 steps"):
        trajectory(onehot([0, 1]), 0, steps=[5])
