"""Maps of one image: a layer's activation maps, and gradient attributions (Captum)."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Callable

import numpy as np
import torch
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    InputXGradient,
    LayerAttribution,
    LayerGradCam,
    NeuronGradient,
    NoiseTunnel,
    Saliency,
)
from torch import Tensor, nn

from deepviz.errors import ConfigurationError

from .common import (
    _as_batch, _check_reduce, _check_spatial, _check_target, _check_unit, _conv_layer, _forward, _grad_input, _inspecting,
    _is_index, _module, _reduce, _unit_value, _validated,
)

def activation_maps(model: nn.Module, image: Tensor, layer: str) -> np.ndarray:
    """Every channel of a conv layer's output for one image: ``(channels, H', W')`` float32."""
    x = _as_batch(image, model)
    module = _module(model, layer)
    with _inspecting(model), torch.no_grad():
        _, out = _forward(model, x, module)
    _check_spatial(out, layer, model, "activation_maps")
    return out[0].detach().cpu().float().numpy()


def grid(maps: np.ndarray, ncols: int | None = None, pad: int = 1, pad_value: float = 0.0) -> np.ndarray:
    """Tile ``(N, h, w)`` maps (or ``(N, h, w, 1|3)`` filters) into one image.

    Returns ``(rows*(h+pad)-pad, ncols*(w+pad)-pad)``, with a trailing colour
    axis for 3-channel tiles.  ``ncols`` defaults to ``ceil(sqrt(N))``; empty
    cells and gaps are ``pad_value``.  Tiles are not rescaled: normalise first
    if the maps' ranges differ.
    """
    maps = np.asarray(maps)
    if maps.ndim == 4 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    if maps.ndim not in (3, 4) or (maps.ndim == 4 and maps.shape[-1] != 3) or maps.shape[0] == 0:
        raise ConfigurationError(
            f"grid takes a non-empty stack of maps (N, h, w) or images (N, h, w, 1|3), got shape {maps.shape}."
        )
    n, h, w = maps.shape[:3]
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if not _is_index(ncols) or ncols < 1:
        raise ConfigurationError(f"ncols={ncols!r} must be a positive int (or None for a square-ish grid).")
    if not _is_index(pad) or pad < 0:
        raise ConfigurationError(f"pad={pad!r} must be an int >= 0 (pixels between tiles).")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    dtype = np.result_type(maps.dtype, np.float32)
    out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad) + maps.shape[3:], pad_value, dtype=dtype)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = maps[i]
    return out



def saliency(model: nn.Module, image: Tensor, target: int, *, reduce: str = "max_abs") -> np.ndarray:
    """Vanilla gradient of the target logit (Simonyan et al. 2014).

    ``(H, W)``: max |gradient| over channels; ``reduce="sum"`` sums the signed
    gradient, ``reduce="none"`` returns the signed ``(C, H, W)`` gradient.
    """
    reduce = _check_reduce(reduce)
    x = _as_batch(image, model)
    with _inspecting(model):
        target = _validated(model, x, target)
        attr = Saliency(model).attribute(_grad_input(x), target=target, abs=False)
    return _reduce(attr, reduce)


