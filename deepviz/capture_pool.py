"""Conv layers as captured "layers": each conv output averaged over its positions (global average pooling).

A conv output is (N, C, H, W); flattened it is C*H*W numbers per image,
too many to store at every step and dominated by where things are rather
than what they are.  Its spatial mean, one number per channel, is what the
classifier head of most CNNs sees, and it is small enough to capture with the
FC layers by default, so "does colour give way to meaning, and in which
layer" can be read by depth.

A pooled conv is named ``<conv>.gap`` (``features.0.gap``, ``conv1.gap``).
:func:`hook_targets` maps every module name *and* every such name to
something with ``register_forward_hook``, so ``capture.capture`` hooks a
pooled conv exactly as it hooks a module: the hook on ``conv1.gap`` is
called with ``conv1``'s output already pooled to (N, C).  Nothing is added
to the model and its output is untouched.

torch only: no Lightning, no storage.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .errors import ConfigurationError

__all__ = ["GAP_SUFFIX", "PooledConv", "gap_layers", "gap_name", "global_average_pool", "hook_targets"]

GAP_SUFFIX = ".gap"

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def gap_name(conv: str) -> str:
    """The captured name of a conv module's pooled output: ``conv1`` -> ``conv1.gap``."""
    return conv + GAP_SUFFIX


def global_average_pool(output: Tensor) -> Tensor:
    """(N, C, *spatial) -> (N, C): the mean over every position of each channel."""
    if output.dim() < 3:
        raise ConfigurationError(
            f"Global average pooling needs a conv output (N, C, *spatial); got shape {tuple(output.shape)}. "
            "Capture a layer with no spatial axes under its own name, without the '.gap' suffix."
        )
    return output.flatten(2).mean(2)


class PooledConv:
    """A conv module seen through global average pooling, with the one method ``capture`` uses."""

    def __init__(self, conv: nn.Module):
        self.conv = conv

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(conv, inputs, pooled_output)`` after each forward of the conv; returns its handle."""

        def pooled(module, inputs, output):
            hook(module, inputs, global_average_pool(output[0] if isinstance(output, (tuple, list)) else output))
            # returns None: the conv's own output goes on unchanged

        return self.conv.register_forward_hook(pooled)


def gap_layers(model: nn.Module) -> list[str]:
    """``<conv>.gap`` for every conv module of ``model``, in ``named_modules`` order."""
    return [gap_name(name) for name, m in model.named_modules() if name and isinstance(m, _CONVS)]


def hook_targets(model: nn.Module) -> dict[str, nn.Module | PooledConv]:
    """Every named module of ``model``, plus a :class:`PooledConv` under ``<conv>.gap`` for each conv.

    A real module of that name (a model with a submodule called ``gap`` under a conv) wins.
    """
    modules: dict[str, nn.Module | PooledConv] = {name: m for name, m in model.named_modules() if name}
    for name, m in list(modules.items()):
        if isinstance(m, _CONVS):
            modules.setdefault(gap_name(name), PooledConv(m))
    return modules
