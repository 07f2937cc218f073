"""The ``data_map`` table: one row per probe image, over every readable step of a run.

Each row records what it covers: ``n_steps``, the number of committed steps
the run had when the map was computed, and ``last_step``, the latest of them.
A map whose coverage differs from the run's committed steps now is stale (the
run went on, or was resumed, after it was computed) and is recomputed; a step
whose predictions cannot be read is left out of the map but still counts as
covered, so one bad file does not recompute the map on every request.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepviz.analysis import data_map as data_map_of
from deepviz.errors import CorruptDataError, NotFoundError

__all__ = ["compute", "covers", "coverage"]


def coverage(steps: list[int]) -> tuple[int, int]:
    """(n_steps, last_step) of a list of committed steps; (0, -1) for none."""
    return len(steps), (steps[-1] if steps else -1)


def covers(frame: pd.DataFrame, steps: list[int]) -> bool:
    """Whether a stored map was computed over exactly these committed steps."""
    if not {"n_steps", "last_step"} <= set(frame.columns) or frame.empty:
        return False  # a file from before maps recorded their steps
    return (int(frame["n_steps"].iloc[0]), int(frame["last_step"].iloc[0])) == coverage(steps)


def compute(db, run_id: str, steps: list[int]) -> pd.DataFrame:
    """The data map of ``steps`` (probe_id, confidence, variability, correctness, forgetting_events, n_steps, last_step)."""
    probes = db.probes(run_id)
    probe_ids = probes["probe_id"].to_numpy()
    probs = []
    for step in steps:
        try:
            p = db.predictions(step, run_id)
        except (CorruptDataError, NotFoundError):
            continue  # one unreadable step must not take the whole map down
        if len(p["probe_id"]) == len(probe_ids) and np.array_equal(p["probe_id"], probe_ids):
            probs.append(p["probs"])
    if not probs:
        raise NotFoundError(f"Run {run_id!r} has no readable predictions yet; the data map needs at least one step.")
    frame = data_map_of(np.stack(probs), probes["label"].to_numpy())
    frame.insert(0, "probe_id", probe_ids.astype(np.int64))
    frame["forgetting_events"] = frame["forgetting_events"].astype(np.int32)
    frame["n_steps"], frame["last_step"] = (np.int64(v) for v in coverage(steps))
    return frame
