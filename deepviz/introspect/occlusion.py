"""Occlusion sensitivity (Zeiler & Fergus 2014), through Captum's ``Occlusion``."""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np
import torch
from captum.attr import Occlusion
from torch import Tensor, nn

from deepviz.errors import ConfigurationError

from .common import _as_batch, _check_target, _check_unit, _forward, _inspecting, _is_index, _module, _unit_value

def _check_window(size: Any, stride: Any, h: int, w: int) -> None:
    if not _is_index(size) or size < 1 or size > min(h, w):
        raise ConfigurationError(
            f"size={size!r} must be an int in 1..{min(h, w)} (the occluder must fit in the {h}x{w} image)."
        )
    if not _is_index(stride) or not 1 <= stride <= size:
        raise ConfigurationError(
            f"stride={stride!r} must be an int in 1..size={size}; a stride larger than the occluder "
            "would leave pixels between windows never occluded."
        )
    for dim, extent in (("height", h), ("width", w)):
        left = (extent - size) % stride
        if left:
            raise ConfigurationError(
                f"size={size}, stride={stride} leave the last {left} pixel(s) of the image {dim} ({extent}) "
                f"never occluded; choose them so that ({extent} - size) is a multiple of stride "
                "(stride=1 always works)."
            )


def _check_occluder(target: Any, baseline: Any, unit: Any, layer: Any, batch_size: Any) -> None:
    if not isinstance(baseline, numbers.Real):
        raise ConfigurationError(f"baseline={baseline!r} must be a number (the occluder's value, in input units).")
    if not _is_index(batch_size) or batch_size < 1:
        raise ConfigurationError(f"batch_size={batch_size!r} must be an int >= 1.")
    if (layer is None) != (unit is None):
        raise ConfigurationError(
            f"occlusion got layer={layer!r}, unit={unit!r}: give both to track a unit's activation, "
            "or neither to track the target logit."
        )
    if layer is not None and target is not None:
        raise ConfigurationError(
            f"occlusion got target={target!r} and layer={layer!r}: the score is either the target logit "
            "or a unit's activation; pass target=None with layer and unit."
        )


def occlusion(
    model: nn.Module,
    image: Tensor,
    target: int | None,
    size: int = 4,
    stride: int = 2,
    baseline: float = 0.0,
    unit: int | None = None,
    layer: str | None = None,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Occlusion sensitivity (Zeiler & Fergus 2014): ``(H, W)`` drop in the
    target logit when a ``size``×``size`` patch (all channels) around each
    pixel is replaced by ``baseline``, averaged over the windows covering it.

    With ``layer`` and ``unit`` (and ``target=None``) the drop is in that
    unit's activation (a conv channel's spatial mean) instead.  Positive means
    the region supports the score.  ``batch_size`` occluded copies run per
    forward pass.
    """
    x = _as_batch(image, model)
    _, c, h, w = x.shape
    _check_window(size, stride, h, w)
    _check_occluder(target, baseline, unit, layer, batch_size)
    module = _module(model, layer) if layer is not None else None
    with _inspecting(model), torch.no_grad():
        logits, out = _forward(model, x, module)
        kwargs: dict[str, Any] = {}
        if module is None:
            kwargs["target"] = _check_target(target, logits.shape[1])
            forward_func: Callable[[Tensor], Tensor] = model
        else:
            unit = _check_unit(unit, layer, out)

            def forward_func(inp: Tensor) -> Tensor:
                return _unit_value(_forward(model, inp, module)[1], unit)

        attr = Occlusion(forward_func).attribute(
            x,
            sliding_window_shapes=(c, size, size),
            strides=(c, stride, stride),
            baselines=float(baseline),
            perturbations_per_eval=batch_size,
            **kwargs,
        )
    # The window spans all channels, so every channel carries the same map.
    return attr[0, 0].detach().cpu().float().numpy()
