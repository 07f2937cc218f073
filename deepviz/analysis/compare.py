"""Two runs side by side: which probe images they share, how their timelines match, where they agree.

Pure functions over what two runs recorded for the same probe images: the
shared ids and their rows, matched steps (by step, by epoch or by fraction of
training), prediction agreement, the first step from which each image stays
right, confusion pairs whose counts differ, and CKA between every pair of
layers.  Embeddings are put in one frame with ``scipy.spatial.procrustes``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.spatial import procrustes

from deepviz.errors import ConfigurationError

from ._checks import as_labels
from .cka import linear_cka

__all__ = ["MATCHES", "shared_probes", "match_steps", "agreement", "first_stable_steps",
           "confusion_pairs", "cross_cka", "align_layouts"]

#: How the steps of two runs are put on one timeline. ``auto`` takes ``step`` when the runs have the same
#: steps, else ``epoch`` when they have the same epochs (snapshot k of an epoch to snapshot k), else ``fraction``.
MATCHES = ("auto", "step", "epoch", "fraction")


def shared_probes(ids_a, ids_b, labels_a=None, labels_b=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probe ids both runs hold (ascending), and their rows in ``ids_a`` and in ``ids_b``.

    Raises ``ConfigurationError`` when the runs share no image, or when the labels given for a shared id
    differ (the same ids then name different images: another dataset).
    """
    a, b = np.asarray(ids_a), np.asarray(ids_b)
    shared, rows_a, rows_b = np.intersect1d(a, b, assume_unique=True, return_indices=True)
    if labels_a is not None and labels_b is not None:
        differ = np.flatnonzero(np.asarray(labels_a)[rows_a] != np.asarray(labels_b)[rows_b])
        if differ.size:
            raise ConfigurationError(
                f"The two runs give {differ.size} of their {shared.size} shared probe ids different labels "
                f"(probe {shared[differ[0]]} for one): the ids name different images. Compare runs of the same dataset."
            )
    if shared.size == 0:
        raise ConfigurationError(
            f"The two runs share no probe image: run A has {a.size} (ids {_span(a)}), run B has {b.size} "
            f"(ids {_span(b)}). Compare runs whose probe sets overlap: train them on the same dataset with the "
            "same probe seed (deepviz train keeps it fixed across --seed)."
        )
    return shared, rows_a, rows_b


def _span(ids: np.ndarray) -> str:
    return f"{ids.min()}..{ids.max()}" if ids.size else "none"


