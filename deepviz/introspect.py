"""Look inside a trained CNN: filters, activation maps, attributions,
occlusion, activation maximisation and the probe images that excite a unit.

One calling shape throughout: ``fn(model, image, target, **params)`` where
``image`` is a float tensor ``(C, H, W)`` or a batch of one ``(1, C, H, W)``,
``target`` is a class index and ``layer`` is a module name as
``model.named_modules()`` reports it.  Results are numpy ``float32`` arrays.

Every function that runs the model puts it in eval mode for the computation
and afterwards restores each module's previous mode and each parameter's
``requires_grad``; parameters' ``.grad`` are never written (gradients are taken
with respect to the image only).

Attributions come from Captum (``Saliency``, ``NoiseTunnel``,
``InputXGradient``, ``GuidedBackprop``, ``Deconvolution``, ``LayerGradCam``,
``NeuronGradient``, ``Occlusion``); activation maximisation is written here
because Captum has no released equivalent.

Importing this module loads torch, captum and numpy only: no Lightning, no
storage (pandas, which brings pyarrow, is imported by the two functions that
return DataFrames).  ``top_units``/``unit_history`` read activations through any object
with the store's ``activations``/``probes``/``steps`` methods.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    InputXGradient,
    LayerAttribution,
    LayerGradCam,
    NeuronGradient,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from deepviz.errors import ConfigurationError, CorruptDataError, NotFoundError

if TYPE_CHECKING:  # pandas 3 imports pyarrow; keep it out of `import deepviz.introspect`
    import pandas as pd

__all__ = [
    "ATTRIBUTIONS",
    "MaxActResult",
    "activation_maps",
    "attribute",
    "deconvnet",
    "filters",
    "grad_cam",
    "gradient_x_input",
    "grid",
    "guided_backprop",
    "layer_gradient",
    "maximize_activation",
    "occlusion",
    "saliency",
    "smoothgrad",
    "top_k_per_unit",
    "top_units",
    "unit_history",
]

REDUCTIONS = ("max_abs", "sum", "none")


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------


def _module(model: nn.Module, name: Any) -> nn.Module:
    modules = dict(model.named_modules())
    if not isinstance(name, str) or not name or name not in modules:
        available = ", ".join(n for n in modules if n) or "(none)"
        raise NotFoundError(f"Unknown layer {name!r}. Available: {available}.")
    return modules[name]


def _conv_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _conv_layer(model: nn.Module, layer: str | None, *, last: bool, what: str) -> tuple[str, nn.Module]:
    """The named Conv2d, or the first/last one when ``layer`` is None."""
    convs = _conv_names(model)
    if layer is None:
        if not convs:
            raise ConfigurationError(
                f"{what} needs a Conv2d layer, but the model has none; pass layer= naming a module "
                "with a spatial output."
            )
        layer = convs[-1] if last else convs[0]
    return layer, _module(model, layer)


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _as_batch(image: Any, model: nn.Module, name: str = "image") -> Tensor:
    """A detached float copy ``(1, C, H, W)`` on the model's device."""
    if not isinstance(image, Tensor):
        raise ConfigurationError(
            f"{name} must be a torch.Tensor of shape (C, H, W) or (1, C, H, W), got {type(image).__name__}; "
            "convert with torch.as_tensor(...).float()."
        )
    if not image.is_floating_point():
        raise ConfigurationError(
            f"{name} must be a float tensor, got dtype {image.dtype}; convert with .float() "
            "(and scale the way the model was trained)."
        )
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ConfigurationError(
            f"{name} must have shape (C, H, W) or (1, C, H, W), got {tuple(image.shape)}; "
            "these functions explain one image at a time."
        )
    return image.detach().to(_device(model)).clone()


