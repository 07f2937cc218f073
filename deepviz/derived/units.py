"""The probe images that excite each unit most, from the stored activations (no model needed)."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from deepviz.analysis import top_k_per_unit
from deepviz.errors import ConfigurationError, CorruptDataError

__all__ = ["top_units", "unit_history"]


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


def _check_unit(unit, layer: str, n_units: int, step: int) -> None:
    if isinstance(unit, bool) or not isinstance(unit, numbers.Integral) or not 0 <= unit < n_units:
        raise ConfigurationError(
            f"unit={unit!r} is out of range for layer {layer!r}, which has {n_units} units at step {step}; "
            f"use an int in 0..{n_units - 1}."
        )


def unit_history(db, layer: str, unit: int, k: int = 9, run: str | None = None) -> pd.DataFrame:
    """The top-``k`` probe images of one unit at every stored step.

    Columns ``step, rank, probe_id, activation``.  A step whose activations
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
        frames.append(frame)
    columns = ["step", "rank", "probe_id", "activation"]
    out = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    out.attrs["skipped"] = skipped
    return out
