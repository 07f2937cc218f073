"""A snapshot's outputs from the validation pass's own forward: hooks on the probe rows of validation batches.

When the probe is the validation set (or a subset of it), validation already
runs every probe image through the model, in eval mode, at the snapshot's
weights. A :class:`ValidationTap` hooks the captured layers and the model's
own output for the length of one validation batch, keeps the rows of that
batch that are probe images at their probe positions, and leaves the rest
alone: no second forward, and the user's ``validation_step`` is unchanged.

Which dataset index each row of a batch holds is known ahead only for a
sampler whose order is fixed: ``SequentialSampler`` (``shuffle=False``) and
``DistributedSampler`` (ordered by its seed and epoch, as Lightning makes it
under DDP). Any other (a ``RandomSampler``, a custom one) cannot be matched to
probe ids: :func:`unordered_reason` says why, and the snapshot takes the extra
pass instead. torch only: no Lightning, no storage.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from .capture import LOGITS, Captured, RowBuffers, check_labels, first_tensor, model_device, put_outputs
from .capture_pool import hook_targets

__all__ = ["ValidationTap", "batch_indices", "unordered_reason"]

#: Samplers whose order is known before the loader is iterated (type for type: a subclass may reorder).
FIXED_ORDER = (SequentialSampler, DistributedSampler)


def unordered_reason(loader: DataLoader) -> str | None:
    """Why the dataset indices of ``loader``'s batches cannot be known ahead (None when they can)."""
    batches = loader.batch_sampler
    if type(batches) is not BatchSampler:
        return (f"its batches come from a {type(batches).__name__}, not a torch BatchSampler"
                if batches is not None else "it has batch_size=None (no batches)")
    if type(batches.sampler) not in FIXED_ORDER:
        return (f"its sampler is a {type(batches.sampler).__name__}, whose order is drawn as it goes; give the "
                "validation DataLoader shuffle=False (or a DistributedSampler) to let snapshots reuse validation")
    return None


def batch_indices(loader: DataLoader) -> list[np.ndarray]:
    """The dataset indices of each batch ``loader`` gives this epoch, in order (its sampler is of fixed order)."""
    return [np.asarray(batch, dtype=np.int64) for batch in loader.batch_sampler]


class ValidationTap:
    """Collect a validation pass's outputs for the probe rows, batch by batch.

    Args:
        model: the module validation calls (its own forward hook gives the logits).
        layers: the captured layer names (as ``capture.hook_targets`` knows them).
        probe_ids: sorted dataset indices of the probe rows; ``labels``: their labels.
        batches: the dataset indices of each validation batch (:func:`batch_indices`).

    Call :meth:`begin` and :meth:`end` around each batch: hooks exist only
    between them, and only for a batch holding probe rows. A batch whose
    forward does not run each hooked module exactly once, on the whole batch,
    breaks the tap (``broken`` says how): its rows cannot be trusted.
    """

    def __init__(self, model: nn.Module, layers: list[str], probe_ids: np.ndarray, labels: torch.Tensor,
                 batches: list[np.ndarray]):
        self.model, self.layers, self.batches = model, layers, batches
        self.ids = np.asarray(probe_ids)
        self.out = RowBuffers(len(self.ids), model_device(model))
        self.labels = labels.to(self.out.device)
        self.seen = np.zeros(len(self.ids), bool)
        self.broken: str | None = None
        self._handles: list = []
        self._calls: dict[str, int] = {}
        self._rows = np.zeros(0, np.int64)
        self._select: torch.Tensor | slice | None = None  # the batch's probe rows (slice(None): all of them)
        self._labels_checked = False
        self._targets = hook_targets(model)  # what the layers' hooks go on
        self._size = 0

    def begin(self, batch_idx: int) -> None:
        if self.broken is not None:
            return
        if batch_idx >= len(self.batches):
            self.broken = f"validation ran batch {batch_idx}, but its sampler gives {len(self.batches)} batches"
            return
        indices = self.batches[batch_idx]
        pos = np.minimum(np.searchsorted(self.ids, indices), max(len(self.ids) - 1, 0))
        hit = self.ids[pos] == indices if len(self.ids) else np.zeros(len(indices), bool)
        if not hit.any():
            return
        self._rows, self._size = pos[hit], len(indices)
        # The usual batch (the probe is the validation set, in order) is all probe rows, one run of them: its
        # outputs are written as they are into a slice. Otherwise the probe rows are picked out and scattered.
        self._select = slice(None) if hit.all() else torch.as_tensor(np.flatnonzero(hit), device=self.out.device)
        self.out.at = (slice(int(self._rows[0]), int(self._rows[-1]) + 1) if _one_run(self._rows)
                       else torch.as_tensor(self._rows, device=self.out.device))
        self._calls = dict.fromkeys([*self.layers, LOGITS], 0)
        self._handles = [self._targets[name].register_forward_hook(self._hook(name)) for name in self.layers]
        self._handles.append(self.model.register_forward_hook(self._hook(LOGITS)))

    def end(self, batch_idx: int) -> None:
        self.remove_hooks()
        if self._select is None or self.broken is not None:
            self._select = None
            return
        self._select = None
        wrong = {name: n for name, n in self._calls.items() if n != 1}
        if wrong:
            name, n = next(iter(wrong.items()))
            what = "the model's forward" if name == LOGITS else f"layer {name}"
            self.broken = f"{what} ran {n} times in validation batch {batch_idx}, not once"
        else:
            self.seen[self._rows] = True

    def remove_hooks(self) -> None:
        """Take the batch's hooks off the model (also when the batch ended in an exception)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def result(self) -> tuple[np.ndarray, Captured | None]:
        """The probe rows seen, and their outputs in probe order (None when the tap broke)."""
        return self.seen, None if self.broken is not None else self.out.captured(self.layers)

    def _hook(self, name: str):
        def hook(_module, inputs, output):
            if name == LOGITS and not (inputs and isinstance(inputs[0], torch.Tensor)):
                return  # not a forward on images: Lightning's strategies call the module with the whole batch
            self._calls[name] += 1
            output = first_tensor(output)
            if self.broken is not None or self._calls[name] > 1:
                return
            if not isinstance(output, torch.Tensor) or output.dim() < 1 or output.shape[0] != self._size:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                self.broken = f"{name.lstrip(':')} gave {shape} for a validation batch of {self._size} rows"
                return
            if name != LOGITS:
                self.out.put(name, output[self._select])
            elif output.dim() != 2:
                self.broken = f"the model's forward gave shape {tuple(output.shape)}, not (batch, classes)"
            else:
                if not self._labels_checked:  # every probe label at once, as the extra pass checks them
                    check_labels(self.model, self.labels, output.shape[1])
                    self._labels_checked = True
                put_outputs(self.out, output[self._select], self.labels[self.out.at])

        return hook


def _one_run(rows: np.ndarray) -> bool:
    """Whether ``rows`` are consecutive and increasing (``r, r+1, ..., r+k``)."""
    return bool(np.all(np.diff(rows) == 1))