@contextlib.contextmanager
def _inspecting(model: nn.Module) -> Iterator[None]:
    """Eval mode and gradients on for the computation; every module's mode and
    every parameter's ``requires_grad`` as they were afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    try:
        with torch.enable_grad(), warnings.catch_warnings():
            # Captum announces each time that it hooks ReLUs and that it turned on
            # the input's requires_grad: both are expected here, not news to the user.
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
            yield
    finally:
        # Restored module by module rather than model.train(mode): a model may
        # have been left with mixed modes on purpose (e.g. frozen BatchNorm).
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)


def _forward(model: nn.Module, x: Tensor, module: nn.Module | None = None) -> tuple[Tensor, Tensor | None]:
    """Logits, and the output of ``module`` when given (via a forward hook)."""
    captured: list[Tensor] = []
    handle = None
    if module is not None:
        # Clone: an in-place op after the layer (nn.ReLU(inplace=True)) would
        # otherwise rewrite the captured output, as Captum's hooks also guard against.
        handle = module.register_forward_hook(
            lambda _m, _i, out: captured.append(out.clone() if isinstance(out, Tensor) else out)
        )
    try:
        logits = model(x)
    finally:
        if handle is not None:
            handle.remove()
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ConfigurationError(
            f"The model must return logits of shape (N, classes), got {shape}; wrap it so forward() "
            "returns one tensor of class scores."
        )
    layer_out = captured[0] if captured else None
    if module is not None and not isinstance(layer_out, Tensor):
        raise ConfigurationError(
            f"The layer's output is a {type(layer_out).__name__}, not a tensor; pick a layer that "
            "returns one tensor."
        )
    return logits, layer_out


def _is_index(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_target(target: Any, n_classes: int) -> int:
    if not _is_index(target) or not 0 <= target < n_classes:
        raise ConfigurationError(
            f"target={target!r} is not a class index: the model has {n_classes} classes, "
            f"so target must be an int in 0..{n_classes - 1}."
        )
    return int(target)


def _check_unit(unit: Any, layer: str, out: Tensor, word: str = "unit") -> int:
    n = out.shape[1] if out.ndim >= 2 else 0
    if not _is_index(unit) or not 0 <= unit < n:
        raise ConfigurationError(
            f"{word}={unit!r} is out of range for layer {layer!r}, which has {n} "
            f"{'channels' if out.ndim == 4 else 'units'} (output shape {tuple(out.shape)}); "
            f"use an int in 0..{n - 1}."
        )
    return int(unit)


def _unit_value(out: Tensor, unit: int) -> Tensor:
    """One value per example: a unit's activation, or a channel's spatial mean."""
    return out[:, unit].reshape(out.shape[0], -1).mean(1)


def _check_spatial(out: Tensor, layer: str, model: nn.Module, what: str) -> None:
    if out.ndim != 4:
        raise ConfigurationError(
            f"{what} needs a layer with a spatial (N, C, H, W) output; {layer!r} gives "
            f"{tuple(out.shape)}. Conv layers: {', '.join(_conv_names(model)) or '(none)'}."
        )


def _validated(model: nn.Module, x: Tensor, target: Any) -> int:
    with torch.no_grad():
        logits, _ = _forward(model, x)
    return _check_target(target, logits.shape[1])


def _reduce(attr: Tensor, reduce: str) -> np.ndarray:
    """``(1, C, H, W)`` attribution -> ``(H, W)`` (or ``(C, H, W)`` for "none")."""
    if reduce == "max_abs":
        out = attr[0].abs().amax(0)
    elif reduce == "sum":
        out = attr[0].sum(0)
    else:
        out = attr[0]
    return out.detach().cpu().numpy().astype(np.float32)


def _check_reduce(reduce: Any) -> str:
    if reduce not in REDUCTIONS:
        raise ConfigurationError(
            f"reduce={reduce!r} is not a reduction over channels; use one of {', '.join(REDUCTIONS)}."
        )
    return reduce


def _grad_input(x: Tensor) -> Tensor:
    return x.clone().requires_grad_(True)


# ---------------------------------------------------------------------------
# 1. filters, 2. activation maps and grids
# ---------------------------------------------------------------------------


def filters(model: nn.Module, layer: str | None = None) -> np.ndarray:
    """The weights of a Conv2d layer as small images, ``(F, h, w, 3)`` or ``(F, h, w, 1)``
    float32 in [0, 1].

    ``layer`` defaults to the first Conv2d.  A layer whose filters have 3 input
    channels is shown as RGB; any other is shown as the mean over its input
    channels (one grey image per filter).

    Normalisation is per filter and symmetric around 0: ``0.5 + w / (2 max|w|)``.
    Zero weight is mid-grey in every tile, so the sign of a weight (excitatory
    brighter, inhibitory darker; in RGB, a colour and its opponent) reads the
    same across filters, and a dead filter stays flat grey.  Per-filter min-max
    would stretch each filter to full contrast but move its zero point, making
    an all-positive filter look like an edge detector.
    """
    name, conv = _conv_layer(model, layer, last=False, what="filters")
    if not isinstance(conv, nn.Conv2d):
        raise ConfigurationError(
            f"Layer {name!r} is a {type(conv).__name__}, not a Conv2d; filters are shown for "
            f"Conv2d layers: {', '.join(_conv_names(model)) or '(none)'}."
        )
    return filter_images(conv.weight.detach().cpu().float().numpy())


def filter_images(weights: np.ndarray) -> np.ndarray:
    """Conv weights ``(out, in, kh, kw)`` -> display tiles ``(out, kh, kw, 3 or 1)`` float32 in [0, 1].

    RGB when the filters read 3 input channels, else the mean over the input
    channels; each filter scaled symmetrically around 0 (see ``filters``).
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 4:
        raise ConfigurationError(f"Conv weights must be (out, in, kh, kw); got shape {w.shape}.")
    w = w.transpose(0, 2, 3, 1) if w.shape[1] == 3 else w.mean(1, keepdims=True).transpose(0, 2, 3, 1)
    scale = np.maximum(np.abs(w).reshape(len(w), -1).max(1, initial=0.0), np.finfo(np.float32).tiny)
    return np.clip(0.5 + w / (2 * scale[:, None, None, None]), 0.0, 1.0).astype(np.float32)


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


