"""The ``layer_quality`` table: one file per (step, layer), plus the baselines of the run.

A committed step never changes, so a stored file is reused for good, unless
it cannot be read or holds other metrics than :data:`QUALITY_METRICS` (a file
written before the metric names were unified): both are recomputed.
The baselines do not depend on the step.  They are stored once, at the run's
first step: layer ``pixels`` (the probe images as the model saw them, every
metric) and layer ``mean_image`` (metric ``mean_image_accuracy``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepviz.analysis import QUALITY_METRICS, colour_features, layer_measures, mean_image_measures
from deepviz.errors import CorruptDataError, NotFoundError

from .tables import read_derived

__all__ = ["BASELINES", "RunData", "first_step", "metrics_of", "read_quality", "measure", "step_layers"]

#: Pseudo-layers holding the baselines.
BASELINES = ("pixels", "mean_image")
TABLE = "layer_quality"


class RunData:
    """What every measure of a run needs: labels, pixels and colour features of the probe images."""

    def __init__(self, db, run_id: str):
        self.labels = db.probes(run_id)["label"].to_numpy().astype(np.int64)
        self.pixels = db.probe_inputs(run_id)
        self.colour = colour_features(self.pixels, channels_last=False)


def first_step(db, run_id: str) -> int:
    steps = db.steps(run_id)
    if not steps:
        raise NotFoundError(f"Run {run_id!r} has no committed steps yet; nothing to analyse.")
    return steps[0]


def metrics_of(layer: str) -> set[str]:
    """The metrics a ``layer_quality`` file of this layer holds when it is current."""
    return {"mean_image_accuracy"} if layer == "mean_image" else set(QUALITY_METRICS)


def read_quality(db, run_id: str, step: int, layer: str) -> pd.DataFrame | None:
    """The stored rows of (step, layer), or None when missing, unreadable or of an older vocabulary."""
    frame = read_derived(db, TABLE, {"step": step, "layer": layer}, run_id)
    if frame is None or set(frame["metric"]) != metrics_of(layer):
        return None
    return frame


def _frame(values: dict[str, float], step: int, layer: str) -> pd.DataFrame:
    return pd.DataFrame({
        "step": np.full(len(values), step, dtype=np.int64),
        "layer": [layer] * len(values),
        "metric": list(values),
        "value": np.asarray(list(values.values()), dtype=np.float64),
    })


def measure(db, run_id: str, step: int, layer: str, data: RunData, random_state: int) -> pd.DataFrame:
    """Compute the rows of (step, layer), store them, and return them as stored."""
    if layer == "pixels":
        values = layer_measures(data.pixels, data.labels, data.colour, random_state)
    elif layer == "mean_image":
        values = mean_image_measures(data.pixels, data.labels)
    else:
        X = db.activations(step, layer, run_id)  # NotFoundError naming the available layers
        values = layer_measures(X, data.labels, data.colour, random_state)
    db.put_derived(TABLE, {"step": step, "layer": layer}, _frame(values, step, layer), run_id)
    return db.get_derived(TABLE, {"step": step, "layer": layer}, run_id)


def step_layers(db, run_id: str) -> list[tuple[int, str]]:
    """Every (step, layer) of the run, baselines first as (first step, name); unreadable steps left out."""
    out = [(first_step(db, run_id), b) for b in BASELINES]
    for step in db.steps(run_id):
        try:
            out += [(step, layer) for layer in db.layers(step, run_id)]
        except (CorruptDataError, NotFoundError):
            continue
    return out
