"""Conv filters as small images: one normalisation, used by ``filters`` and the web UI's filter panel."""

from __future__ import annotations

import numpy as np
from torch import nn

from deepviz.errors import ConfigurationError

from .common import _conv_layer, _conv_names


def filter_images(weights: np.ndarray, *, rgb: bool | None = None) -> np.ndarray:
    """A conv weight ``(out, in, kh, kw)`` as display tiles ``(out, kh, kw, 3)`` or ``(out, kh, kw, 1)``, float32 in [0, 1].

    ``rgb=True`` shows each filter's 3 input channels as colours (the first
    layer of a colour-image model); ``rgb=False`` the mean over its input
    channels, one grey tile per filter.  By default, filters with 3 input
    channels are shown as RGB; a caller that knows the model's input (the web
    UI knows the run's input shape) says so.

    One scale for the whole layer, symmetric around 0: ``0.5 + w / (2 max|w|)``
    with the maximum over every filter of the layer.  Zero weight is mid-grey
    in every tile, so the sign of a weight (excitatory brighter, inhibitory
    darker; in RGB, a colour and its opponent) reads the same across filters;
    and because filters share the scale, a filter whose weights shrank towards
    zero fades to grey beside its live neighbours, where a per-filter scale
    would stretch it back to full contrast and hide that it died.  Min-max
    scaling would also move the zero point, making an all-positive filter
    look like an edge detector.
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 4 or 0 in w.shape:
        raise ConfigurationError(f"Conv weights must be (out, in, kh, kw); got shape {w.shape}. Pass a Conv2d's weight.")
    if not np.isfinite(w).all():
        raise ConfigurationError("Conv weights contain NaN or inf; a diverged layer has no image to show.")
    rgb = w.shape[1] == 3 if rgb is None else rgb
    if rgb and w.shape[1] != 3:
        raise ConfigurationError(f"rgb=True needs 3 input channels; these weights have {w.shape[1]}. Pass rgb=False.")
    tiles = np.transpose(w, (0, 2, 3, 1)) if rgb else w.mean(axis=1)[..., None]
    scale = max(float(np.abs(tiles).max()), np.finfo(np.float32).tiny)
    return np.clip(0.5 + tiles / (2 * scale), 0.0, 1.0).astype(np.float32)


def filters(model: nn.Module, layer: str | None = None) -> np.ndarray:
    """The weights of a Conv2d layer (default: the first) as :func:`filter_images` tiles."""
    name, conv = _conv_layer(model, layer, last=False, what="filters")
    if not isinstance(conv, nn.Conv2d):
        raise ConfigurationError(
            f"Layer {name!r} is a {type(conv).__name__}, not a Conv2d; filters are shown for "
            f"Conv2d layers: {', '.join(_conv_names(model)) or '(none)'}."
        )
    return filter_images(conv.weight.detach().cpu().float().numpy())