# ---------------------------------------------------------------------------
# 3. attributions
# ---------------------------------------------------------------------------


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
    reduce = _check_reduce(reduce)
    _warn_without_relu_modules(model, "guided_backprop")
    x = _as_batch(image, model)
    with _inspecting(model):
        target = _validated(model, x, target)
        attr = GuidedBackprop(model).attribute(_grad_input(x), target=target)
    return _reduce(attr, reduce)


def deconvnet(model: nn.Module, image: Tensor, target: int, *, reduce: str = "max_abs") -> np.ndarray:
    """Deconvnet (Zeiler & Fergus 2014) via Captum's ``Deconvolution``.  Same
    ``nn.ReLU``-module caveat as :func:`guided_backprop`."""
    reduce = _check_reduce(reduce)
    _warn_without_relu_modules(model, "deconvnet")
    x = _as_batch(image, model)
    with _inspecting(model):
        target = _validated(model, x, target)
        attr = Deconvolution(model).attribute(_grad_input(x), target=target)
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


# ---------------------------------------------------------------------------
# 4. occlusion
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# 5. activation maximisation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MaxActResult:
    """What :func:`maximize_activation` found.

    ``image`` is ``(C, H, W)`` float32 in model-input units; ``score`` the
    target logit (or channel mean) of that final image; ``probability`` the
    target's softmax probability (None when maximising a channel);
    ``history`` the score seen at each step (on the jittered image if
    ``jitter`` > 0).
    """

    image: np.ndarray
    score: float
    probability: float | None
    history: list[float]


