"""The probe images that excite each unit most, from the stored activations (no model needed)."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from deepviz.analysis import top_k_per_unit
from deepviz.errors import ConfigurationError, CorruptDataError, NotFoundError

#: ``correct_at``'s value for an image whose step's predictions cannot be read.
UNREADABLE = 2

__all__ = ["correct_at", "top_units", "unit_history"]


def top_units(db, step: int, layer: str, k: int = 9, run: str | None = None) -> pd.DataFrame:
    """The top-``k`` probe images of every unit of a captured layer at ``step``.

    Columns ``unit, rank, probe_id, activation``; rank 0 is the strongest.
    """
    acts = np.asarray(db.activations(step, layer, run))
    probe_ids = np.asarray(db.probes(run)["probe_id"])
    if acts.ndim != 2 or acts.shape[0] != len(probe_ids):
        raise CorruptDataError(
            f"Stored activations of layer {layer!r} at step {step} have shape {acts.shape}, but the run has "
            f"{len(probe_ids)} probes; the snapshot does not match the probe set."
        )
    idx, vals = top_k_per_unit(acts, k)
    d, kk = idx.shape
    return pd.DataFrame({
        "unit": np.repeat(np.arange(d), kk),
        "rank": np.tile(np.arange(kk), d),
        "probe_id": probe_ids[idx.ravel()],
        "activation": vals.ravel(),
    })


def correct_at(db, run: str, steps: list[int], probe_ids: np.ndarray) -> np.ndarray:
    """(len(steps), k) uint8: was image ``probe_ids[i, j]`` right at ``steps[i]``, that row's own step?

    1 right, 0 wrong, :data:`UNREADABLE` when that step's predictions cannot be
    read or do not hold the image.  A history of top images must colour each
    row by its own step: the current step's predictions say nothing of how the
    model saw an image earlier in training.
    """
    ids = np.asarray(probe_ids)
    out = np.full(ids.shape, UNREADABLE, dtype=np.uint8)
    for row, step in enumerate(steps):
        try:
            p = db.predictions(step, run)
        except (CorruptDataError, NotFoundError):
            continue
        index = np.minimum(np.searchsorted(p["probe_id"], ids[row]), len(p["probe_id"]) - 1)
        out[row] = np.where(p["probe_id"][index] == ids[row], p["correct"][index], UNREADABLE)
    return out


def _check_unit(unit, layer: str, n_units: int, step: int) -> None:
    if isinstance(unit, bool) or not isinstance(unit, numbers.Integral) or not 0 <= unit < n_units:
        raise ConfigurationError(
            f"unit={unit!r} is out of range for layer {layer!r}, which has {n_units} units at step {step}; "
            f"use an int in 0..{n_units - 1}."
        )


def unit_history(db, layer: str, unit: int, k: int = 9, run: str | None = None) -> pd.DataFrame:
    """The top-``k`` probe images of one unit at every stored step.

    Columns ``step, rank, probe_id, activation, correct`` (``correct`` as in
    :func:`correct_at`: at that row's own step).  A step whose activations
    cannot be read is left out, as the other timeline views do; the frame's
    ``attrs["skipped"]`` maps each such step to the reason.
    """
    frames, skipped = [], {}
    for step in db.steps(run):
        try:
            frame = top_units(db, step, layer, k, run)
        except CorruptDataError as exc:
            skipped[step] = str(exc)
            continue
        _check_unit(unit, layer, int(frame["unit"].max()) + 1, step)
        frame = frame[frame["unit"] == unit].drop(columns="unit")
        frame.insert(0, "step", step)
        frame["correct"] = correct_at(db, run, [step], frame["probe_id"].to_numpy()[None])[0]
        frames.append(frame)
    columns = ["step", "rank", "probe_id", "activation", "correct"]
    out = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    out.attrs["skipped"] = skipped
    return out
