"""One image's predictions over the training steps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepviz.errors import ConfigurationError

__all__ = ["predictions", "flip_steps", "first_stable_correct", "trajectory"]


def _probs(probs) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConfigurationError(
            f"probs must be (S steps, C classes) for one image; got shape {arr.shape}."
        )
    return arr


def _label(label, n_classes: int) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
        raise ConfigurationError(f"label must be a class id in 0..{n_classes - 1}; got {label!r}.")
    return int(label)


def predictions(probs) -> np.ndarray:
    """(S,) predicted class per step (argmax; ties go to the lower class id)."""
    return _probs(probs).argmax(axis=1)


def flip_steps(probs) -> np.ndarray:
    """Positions s (1..S-1) where the prediction differs from position s-1."""
    preds = predictions(probs)
    return np.flatnonzero(preds[1:] != preds[:-1]) + 1


def first_stable_correct(probs, label: int) -> int | None:
    """First position from which the prediction is right at every later step, else None."""
    arr = _probs(probs)
    label = _label(label, arr.shape[1])
    wrong = np.flatnonzero(arr.argmax(axis=1) != label)
    if wrong.size == 0:
        return 0
    last_wrong = int(wrong[-1])
    return None if last_wrong == arr.shape[0] - 1 else last_wrong + 1


def trajectory(probs, label: int, steps=None) -> pd.DataFrame:
    """Per step: ``step, pred, p_true, p_pred, correct, flipped``.

    ``steps`` gives the training step of each row (defaults to 0..S-1).
    """
    arr = _probs(probs)
    label = _label(label, arr.shape[1])
    steps = np.arange(arr.shape[0]) if steps is None else np.asarray(steps)
    if steps.shape != (arr.shape[0],):
        raise ConfigurationError(
            f"steps has shape {steps.shape} but probs has {arr.shape[0]} steps; they must match."
        )
    preds = arr.argmax(axis=1)
    flipped = np.zeros(arr.shape[0], dtype=bool)
    flipped[1:] = preds[1:] != preds[:-1]
    return pd.DataFrame({
        "step": steps, "pred": preds, "p_true": arr[:, label],
        "p_pred": arr[np.arange(arr.shape[0]), preds], "correct": preds == label, "flipped": flipped,
    })
