"""Capture decides *what* a snapshot holds: layer outputs, probabilities, loss, weights.

Forward hooks on the probe set, in eval mode under ``no_grad``, the model
restored to its previous mode afterwards. No Lightning or storage imports here.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .capture_pool import gap_layers, hook_targets
from .errors import ConfigurationError


def linear_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name]


def conv_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and name]


def resolve_layers(model: nn.Module, layers: list[str] | None = None) -> list[str]:
    """The layers to capture: ``layers`` checked against the model, or every conv's pooled output
    (``<conv>.gap``, see capture_pool) and every ``Linear``."""
    modules = hook_targets(model)
    available = [n for n in modules if n]
    if layers is None:
        found = gap_layers(model) + linear_layers(model)
        if not found:
            raise ConfigurationError(
                f"{type(model).__name__} has no conv or nn.Linear layer to capture by default. Name the layers to "
                f"capture with StatsCallback(..., layers=[...]). Available: {', '.join(available) or '(none)'}."
            )
        return found
    if isinstance(layers, str):
        raise ConfigurationError(f"layers must be a list of module names, got the string {layers!r}; write layers=[{layers!r}].")
    unknown = [n for n in layers if n not in modules or not n]
    if unknown:
        raise ConfigurationError(
            f"Unknown layer {unknown[0]!r}. Available: {', '.join(available)}. "
            "Names are as model.named_modules() reports them."
        )
    return list(dict.fromkeys(layers))


@dataclass
class CaptureResult:
    """Per-image outputs for a set of probe rows (numpy, on the CPU)."""

    logits: np.ndarray
    probs: np.ndarray
    loss: np.ndarray
    activations: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nonfinite(self) -> list[str]:
        bad = [name for name, a in self.activations.items() if not np.isfinite(a).all()]
        if not np.isfinite(self.logits).all():
            bad.append("logits")
        return bad


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def capture(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layers: list[str],
    batch_size: int = 256,
) -> CaptureResult:
    """Run ``inputs`` through ``model`` and collect what a snapshot stores.

    Batches run on the model's device; each batch's results move to the CPU
    as they come, so device memory stays bounded by one batch.
    """
    modules = hook_targets(model)
    device = model_device(model)
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in layers}

    def hook_for(name):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            # Copy now: on the CPU ``.cpu()`` is a view, and a later in-place op
            # (``ReLU(inplace=True)``) would rewrite what we stored.
            outputs[name].append(output.detach().flatten(1).to("cpu", torch.float32, copy=True).numpy())

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    was_training = model.training
    logits_parts, loss_parts = [], []
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                x = inputs[start : start + batch_size].to(device, non_blocking=True)
                y = labels[start : start + batch_size].to(device, non_blocking=True)
                logits = _forward(model, x)
                if start == 0:
                    _check_labels(model, labels, logits.shape[1])
                logits = logits.float()
                loss_parts.append(F.cross_entropy(logits, y, reduction="none").cpu().numpy())
                logits_parts.append(logits.cpu().numpy())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    logits = np.concatenate(logits_parts) if logits_parts else np.zeros((0, 0), np.float32)
    return CaptureResult(
        logits=logits,
        probs=softmax(logits),
        loss=np.concatenate(loss_parts) if loss_parts else np.zeros(0, np.float32),
        activations={k: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for k, v in outputs.items()},
    )


def _expected_input(model: nn.Module, sample: torch.Tensor) -> str:
    """What the model takes in, as far as its example input or its first layer tells."""
    example = getattr(model, "example_input_array", None)
    if isinstance(example, torch.Tensor):
        return f"Its example_input_array has shape {tuple(example.shape[1:])} per image. "
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return f"Its first layer, {name} ({type(m).__name__}), takes {m.in_channels} input channel(s). "
        if isinstance(m, nn.Linear):
            return (f"Its first layer, {name} (Linear), takes {m.in_features} features; "
                    f"one probe image has {sample[0].numel()} values. ")
    return ""


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` for a probe batch, with errors that name the probe's shape and the model's."""
    try:
        logits = model(x)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ConfigurationError(
            f"{type(model).__name__}.forward failed on the probe images, of shape {tuple(x.shape[1:])} each "
            f"(batch {tuple(x.shape)}): {exc}. {_expected_input(model, x)}Give probe images shaped and "
            "transformed like one training input (same channels, size and normalisation)."
        ) from exc
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ConfigurationError(
            f"{type(model).__name__}.forward must return logits of shape (batch, classes) for the "
            f"probe set; it returned {type(logits).__name__}"
            f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else ''}."
        )
    return logits


def _check_labels(model: nn.Module, labels: torch.Tensor, n_outputs: int) -> None:
    """Probe labels must index the model's class scores (cross-entropy needs it)."""
    if not len(labels):
        return
    bad = labels[(labels < 0) | (labels >= n_outputs)]
    if len(bad):
        raise ConfigurationError(
            f"Probe label {int(bad[0])} is outside [0, {n_outputs}): {type(model).__name__} gives {n_outputs} "
            f"class scores per image, so labels must be class indices 0..{n_outputs - 1}. Fix the probe labels, "
            "or the model's number of outputs."
        )


@contextlib.contextmanager
def rank_zero_buffers(model: nn.Module):
    """Under torch.distributed, give every rank rank zero's buffers for the block, then its own back.

    Buffers such as BatchNorm's running statistics drift apart across ranks
    (each normalises its own shard of the training data). A snapshot is
    captured in shards, one per rank, and must be what one model makes of the
    whole probe set: the model whose state rank zero saves. Outside a process
    group this does nothing.
    """
    dist = torch.distributed
    buffers = [b for b in model.buffers()]
    if not buffers or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        yield
        return
    own = [b.detach().clone() for b in buffers]
    try:
        with torch.no_grad():
            for b in buffers:
                dist.broadcast(b.data, src=0)
        yield
    finally:
        # Restored, not left: with DDP(broadcast_buffers=False) each rank keeps its own statistics.
        with torch.no_grad():
            for b, saved in zip(buffers, own):
                b.copy_(saved)


def softmax(logits: np.ndarray) -> np.ndarray:
    if logits.size == 0:
        return logits.astype(np.float32)
    # NaN or Inf logits give NaN rows: stored as they are and flagged, not warned about here.
    with np.errstate(invalid="ignore", over="ignore"):
        z = logits - np.max(logits, axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def state_bytes(model: nn.Module) -> bytes:
    """The model's state dict on the CPU, serialised with ``torch.save``."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def weights_of(model: nn.Module, layers: list[str]) -> dict[str, np.ndarray]:
    modules = dict(model.named_modules())
    # A copy, not a view of the live parameter: the optimizer keeps changing it.
    return {name: modules[name].weight.detach().to("cpu", torch.float32, copy=True).numpy() for name in layers}


def merge(parts: list[tuple[np.ndarray, CaptureResult]], n: int) -> CaptureResult:
    """Reassemble shards (row indices, result) from several processes into probe order."""
    first = parts[0][1]
    out = CaptureResult(
        logits=np.empty((n, first.logits.shape[1]), np.float32),
        probs=np.empty((n, first.probs.shape[1]), np.float32),
        loss=np.empty(n, np.float32),
        activations={k: np.empty((n, v.shape[1]), np.float32) for k, v in first.activations.items()},
    )
    for rows, part in parts:
        out.logits[rows] = part.logits
        out.probs[rows] = part.probs
        out.loss[rows] = part.loss
        for k, v in part.activations.items():
            out.activations[k][rows] = v
    return out
