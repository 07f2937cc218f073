"""The probe inputs as the db keeps them: compact codes, decoded a few rows or one block at a time.

At 100,000 CIFAR-sized images the decoded float32 inputs are 1.2 GB, four
times the uint8 codes they are stored as; a server that needs one image, the
shape, or one pass for a search never holds them all decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["BLOCK_ROWS", "StoredInputs", "decode"]

#: Rows decoded at a time by :meth:`StoredInputs.blocks`: 4,096 CIFAR images are 50 MB of float32.
BLOCK_ROWS = 4096


def decode(codes: np.ndarray, divisor: float | None) -> np.ndarray:
    """Stored rows -> the model's values, float32 and the caller's own (never a read-only view of Arrow's
    buffer): ``codes / divisor``, or the values themselves when ``divisor`` is None."""
    if divisor is None:
        return np.array(codes, dtype=np.float32)
    return np.divide(codes, np.float32(divisor), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class StoredInputs:
    """(N, D) ``codes`` as stored (uint8, float16 or float32, probe order), and what makes them the model's values:
    ``codes / divisor`` (uint8), or the values themselves (``divisor`` None). ``input_shape`` is one image's."""

    codes: np.ndarray
    divisor: float | None
    input_shape: tuple[int, ...]

    def __len__(self) -> int:
        return self.codes.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape ``StatsDB.probe_inputs`` returns: (N, *input_shape)."""
        return (len(self), *self.input_shape)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Rows of codes (M, D) -> the model's values, float32 (M, D)."""
        return decode(codes, self.divisor)

    def rows(self, index) -> np.ndarray:
        """The images at ``index`` (an int, a slice or row numbers) as float32, each (*input_shape)."""
        picked = self.codes[index]
        if picked.ndim == 1:
            return self.decode(picked[None])[0].reshape(self.input_shape)
        return self.decode(picked).reshape(-1, *self.input_shape)

    def all(self) -> np.ndarray:
        """Every image, float32 (N, *input_shape): the whole probe decoded (prefer ``rows`` or ``blocks``)."""
        return self.decode(self.codes).reshape(self.shape)

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[np.ndarray]:
        """Flat float32 (M, D) blocks of at most ``rows`` images, in probe order."""
        for start in range(0, len(self), rows):
            yield self.decode(self.codes[start:start + rows])

    def channel_stats(self) -> dict[str, np.ndarray]:
        """Per channel (axis 1 of an image): ``min``, ``max``, ``mean`` and ``std`` of the values, float32,
        computed a block at a time in float64."""
        c = self.input_shape[0] if self.input_shape else 1
        lo, hi = np.full(c, np.inf), np.full(c, -np.inf)
        total, squares, count = np.zeros(c), np.zeros(c), 0
        for block in self.blocks():
            x = block.reshape(len(block), c, -1).astype(np.float64)
            lo, hi = np.minimum(lo, x.min(axis=(0, 2))), np.maximum(hi, x.max(axis=(0, 2)))
            total += x.sum(axis=(0, 2))
            squares += np.square(x).sum(axis=(0, 2))
            count += x.shape[0] * x.shape[2]
        mean = total / max(count, 1)
        std = np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 0))
        return {k: v.astype(np.float32) for k, v in (("min", lo), ("max", hi), ("mean", mean), ("std", std))}
