"""What every introspection function shares: finding a layer, taking one image,
running the model in eval mode with its state restored, and checking arguments."""

from __future__ import annotations

import contextlib
import numbers
import warnings
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from deepviz.errors import ConfigurationError, NotFoundError

REDUCTIONS = ("max_abs", "sum", "none")

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
