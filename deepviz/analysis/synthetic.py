"""Synthetic embeddings with known structure, for tests and benchmarks."""

from __future__ import annotations

import numpy as np


def drifting_blobs(
    n: int, steps: int, dim: int, *, n_classes: int = 10, drift: float = 0.1, spread: float = 3.0, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels and one (n, dim) float32 array per step: class blobs that drift slowly.

    Each step moves the class centres by ``drift * spread`` and redraws a
    ``drift`` fraction of each point's offset (keeping its variance at 1), so
    consecutive steps are similar, as consecutive checkpoints of a network are.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * spread
    labels = rng.integers(0, n_classes, n)
    offsets = rng.normal(size=(n, dim))
    out = []
    for _ in range(steps):
        out.append((centres[labels] + offsets).astype(np.float32))
        centres = centres + drift * spread * rng.normal(size=centres.shape)
        offsets = np.sqrt(1 - drift**2) * offsets + drift * rng.normal(size=offsets.shape)
    return labels, out
