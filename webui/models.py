"""Model access for the web UI: the run's model at a step, rebuilt once and cached on the app.

``deepviz.models.load_weights`` decides which weights a step has (its stored
state dict or a checkpoint that holds that step); every answer computed from a
model carries ``Loaded.weights`` (``StepModel.describe()``) so the UI can say
which weights it used.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from deepviz.models import load_weights

from flask import current_app

from .params import db
from .state import state


@dataclass
class Loaded:
    """A model rebuilt at one step, the output shape and type of each of its
    modules on a probe image, the weights it came from, and a lock: Captum and
    capture hook the model while they compute, so two requests must not run
    the same model object at once."""

    model: Any
    weights: dict
    shapes: dict[str, tuple[int, ...]]
    types: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def convs(self) -> list[str]:
        return [n for n, t in self.types.items() if t == "Conv2d"]


def _module_shapes(model, x) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    import torch

    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue
        handles.append(module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)) if isinstance(out, torch.Tensor) else None
        ))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    types = {name: type(m).__name__ for name, m in model.named_modules() if name in shapes}
    return shapes, types


def model_at(rid: str, step: int) -> Loaded:
    """The run's model at ``step`` (NotFoundError, a 404, names the steps that have weights)."""

    def build() -> Loaded:
        import torch

        loaded = load_weights(db(), step, rid, allow_checkpoints_from=current_app.config["TRUSTED_CHECKPOINT_DIRS"])
        x = torch.as_tensor(db().stored_inputs(rid).rows(slice(0, 1)))
        shapes, types = _module_shapes(loaded.model, x)
        return Loaded(loaded.model, loaded.describe(), shapes, types)

    return state().models.get_or_compute((rid, step), build)[0]
