"""Confusion matrices and how predictions move between two steps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepviz.errors import ConfigurationError

from ._checks import as_labels, check_range, positive_int

__all__ = ["confusion", "confusion_delta", "confusion_series", "flows", "pair_changes", "per_class_accuracy"]


def confusion(labels, preds, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    n_classes = positive_int(n_classes, "n_classes")
    labels = as_labels(labels, "labels")
    preds = as_labels(preds, "preds", n=labels.shape[0])
    check_range(labels, n_classes, "labels")
    check_range(preds, n_classes, "preds")
    return np.bincount(labels * n_classes + preds, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def confusion_delta(prev, cur) -> np.ndarray:
    """``cur - prev`` as signed int64: positive cells gained images."""
    prev, cur = np.asarray(prev), np.asarray(cur)
    if prev.shape != cur.shape or prev.ndim != 2 or prev.shape[0] != prev.shape[1]:
        raise ConfigurationError(
            f"confusion_delta needs two square matrices of the same shape; got {prev.shape} and {cur.shape}."
        )
    return cur.astype(np.int64) - prev.astype(np.int64)


def confusion_series(labels, preds_by_step, n_classes: int) -> np.ndarray:
    """(S, C, C) int64: the confusion matrix at each of S steps, from ``preds_by_step`` (S, N)."""
    preds = np.asarray(preds_by_step)
    if preds.ndim != 2:
        raise ConfigurationError(
            f"preds_by_step must be (steps, images); got shape {preds.shape}. Stack one row of predictions per step."
        )
    return np.stack([confusion(labels, row, n_classes) for row in preds]) if len(preds) else np.zeros(
        (0, n_classes, n_classes), dtype=np.int64)


def pair_changes(before, after, limit: int = 10) -> pd.DataFrame:
    """The off-diagonal cells (confusion pairs) whose count changed most from ``before`` to ``after``.

    The measure is the signed change in count, ``after - before``: the number
    of images of true class i predicted as j gained (+) or lost (-).  Returns
    up to ``limit`` rows of ``true, pred, before, after, change``, largest
    ``|change|`` first (ties by true, then pred); unchanged pairs are left out.
    """
    delta = confusion_delta(before, after)
    limit = positive_int(limit, "limit")
    i, j = np.nonzero((delta != 0) & ~np.eye(delta.shape[0], dtype=bool))
    frame = pd.DataFrame({"true": i, "pred": j, "before": np.asarray(before)[i, j].astype(np.int64),
                          "after": np.asarray(after)[i, j].astype(np.int64), "change": delta[i, j]})
    frame["size"] = frame["change"].abs()
    frame = frame.sort_values(["size", "true", "pred"], ascending=[False, True, True], kind="stable")
    return frame.drop(columns="size").head(limit).reset_index(drop=True)


def flows(preds_a, preds_b, labels, probe_ids=None, *, include_unchanged: bool = False) -> pd.DataFrame:
    """Which images moved from predicted class i to j between two steps.

    One row per (from_pred, to_pred) pair that occurs, with columns
    ``from_pred, to_pred, count, fixed, broken, probe_ids``: ``fixed`` counts
    images that went from wrong to right, ``broken`` right to wrong, and
    ``probe_ids`` lists them (row positions unless ``probe_ids`` is given).
    Pairs with from == to are left out unless ``include_unchanged``.  Sorted
    by count, largest first.
    """
    a = as_labels(preds_a, "preds_a")
    b = as_labels(preds_b, "preds_b", n=a.shape[0])
    y = as_labels(labels, "labels", n=a.shape[0])
    ids = np.arange(a.shape[0]) if probe_ids is None else np.asarray(probe_ids)
    if ids.shape != a.shape:
        raise ConfigurationError(
            f"probe_ids has shape {ids.shape} but the predictions have {a.shape}; they must match."
        )
    keep = np.ones(a.shape, dtype=bool) if include_unchanged else a != b
    frame = pd.DataFrame({
        "from_pred": a[keep], "to_pred": b[keep],
        "fixed": (a[keep] != y[keep]) & (b[keep] == y[keep]),
        "broken": (a[keep] == y[keep]) & (b[keep] != y[keep]),
        "probe_ids": ids[keep],
    })
    out = (
        frame.groupby(["from_pred", "to_pred"], sort=True)
        .agg(count=("probe_ids", "size"), fixed=("fixed", "sum"), broken=("broken", "sum"),
             probe_ids=("probe_ids", lambda s: s.to_numpy()))
        .reset_index()
    )
    out[["count", "fixed", "broken"]] = out[["count", "fixed", "broken"]].astype(np.int64)
    return out.sort_values(["count", "from_pred", "to_pred"], ascending=[False, True, True],
                           kind="stable").reset_index(drop=True)


def per_class_accuracy(labels, preds, n_classes: int) -> np.ndarray:
    """(C,) float: recall of each true class; NaN for a class with no images."""
    cm = confusion(labels, preds, n_classes)
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.where(totals > 0, totals, 1), np.nan)
