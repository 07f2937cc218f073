"""Dataset cartography (Swayamdipta et al., 2020) and forgetting events (Toneva et al., 2019).

From the probe set's class probabilities at every snapshot: how confidently and
how consistently each image is learnt, and how often it is forgotten.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepviz.errors import ConfigurationError

from ._checks import as_labels, check_range

__all__ = ["data_map", "data_map_region", "AMBIGUOUS_VARIABILITY", "EASY_CONFIDENCE"]

#: Variability (std over steps of the true-class probability) at or above which
#: an image counts as ambiguous: its probability swings by this much or more.
AMBIGUOUS_VARIABILITY = 0.2
#: Mean true-class probability at or above which a stable image counts as easy.
EASY_CONFIDENCE = 0.5


def data_map(probs, labels) -> pd.DataFrame:
    """Per image, in row order of ``labels``: confidence, variability, correctness, forgetting_events.

    ``probs`` is (S steps, N images, C classes).  confidence = mean over steps
    of the true class's probability; variability = its standard deviation;
    correctness = fraction of steps where the argmax is the true class;
    forgetting_events = number of right-at-s, wrong-at-s+1 transitions.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3 or 0 in p.shape:
        raise ConfigurationError(
            f"probs must be (S steps, N images, C classes); got shape {p.shape}."
        )
    y = as_labels(labels, "labels", n=p.shape[1])
    check_range(y, p.shape[2], "labels")
    p_true = p[:, np.arange(p.shape[1]), y]  # (S, N)
    correct = p.argmax(axis=2) == y[None, :]
    return pd.DataFrame({
        "confidence": p_true.mean(axis=0),
        "variability": p_true.std(axis=0),
        "correctness": correct.mean(axis=0),
        "forgetting_events": (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.int64),
    })


def data_map_region(conf, var):
    """"ambiguous" if var >= AMBIGUOUS_VARIABILITY, else "easy" if conf >= EASY_CONFIDENCE, else "hard".

    Scalars give a str, arrays an object array of the same shape.  The
    thresholds follow the map's shape: confidence and variability are tied
    (variability <= 0.5), so high-variability images sit in the middle band
    of confidence, easy ones top left, hard ones bottom left.
    """
    c, v = np.asarray(conf, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if c.shape != v.shape:
        raise ConfigurationError(f"conf has shape {c.shape} but var has {v.shape}; they must match.")
    if not (np.isfinite(c).all() and np.isfinite(v).all()):
        raise ConfigurationError("conf and var must be finite numbers (probabilities and their std).")
    out = np.where(v >= AMBIGUOUS_VARIABILITY, "ambiguous", np.where(c >= EASY_CONFIDENCE, "easy", "hard"))
    return str(out) if out.ndim == 0 else out.astype(object)