def _timeline(steps, epochs, name: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(steps, dtype=np.int64)
    e = np.asarray(epochs, dtype=np.int64)
    if s.ndim != 1 or s.size == 0 or e.shape != s.shape:
        raise ConfigurationError(f"{name}: steps and epochs must be two 1-D arrays of the same, non-zero length; "
                                 f"got shapes {s.shape} and {e.shape}.")
    if np.any(np.diff(s) <= 0):
        raise ConfigurationError(f"{name}: steps must be strictly increasing; got {s[:10].tolist()}.")
    return s, e


def _epoch_keys(epochs: np.ndarray) -> list[tuple[int, int]]:
    """(epoch, k): the k-th snapshot of its epoch, so the initial step 0 and the end of epoch 0 stay apart."""
    seen: dict[int, int] = {}
    keys = []
    for e in epochs.tolist():
        keys.append((e, seen.get(e, 0)))
        seen[e] = seen.get(e, 0) + 1
    return keys


def match_steps(steps_a, epochs_a, steps_b, epochs_b, by: str = "auto") -> tuple[str, pd.DataFrame]:
    """Pair run A's snapshot steps with run B's, returning the mode used and one row per pair.

    Columns: ``step_a, step_b, epoch_a, epoch_b, fraction_a, fraction_b`` (fraction = step / last step).
    ``step`` and ``epoch`` keep the steps both runs hold; ``fraction`` pairs every step of A with the step of B
    nearest in fraction of training.
    """
    if by not in MATCHES:
        raise ConfigurationError(f"Unknown match {by!r}. Allowed: {', '.join(MATCHES)}.")
    sa, ea = _timeline(steps_a, epochs_a, "run A")
    sb, eb = _timeline(steps_b, epochs_b, "run B")
    ka, kb = _epoch_keys(ea), _epoch_keys(eb)
    if by == "auto":
        by = "step" if np.array_equal(sa, sb) else "epoch" if ka == kb else "fraction"
    fa, fb = sa / max(sa[-1], 1), sb / max(sb[-1], 1)
    if by == "step":
        _, ia, ib = np.intersect1d(sa, sb, return_indices=True)
    elif by == "epoch":
        where_b = {k: i for i, k in enumerate(kb)}
        pairs = [(i, where_b[k]) for i, k in enumerate(ka) if k in where_b]
        ia, ib = (np.array(x, dtype=np.int64) for x in zip(*pairs)) if pairs else (np.zeros(0, np.int64),) * 2
    else:
        ia = np.arange(sa.size)
        ib = np.abs(fa[:, None] - fb[None, :]).argmin(axis=1)
    if ia.size == 0:
        raise ConfigurationError(f"No step of run A matches one of run B by {by}: A has steps {sa[:8].tolist()}, "
                                 f"B has {sb[:8].tolist()}. Match by fraction of training instead.")
    return by, pd.DataFrame({"step_a": sa[ia], "step_b": sb[ib], "epoch_a": ea[ia], "epoch_b": eb[ib],
                             "fraction_a": fa[ia], "fraction_b": fb[ib]})


def agreement(preds_a, preds_b) -> float:
    """Share of images on which the two runs predict the same class (rows are the same images)."""
    a = as_labels(preds_a, "preds_a")
    b = as_labels(preds_b, "preds_b", n=a.shape[0])
    if a.size == 0:
        raise ConfigurationError("agreement needs at least one image; got none.")
    return float(np.mean(a == b))


def first_stable_steps(correct, steps) -> np.ndarray:
    """(N,) the first step from which each image is right at every later step; NaN when it ends wrong.

    ``correct`` is (S steps, N images) booleans, ``steps`` the (S,) step of each row.  The same rule as
    ``trajectory.first_stable_correct``, for every image at once.
    """
    c = np.asarray(correct, dtype=bool)
    s = np.asarray(steps, dtype=np.float64)
    if c.ndim != 2 or s.shape != (c.shape[0],) or c.shape[0] == 0:
        raise ConfigurationError(f"correct must be (S steps, N images) with one step per row; got shape {c.shape} "
                                 f"and {s.shape[0] if s.ndim == 1 else s.shape} steps.")
    wrong = ~c
    # Position after the last wrong row (0 when never wrong): the first of the right-to-the-end run.
    last_wrong = np.where(wrong.any(axis=0), c.shape[0] - 1 - np.argmax(wrong[::-1], axis=0), -1)
    first = last_wrong + 1
    out = np.full(c.shape[1], np.nan)
    learned = first < c.shape[0]
    out[learned] = s[first[learned]]
    return out


def confusion_pairs(conf_a, conf_b, class_names=None, top: int = 10) -> pd.DataFrame:
    """The confusions (true != predicted) whose counts differ most between two (C, C) matrices.

    Columns ``label, pred, label_name, pred_name, count_a, count_b, diff`` (b - a), largest ``|diff|`` first;
    pairs with the same count are left out.
    """
    a, b = np.asarray(conf_a, dtype=np.int64), np.asarray(conf_b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ConfigurationError(f"confusion_pairs needs two square matrices of the same shape; got {a.shape} and {b.shape}.")
    names = list(class_names) if class_names is not None else [str(i) for i in range(a.shape[0])]
    if len(names) != a.shape[0]:
        raise ConfigurationError(f"class_names has {len(names)} names for {a.shape[0]} classes; give one per class.")
    i, j = np.nonzero((a != b) & ~np.eye(a.shape[0], dtype=bool))
    frame = pd.DataFrame({"label": i, "pred": j, "label_name": [names[k] for k in i], "pred_name": [names[k] for k in j],
                          "count_a": a[i, j], "count_b": b[i, j], "diff": b[i, j] - a[i, j]})
    order = np.lexsort((frame["pred"], frame["label"], -frame["diff"].abs()))
    return frame.iloc[order].head(max(int(top), 0)).reset_index(drop=True)


def cross_cka(acts_a: Mapping[str, np.ndarray], acts_b: Mapping[str, np.ndarray]) -> np.ndarray:
    """(La, Lb) linear CKA between every layer of run A and every layer of run B, rows the same images.

    NaN where a layer is constant (a dead layer at initialisation): CKA is undefined there.
    """
    if not acts_a or not acts_b:
        raise ConfigurationError(f"cross_cka needs layers of both runs; got {len(acts_a)} and {len(acts_b)}.")
    out = np.full((len(acts_a), len(acts_b)), np.nan)
    for i, X in enumerate(acts_a.values()):
        for j, Y in enumerate(acts_b.values()):
            if np.ptp(X, axis=0).any() and np.ptp(Y, axis=0).any():
                out[i, j] = linear_cka(X, Y)
    return out


def align_layouts(ref, Y) -> tuple[np.ndarray, np.ndarray, float]:
    """Put two (N, 2) layouts of the same images in one frame: ``ref`` centred and scaled to unit norm, ``Y``
    rotated, reflected, shifted and scaled onto it (orthogonal Procrustes), and their disparity (0 = same shape).
    """
    A, B = np.asarray(ref, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if A.ndim != 2 or A.shape[1] != 2 or A.shape != B.shape or A.shape[0] < 2:
        raise ConfigurationError(f"align_layouts needs two (N, 2) layouts of the same N >= 2; got {A.shape} and {B.shape}.")
    if not np.ptp(A, axis=0).any() or not np.ptp(B, axis=0).any():
        raise ConfigurationError("align_layouts needs layouts whose points are not all identical.")
    mtx_a, mtx_b, disparity = procrustes(A, B)
    return mtx_a.astype(np.float32), mtx_b.astype(np.float32), float(disparity)