def _image_shape(model: nn.Module, image_shape: Any, start: Any) -> tuple[int, int, int]:
    if image_shape is None and isinstance(start, Tensor) and start.ndim >= 3:
        image_shape = tuple(start.shape[-3:])
    if image_shape is None:
        example = getattr(model, "example_input_array", None)
        if isinstance(example, Tensor) and example.ndim in (3, 4):
            image_shape = tuple(example.shape[-3:])
    for attr in ("image_shape", "input_shape"):
        if image_shape is None and getattr(model, attr, None) is not None:
            image_shape = tuple(getattr(model, attr))[-3:]
    if image_shape is None:
        raise ConfigurationError(
            "image_shape was not given and the model has no example_input_array, image_shape or "
            "input_shape attribute; pass image_shape=(C, H, W)."
        )
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(_is_index(s) and s > 0 for s in shape):
        raise ConfigurationError(f"image_shape={image_shape!r} must be three positive ints (C, H, W).")
    return shape  # type: ignore[return-value]


def _start_image(start: Any, shape: tuple[int, int, int], value_range: tuple[float, float], gen: torch.Generator) -> Tensor:
    if isinstance(start, Tensor):
        x = start.detach().float()
        x = x.unsqueeze(0) if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[0] != 1 or tuple(x.shape[1:]) != shape:
            raise ConfigurationError(
                f"start has shape {tuple(start.shape)}, but the image shape is {shape}; pass a (C, H, W) "
                "tensor of that shape, or start='zeros' / 'noise'."
            )
        return x.clone()
    if isinstance(start, str) and start == "zeros":
        return torch.zeros(1, *shape)
    if isinstance(start, str) and start == "noise":
        lo, hi = value_range
        return (lo + hi) / 2 + 0.05 * (hi - lo) * torch.randn(1, *shape, generator=gen)
    raise ConfigurationError(f"start={start!r} must be 'zeros', 'noise' or an image tensor (C, H, W).")


def _total_variation(x: Tensor) -> Tensor:
    # Mahendran & Vedaldi's TV with beta=2 (differentiable everywhere), as a
    # mean so the weight does not depend on the image size.
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def _range_penalty(x: Tensor, lo: float, hi: float) -> Tensor:
    # Bounded-range penalty: zero inside [lo, hi], quadratic outside.
    return (F.relu(lo - x).pow(2) + F.relu(x - hi).pow(2)).mean()


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    # Separable depthwise blur; replicate padding works for images smaller than the kernel.
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _zero_below_percentile(x: Tensor, per_pixel: Tensor, pct: float) -> Tensor:
    threshold = torch.quantile(per_pixel.flatten().float(), pct / 100.0)
    return x * (per_pixel >= threshold).unsqueeze(1).to(x.dtype)


