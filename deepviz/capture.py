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


@dataclass
class Captured:
    """Per-image outputs for a set of probe rows as float32 tensors, where the forward left them (its device).

    What the training thread keeps of a forward: one copy of each output, made in the hook (a later in-place
    op, ``ReLU(inplace=True)``, would rewrite it otherwise). :meth:`to_host` is the device-to-host copy, which
    the Recorder's background writer makes; on the CPU it copies nothing.
    """

    logits: torch.Tensor
    loss: torch.Tensor
    activations: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.loss)

    def take(self, rows: np.ndarray) -> Captured:
        """These outputs at ``rows`` only (copies)."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.loss.device)
        return Captured(self.logits[index], self.loss[index], {k: v[index] for k, v in self.activations.items()})

    def to_host(self) -> CaptureResult:
        logits = self.logits.cpu().numpy()
        return CaptureResult(logits=logits, probs=softmax(logits), loss=self.loss.cpu().numpy(),
                             activations={k: v.cpu().numpy() for k, v in self.activations.items()})


class RowBuffers:
    """One (n, width) float32 tensor per output, allocated at its first batch and filled row by row.

    ``at`` is where the current batch's rows go (a slice, or a tensor of row positions); each output's
    width is that of its first batch. Filling in place is one copy per value, with no concatenation.
    """

    def __init__(self, n: int, device: torch.device):
        self.n, self.device = n, device
        self.at: slice | torch.Tensor = slice(0, 0)
        self.buffers: dict[str, torch.Tensor] = {}

    def put(self, name: str, values: torch.Tensor) -> None:
        values = values.detach().flatten(1)
        buf = self.buffers.get(name)
        if buf is None:
            buf = self.buffers[name] = torch.empty((self.n, values.shape[1]), dtype=torch.float32, device=self.device)
        buf[self.at] = values

    def get(self, name: str) -> torch.Tensor:
        return self.buffers.get(name, torch.zeros((self.n, 0), dtype=torch.float32, device=self.device))

    def captured(self, layers: list[str]) -> Captured:
        return Captured(logits=self.get(LOGITS), loss=self.get(LOSS).reshape(-1),
                        activations={name: self.get(name) for name in layers})


#: The names ``RowBuffers`` keeps the model's own outputs under (a module name is never empty or ``:``-led).
LOGITS, LOSS = ":logits", ":loss"


def first_tensor(output):
    """A module's output, or the first of the several it returned."""
    return output[0] if isinstance(output, (tuple, list)) else output


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
    """Run ``inputs`` through ``model`` and collect what a snapshot stores, on the CPU as numpy."""
    return capture_tensors(model, inputs, labels, layers, batch_size).to_host()


def capture_tensors(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layers: list[str],
    batch_size: int = 256,
) -> Captured:
    """Run ``inputs`` through ``model`` in batches on its device; the outputs stay there (:class:`Captured`)."""
    modules = hook_targets(model)
    out = RowBuffers(len(inputs), model_device(model))

    def hook_for(name):
        def hook(_module, _inputs, output):
            out.put(name, first_tensor(output))

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                x = inputs[start : start + batch_size].to(out.device, non_blocking=True)
                y = labels[start : start + batch_size].to(out.device, non_blocking=True)
                out.at = slice(start, start + len(x))
                logits = _forward(model, x)
                if start == 0:
                    check_labels(model, labels, logits.shape[1])
                put_outputs(out, logits, y)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return out.captured(layers)


def put_outputs(out: RowBuffers, logits: torch.Tensor, labels: torch.Tensor) -> None:
    """A batch's logits and per-image cross-entropy, in float32, into ``out`` at ``out.at``."""
    logits = logits.float()
    out.put(LOGITS, logits)
    out.put(LOSS, F.cross_entropy(logits, labels, reduction="none")[:, None])


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


def check_labels(model: nn.Module, labels: torch.Tensor, n_outputs: int) -> None:
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


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as copies on its device: the optimizer goes on changing the live tensors."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def serialise_state(state: dict[str, torch.Tensor]) -> bytes:
    """A state dict on the CPU, serialised with ``torch.save``."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    return buf.getvalue()


def weight_copies(model: nn.Module, layers: list[str]) -> dict[str, torch.Tensor]:
    """The weights of ``layers`` as float32 copies on the model's device, not views of the live parameters."""
    modules = dict(model.named_modules())
    return {name: modules[name].weight.detach().to(torch.float32, copy=True) for name in layers}


def weights_of(model: nn.Module, layers: list[str]) -> dict[str, np.ndarray]:
    return {name: w.cpu().numpy() for name, w in weight_copies(model, layers).items()}


def merge_captured(parts: list[tuple[np.ndarray, Captured]], n: int) -> Captured:
    """Reassemble shards (probe rows, outputs) from several processes into probe order, on the first's device.

    Every row of ``0..n-1`` must be in some shard; a row in two (a padded DistributedSampler) takes the last.
    """
    parts = [(rows, part) for rows, part in parts if len(rows)]
    out = RowBuffers(n, parts[0][1].loss.device if parts else torch.device("cpu"))
    for rows, part in parts:
        out.at = torch.as_tensor(rows, dtype=torch.long, device=out.device)
        out.put(LOGITS, part.logits.to(out.device))
        out.put(LOSS, part.loss.to(out.device)[:, None])
        for name, values in part.activations.items():
            out.put(name, values.to(out.device))
    return out.captured(list(parts[0][1].activations) if parts else [])


def merge(parts: list[tuple[np.ndarray, CaptureResult]], n: int) -> CaptureResult:
    """:func:`merge_captured` for shards already on the host (numpy)."""
    as_tensors = [
        (rows, Captured(torch.from_numpy(r.logits), torch.from_numpy(r.loss),
                        {k: torch.from_numpy(v) for k, v in r.activations.items()}))
        for rows, r in parts
    ]
    return merge_captured(as_tensors, n).to_host()