def smoothgrad(
    model: nn.Module,
    image: Tensor,
    target: int,
    n_samples: int = 25,
    stdev: float = 0.15,
    random_state: int = 0,
    *,
    reduce: str = "max_abs",
) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies.

    ``stdev`` is the noise level as a fraction of the image's value range
    (``max - min``), as in the paper (10-20% works well); for a constant image
    it is used as an absolute standard deviation.  The signed gradients are
    averaged, then reduced over channels like :func:`saliency`.
    """
    reduce = _check_reduce(reduce)
    if not _is_index(n_samples) or n_samples < 1:
        raise ConfigurationError(f"n_samples={n_samples!r} must be an int >= 1 (noisy copies to average).")
    if not isinstance(stdev, numbers.Real) or stdev < 0:
        raise ConfigurationError(f"stdev={stdev!r} must be a number >= 0 (fraction of the image's value range).")
    x = _as_batch(image, model)
    spread = float(x.max() - x.min())
    sigma = float(stdev) * (spread if spread > 0 else 1.0)
    with _inspecting(model):
        target = _validated(model, x, target)
        # Captum draws the noise from torch's global generator: fork it so the
        # result depends on random_state only and the caller's stream is untouched.
        devices = [x.device.index or 0] if x.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(random_state)
            attr = NoiseTunnel(Saliency(model)).attribute(
                _grad_input(x), nt_type="smoothgrad", nt_samples=n_samples, stdevs=sigma, target=target, abs=False
            )
    return _reduce(attr, reduce)


def gradient_x_input(model: nn.Module, image: Tensor, target: int, *, reduce: str = "sum") -> np.ndarray:
    """Gradient × input (Shrikumar et al. 2016): each pixel's first-order
    contribution to the target logit.  ``(H, W)`` signed, summed over channels
    by default (the contribution of the whole pixel)."""
    reduce = _check_reduce(reduce)
    x = _as_batch(image, model)
    with _inspecting(model):
        target = _validated(model, x, target)
        attr = InputXGradient(model).attribute(_grad_input(x), target=target)
    return _reduce(attr, reduce)


def _warn_without_relu_modules(model: nn.Module, method: str) -> None:
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        warnings.warn(
            f"{method}: the model has no nn.ReLU modules, so Captum has nothing to override and the "
            "result is the plain gradient. Models that call F.relu / torch.relu in forward() must use "
            "nn.ReLU modules for this method.",
            UserWarning,
            stacklevel=3,
        )


def guided_backprop(model: nn.Module, image: Tensor, target: int, *, reduce: str = "max_abs") -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015).

    Captum implements it by hooking ``nn.ReLU`` *modules*: a model that applies
    ``F.relu``/``torch.relu`` functionally in ``forward`` is not affected and
    gets the plain gradient (a warning says so when the model has no ``nn.ReLU``
    module).  In-place ReLUs work.  ``reduce="none"`` gives the ``(C, H, W)``
    colour map usually shown for this method.
    """
    return _relu_rule(GuidedBackprop, "guided_backprop", model, image, target, reduce)


def deconvnet(model: nn.Module, image: Tensor, target: int, *, reduce: str = "max_abs") -> np.ndarray:
    """Deconvnet (Zeiler & Fergus 2014) via Captum's ``Deconvolution``.  Same
    ``nn.ReLU``-module caveat as :func:`guided_backprop`."""
    return _relu_rule(Deconvolution, "deconvnet", model, image, target, reduce)


def _relu_rule(method, name: str, model: nn.Module, image: Tensor, target: int, reduce: str) -> np.ndarray:
    """A Captum method that overrides the gradient of ``nn.ReLU`` modules (guided backprop, deconvnet)."""
    reduce = _check_reduce(reduce)
    _warn_without_relu_modules(model, name)
    x = _as_batch(image, model)
    with _inspecting(model):
        target = _validated(model, x, target)
        attr = method(model).attribute(_grad_input(x), target=target)
    return _reduce(attr, reduce)


def grad_cam(model: nn.Module, image: Tensor, target: int, layer: str | None = None, *, relu: bool = True) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) at ``layer`` (default: the last Conv2d),
    bilinearly upsampled to the image size: ``(H, W)``.  ``relu=False`` keeps
    the negative evidence."""
    x = _as_batch(image, model)
    name, module = _conv_layer(model, layer, last=True, what="grad_cam")
    with _inspecting(model):
        with torch.no_grad():
            logits, out = _forward(model, x, module)
        target = _check_target(target, logits.shape[1])
        _check_spatial(out, name, model, "grad_cam")
        cam = LayerGradCam(model, module).attribute(_grad_input(x), target=target, relu_attributions=relu)
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam[0, 0].detach().cpu().float().numpy()


def layer_gradient(
    model: nn.Module, image: Tensor, layer: str, unit: int | None = None, *, reduce: str = "max_abs"
) -> np.ndarray:
    """Gradient of an intermediate layer's activation with respect to the image.

    With ``unit`` the objective is that unit's activation (for a conv layer,
    the channel's spatial mean); without, the sum of the whole layer's output.
    Reduced over channels like :func:`saliency`.
    """
    reduce = _check_reduce(reduce)
    x = _as_batch(image, model)
    module = _module(model, layer)
    with _inspecting(model):
        with torch.no_grad():
            _, out = _forward(model, x, module)
        if unit is None:
            selector: Callable[[Tensor], Tensor] = lambda o: o.reshape(o.shape[0], -1).sum(1)
        else:
            unit = _check_unit(unit, layer, out)
            selector = lambda o: _unit_value(o, unit)  # noqa: E731
        attr = NeuronGradient(model, module).attribute(_grad_input(x), neuron_selector=selector)
    return _reduce(attr, reduce)
