"""Under ``torch.distributed``: rank zero's gather of every rank's probe rows, and which rows some rank saw.

Backends that gather tensors (gloo, nccl) get tensors: each rank packs its
rows' outputs into one float32 matrix, padded to the longest rank's, and
``torch.distributed.gather`` sends it; nothing is pickled. Other backends fall
back to ``gather_object``. torch only.
"""

from __future__ import annotations

import numpy as np
import torch

from .capture import Captured, merge_captured

__all__ = ["TENSOR_BACKENDS", "gather_to_zero", "seen_anywhere"]

#: Backends whose ``gather`` takes tensors; for nccl they live on this rank's GPU.
TENSOR_BACKENDS = ("gloo", "nccl")


def _device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def seen_anywhere(mask: np.ndarray, broken: bool) -> tuple[np.ndarray, bool]:
    """The probe rows some rank saw (``mask`` is this rank's), and whether some rank's tap broke.

    A collective: every rank calls it, and every rank gets the same answer.
    """
    flags = torch.from_numpy(np.append(mask, broken).astype(np.int32)).to(_device())
    torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    flags = flags.cpu().numpy()
    return flags[:-1].astype(bool), bool(flags[-1])


def gather_to_zero(rows: np.ndarray, part: Captured, n: int) -> Captured | None:
    """Every rank's ``(rows, part)`` merged into probe order on rank zero (None elsewhere). A collective."""
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    if dist.get_backend() not in TENSOR_BACKENDS:
        host = Captured(part.logits.cpu(), part.loss.cpu(), {k: v.cpu() for k, v in part.activations.items()})
        gathered = [None] * world if rank == 0 else None
        dist.gather_object((rows, host), gathered, dst=0)
        return merge_captured(gathered, n) if rank == 0 else None
    device = _device()
    columns = [part.logits, part.loss[:, None], *part.activations.values()]
    # A rank that saw no rows has zero-width buffers: the widths are agreed first, with the row counts.
    sizes = torch.tensor([len(rows), *(c.shape[1] for c in columns)], dtype=torch.int64, device=device)
    every = [torch.empty_like(sizes) for _ in range(world)]
    dist.all_gather(every, sizes)
    counts = [int(s[0]) for s in every]
    widths = torch.stack(every)[:, 1:].max(0).values.tolist()
    longest = max(counts)
    packed = torch.zeros((longest, sum(widths)), dtype=torch.float32, device=device)
    if len(rows):
        packed[: len(rows)] = torch.cat([c.to(device) for c in columns], 1)
    index = torch.full((longest,), -1, dtype=torch.int64, device=device)
    index[: len(rows)] = torch.as_tensor(rows, dtype=torch.int64, device=device)
    packs = [torch.empty_like(packed) for _ in range(world)] if rank == 0 else None
    indexes = [torch.empty_like(index) for _ in range(world)] if rank == 0 else None
    dist.gather(packed, packs, dst=0)
    dist.gather(index, indexes, dst=0)
    if rank != 0:
        return None
    names = list(part.activations)
    parts = []
    for k, pack, idx in zip(counts, packs, indexes):
        cols = torch.split(pack[:k], widths, 1)
        parts.append((idx[:k].cpu().numpy(), Captured(cols[0], cols[1][:, 0], dict(zip(names, cols[2:])))))
    return merge_captured(parts, n)