def _check_number(name: str, value: Any, lo: float, hi: float = math.inf, *, lo_open: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and value < hi
    if not ok:
        low = f"> {lo}" if lo_open else f">= {lo}"
        high = "" if hi == math.inf else f" and < {hi}"
        raise ConfigurationError(f"{name}={value!r} must be a number {low}{high}.")
    return float(value)


def maximize_activation(
    model: nn.Module,
    target: int | None = None,
    *,
    layer: str | None = None,
    channel: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    start: str | Tensor = "zeros",
    steps: int = 200,
    lr: float = 0.05,
    l2: float = 0.0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    clip_norm_pct: float = 0.0,
    clip_contrib_pct: float = 0.0,
    tv: float = 0.0,
    bound: float = 0.0,
    value_range: tuple[float, float] = (-1.0, 1.0),
    jitter: int = 0,
    random_state: int = 0,
) -> MaxActResult:
    """Synthesise an image that maximises a class logit (``target``) or a
    channel's mean activation (``layer`` + ``channel``) by gradient ascent.

    Each step moves the image by ``lr * g / mean|g|``: normalising the gradient
    makes ``lr`` a step in input units, independent of the logit's scale.
    The regularisers are off at their default and each has its own weight:

    * ``l2``: multiply the image by ``1 - l2`` after each step (L2 decay, Yosinski et al. 2015);
    * ``blur_every``/``blur_sigma``: Gaussian blur every k steps (Yosinski);
    * ``clip_norm_pct``: zero the pixels whose norm over channels is below this percentile (Yosinski);
    * ``clip_contrib_pct``: zero the pixels whose contribution ``|sum_c x*grad|`` is below this percentile (Yosinski);
    * ``tv``: total-variation penalty on the objective (Mahendran & Vedaldi 2016, beta=2);
    * ``bound``: penalty on values outside ``value_range`` (the bounded-range
      regulariser of Mahendran & Vedaldi; set ``value_range`` to your
      normalised inputs' range);
    * ``jitter``: roll the image by up to this many pixels before each forward pass (Mordvintsev et al. 2015).

    ``image_shape`` defaults from ``start`` when it is a tensor, else from
    ``model.example_input_array``, ``model.image_shape`` or ``model.input_shape``.
    ``start="noise"`` draws from ``random_state``, as does jitter.
    """
    if (layer is None) != (channel is None):
        raise ConfigurationError(
            f"maximize_activation got layer={layer!r}, channel={channel!r}: give both to maximise a "
            "channel, or neither to maximise the target class."
        )
    if (target is None) == (layer is None):
        raise ConfigurationError(
            f"maximize_activation got target={target!r}, layer={layer!r}: give a target class, or "
            "layer and channel (with target=None), not both or neither."
        )
    if not _is_index(steps) or steps < 1:
        raise ConfigurationError(f"steps={steps!r} must be an int >= 1.")
    lr = _check_number("lr", lr, 0.0, lo_open=True)
    l2 = _check_number("l2", l2, 0.0, 1.0)
    if not _is_index(blur_every) or blur_every < 0:
        raise ConfigurationError(f"blur_every={blur_every!r} must be an int >= 0 (0 turns blurring off).")
    blur_sigma = _check_number("blur_sigma", blur_sigma, 0.0, lo_open=True)
    clip_norm_pct = _check_number("clip_norm_pct", clip_norm_pct, 0.0, 100.0)
    clip_contrib_pct = _check_number("clip_contrib_pct", clip_contrib_pct, 0.0, 100.0)
    tv = _check_number("tv", tv, 0.0)
    bound = _check_number("bound", bound, 0.0)
    if not _is_index(jitter) or jitter < 0:
        raise ConfigurationError(f"jitter={jitter!r} must be an int >= 0 (pixels; 0 turns it off).")
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        lo, hi = 0.0, -1.0
    if not lo < hi:
        raise ConfigurationError(f"value_range={value_range!r} must be two numbers (low, high) with low < high.")

    shape = _image_shape(model, image_shape, start)
    gen = torch.Generator().manual_seed(random_state)
    x = _start_image(start, shape, (lo, hi), gen).to(_device(model))
    module = _module(model, layer) if layer is not None else None

    with _inspecting(model):
        with torch.no_grad():
            logits, out = _forward(model, x, module)
        if module is None:
            target = _check_target(target, logits.shape[1])
        else:
            channel = _check_unit(channel, layer, out, word="channel")

        def score_of(inp: Tensor) -> tuple[Tensor, Tensor]:
            logits, out = _forward(model, inp, module)
            return (logits[0, target] if module is None else _unit_value(out, channel)[0]), logits

        history: list[float] = []
        for i in range(steps):
            x.requires_grad_(True)
            inp = x
            if jitter:
                dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
                inp = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            score, _ = score_of(inp)
            objective = score
            if tv:
                objective = objective - tv * _total_variation(x)
            if bound:
                objective = objective - bound * _range_penalty(x, lo, hi)
            (grad,) = torch.autograd.grad(objective, x)
            history.append(float(score.detach()))
            with torch.no_grad():
                x = x.detach() + lr * grad / (grad.abs().mean() + 1e-12)
                if l2:
                    x = x * (1.0 - l2)
                if blur_every and (i + 1) % blur_every == 0:
                    x = _gaussian_blur(x, blur_sigma)
                if clip_norm_pct:
                    x = _zero_below_percentile(x, x.norm(dim=1), clip_norm_pct)
                if clip_contrib_pct:
                    x = _zero_below_percentile(x, (x * grad).sum(1).abs(), clip_contrib_pct)

        with torch.no_grad():
            score, logits = score_of(x)
            probability = float(logits.softmax(1)[0, target]) if module is None else None
    return MaxActResult(
        image=x[0].detach().cpu().float().numpy(), score=float(score), probability=probability, history=history
    )


# ---------------------------------------------------------------------------
# 6. top probe images per unit, from stored activations
# ---------------------------------------------------------------------------


def top_k_per_unit(acts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` strongest rows for every column of ``acts`` ``(N, D)``.

    Returns ``(indices, values)``, each ``(D, k)``: row indices into ``acts``
    (int64) and their activations (float32), strongest first.  Ties keep probe
    order; NaN ranks last.  ``k`` larger than N is cut to N.
    """
    acts = np.asarray(acts)
    if acts.ndim != 2 or acts.shape[0] == 0:
        raise ConfigurationError(
            f"acts must be a non-empty (N probes, D units) array, got shape {acts.shape}; pool conv maps "
            "per channel first."
        )
    if not _is_index(k) or k < 1:
        raise ConfigurationError(f"k={k!r} must be an int >= 1 (images per unit).")
    k = min(int(k), acts.shape[0])
    # Stable sort of the negation: descending, ties in probe order; NaN sorts last.
    order = np.argsort(-acts, axis=0, kind="stable")[:k].T
    values = np.take_along_axis(acts.T, order, axis=1)
    return order.astype(np.int64), values.astype(np.float32)


def _top_frame(db: Any, step: int, layer: str, k: int, run: str | None) -> pd.DataFrame:
    import pandas as pd
    acts = np.asarray(db.activations(step, layer, run=run))
    probe_ids = np.asarray(db.probes(run=run)["probe_id"])
    if acts.ndim != 2 or acts.shape[0] != len(probe_ids):
        raise CorruptDataError(
            f"Stored activations of layer {layer!r} at step {step} have shape {acts.shape}, but the run has "
            f"{len(probe_ids)} probes; the snapshot does not match the probe set."
        )
    idx, vals = top_k_per_unit(acts, k)
    d, kk = idx.shape
    return pd.DataFrame(
        {
            "unit": np.repeat(np.arange(d), kk),
            "rank": np.tile(np.arange(kk), d),
            "probe_id": probe_ids[idx.ravel()],
            "activation": vals.ravel(),
        }
    )


def top_units(db: Any, step: int, layer: str, k: int = 9, run: str | None = None) -> pd.DataFrame:
    """The top-``k`` probe images of every unit of a captured layer at ``step``,
    from the stored activations (no model needed).

    A DataFrame with columns ``unit, rank, probe_id, activation``; rank 0 is
    the strongest.  ``db`` needs ``activations(step, layer, run=)`` -> ``(N, D)``
    rows in probe order and ``probes(run=)`` with a ``probe_id`` column in the
    same order.
    """
    return _top_frame(db, step, layer, k, run)


def unit_history(db: Any, layer: str, unit: int, k: int = 9, run: str | None = None) -> pd.DataFrame:
    """The top-``k`` probe images of one unit at every stored step: a
    DataFrame with columns ``step, rank, probe_id, activation``."""
    import pandas as pd

    frames = []
    for step in db.steps(run):
        frame = _top_frame(db, step, layer, k, run)
        n_units = int(frame["unit"].max()) + 1
        if not _is_index(unit) or not 0 <= unit < n_units:
            raise ConfigurationError(
                f"unit={unit!r} is out of range for layer {layer!r}, which has {n_units} units at step {step}; "
                f"use an int in 0..{n_units - 1}."
            )
        frame = frame[frame["unit"] == unit].drop(columns="unit")
        frame.insert(0, "step", step)
        frames.append(frame)
    columns = ["step", "rank", "probe_id", "activation"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
