"""Every attribution method by name, and :func:`attribute`, the one entry point that checks parameters."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
from torch import Tensor, nn

from deepviz.errors import ConfigurationError, NotFoundError

from .maps import deconvnet, grad_cam, gradient_x_input, guided_backprop, layer_gradient, saliency, smoothgrad
from .occlusion import occlusion


ATTRIBUTIONS: dict[str, Callable[..., np.ndarray]] = {
    "saliency": saliency,
    "smoothgrad": smoothgrad,
    "gradient_x_input": gradient_x_input,
    "guided_backprop": guided_backprop,
    "deconvnet": deconvnet,
    "grad_cam": grad_cam,
    "layer_gradient": layer_gradient,
    "occlusion": occlusion,
}


def attribute(method: str, model: nn.Module, image: Tensor, target: int | None = None, **params: Any) -> np.ndarray:
    """Run the attribution ``method`` (a key of :data:`ATTRIBUTIONS`).

    ``layer_gradient`` takes no target (pass ``layer=`` and optionally
    ``unit=``); unknown parameters are refused with the method's own list.
    """
    if method not in ATTRIBUTIONS:
        raise NotFoundError(f"Unknown attribution method {method!r}. Available: {', '.join(ATTRIBUTIONS)}.")
    fn = ATTRIBUTIONS[method]
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("model", "image")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigurationError(
            f"{method} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}."
        )
    if "target" in accepted:
        params["target"] = target
    elif target is not None:
        raise ConfigurationError(
            f"{method} takes no target (got target={target!r}); it explains a layer: pass layer= and unit=."
        )
    return fn(model, image, **params)
