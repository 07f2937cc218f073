"""Activation maximisation: synthesise an image that a class or a channel responds to most.

Written here because Captum has no released equivalent.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepviz.errors import ConfigurationError

from .common import _check_target, _check_unit, _device, _forward, _inspecting, _is_index, _module, _unit_value

#: A value further than this fraction of the range's width beyond a bound counts as saturated.
SATURATION_MARGIN = 0.02
#: A result whose saturated fraction reaches this is out of distribution when its score rose.
#: Measured on the CIFAR-10 subset run (alexnet-small): the probe images score 0 by construction
#: (the range is theirs), the UI's default ascent gave 0.65 at a class score of ~170 (p = 100 %).
OOD_SATURATION = 0.10


def saturation_fraction(image, value_range: tuple[float, float], margin: float = SATURATION_MARGIN) -> float:
    """Fraction of the values of ``image`` beyond ``value_range`` by more than ``margin`` of its width.

    With ``value_range`` the data's range (the web UI passes the probe
    images' minimum and maximum), no data image has such a value, and the
    display has to clip every one of them: they are what looks saturated.
    Gradient ascent without strong regularisers drives pixels far out; a high
    score from such an image says how the model extrapolates, not what it
    learnt from images like its data.
    """
    lo, hi = (float(v) for v in value_range)
    if not lo < hi:
        raise ConfigurationError(f"value_range={value_range!r} must be (low, high) with low < high.")
    if not 0 <= margin < 1:
        raise ConfigurationError(f"margin={margin!r} must be in [0, 1): a fraction of the range's width.")
    x = np.asarray(image, dtype=np.float64)
    if x.size == 0:
        raise ConfigurationError("image is empty; there is no saturation to measure.")
    edge = margin * (hi - lo)
    return float(((x < lo - edge) | (x > hi + edge)).mean())


@dataclass(frozen=True)
class MaxActResult:
    """What :func:`maximize_activation` found.

    ``image`` is ``(C, H, W)`` float32 in model-input units; ``score`` the
    target logit (or channel mean) of that final image; ``probability`` the
    target's softmax probability (None when maximising a channel);
    ``history`` the score seen at each step (on the jittered image if
    ``jitter`` > 0); ``saturation`` the :func:`saturation_fraction` of the
    image in ``value_range``; ``out_of_distribution`` is true when the score
    rose but ``saturation`` reached :data:`OOD_SATURATION`: the image is
    saturated noise that excites the model, not an image like its data.
    """

    image: np.ndarray
    score: float
    probability: float | None
    history: list[float]
    saturation: float
    out_of_distribution: bool


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


@dataclass(frozen=True)
class _Ascent:
    """The checked settings of one gradient ascent (see :func:`maximize_activation`)."""

    steps: int
    lr: float
    l2: float
    blur_every: int
    blur_sigma: float
    clip_norm_pct: float
    clip_contrib_pct: float
    tv: float
    bound: float
    lo: float
    hi: float
    jitter: int


def _check_choice(target: Any, layer: Any, channel: Any) -> None:
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


def _checked(steps, lr, l2, blur_every, blur_sigma, clip_norm_pct, clip_contrib_pct, tv, bound,
             value_range, jitter) -> _Ascent:
    if not _is_index(steps) or steps < 1:
        raise ConfigurationError(f"steps={steps!r} must be an int >= 1.")
    if not _is_index(blur_every) or blur_every < 0:
        raise ConfigurationError(f"blur_every={blur_every!r} must be an int >= 0 (0 turns blurring off).")
    if not _is_index(jitter) or jitter < 0:
        raise ConfigurationError(f"jitter={jitter!r} must be an int >= 0 (pixels; 0 turns it off).")
    reals = dict(
        lr=_check_number("lr", lr, 0.0, lo_open=True),
        l2=_check_number("l2", l2, 0.0, 1.0),
        blur_sigma=_check_number("blur_sigma", blur_sigma, 0.0, lo_open=True),
        clip_norm_pct=_check_number("clip_norm_pct", clip_norm_pct, 0.0, 100.0),
        clip_contrib_pct=_check_number("clip_contrib_pct", clip_contrib_pct, 0.0, 100.0),
        tv=_check_number("tv", tv, 0.0),
        bound=_check_number("bound", bound, 0.0),
    )
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        lo, hi = 0.0, -1.0
    if not lo < hi:
        raise ConfigurationError(f"value_range={value_range!r} must be two numbers (low, high) with low < high.")
    return _Ascent(steps=steps, blur_every=blur_every, jitter=jitter, lo=lo, hi=hi, **reals)


def _step(x: Tensor, grad: Tensor, i: int, a: _Ascent) -> Tensor:
    """One normalised gradient step, then the image-space regularisers."""
    x = x.detach() + a.lr * grad / (grad.abs().mean() + 1e-12)
    if a.l2:
        x = x * (1.0 - a.l2)
    if a.blur_every and (i + 1) % a.blur_every == 0:
        x = _gaussian_blur(x, a.blur_sigma)
    if a.clip_norm_pct:
        x = _zero_below_percentile(x, x.norm(dim=1), a.clip_norm_pct)
    if a.clip_contrib_pct:
        x = _zero_below_percentile(x, (x * grad).sum(1).abs(), a.clip_contrib_pct)
    return x


def _ascend(x: Tensor, score_of, a: _Ascent, gen: torch.Generator) -> tuple[Tensor, list[float]]:
    history: list[float] = []
    for i in range(a.steps):
        x.requires_grad_(True)
        inp = x
        if a.jitter:
            dy, dx = torch.randint(-a.jitter, a.jitter + 1, (2,), generator=gen).tolist()
            inp = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        score, _ = score_of(inp)
        objective = score
        if a.tv:
            objective = objective - a.tv * _total_variation(x)
        if a.bound:
            objective = objective - a.bound * _range_penalty(x, a.lo, a.hi)
        (grad,) = torch.autograd.grad(objective, x)
        history.append(float(score.detach()))
        with torch.no_grad():
            x = _step(x, grad, i, a)
    return x, history


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
    _check_choice(target, layer, channel)
    a = _checked(steps, lr, l2, blur_every, blur_sigma, clip_norm_pct, clip_contrib_pct, tv, bound,
                 value_range, jitter)
    shape = _image_shape(model, image_shape, start)
    gen = torch.Generator().manual_seed(random_state)
    x = _start_image(start, shape, (a.lo, a.hi), gen).to(_device(model))
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

        x, history = _ascend(x, score_of, a, gen)
        with torch.no_grad():
            score, logits = score_of(x)
            probability = float(logits.softmax(1)[0, target]) if module is None else None
    image = x[0].detach().cpu().float().numpy()
    saturation = saturation_fraction(image, (a.lo, a.hi))
    return MaxActResult(
        image=image, score=float(score), probability=probability, history=history, saturation=saturation,
        out_of_distribution=bool(float(score) > history[0] and saturation >= OOD_SATURATION),
    )
