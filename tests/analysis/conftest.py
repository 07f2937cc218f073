import numpy as np
import pytest


def _make_blobs(n_per=40, n_classes=4, dim=16, spread=0.3, seed=0):
    """Well-separated Gaussian blobs: one per class, centres far apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 10
    y = np.repeat(np.arange(n_classes), n_per)
    X = centres[y] + spread * rng.normal(size=(y.size, dim))
    return X.astype(np.float32), y


@pytest.fixture
def make_blobs():
    """Factory for blob data sets: ``make_blobs(n_per=..., n_classes=..., ...)``."""
    return _make_blobs


@pytest.fixture
def blobs():
    return _make_blobs()
