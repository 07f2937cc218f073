import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from deepviz.analysis.clusters import KMEANS_PCA_DIMS, kmeans
from deepviz.analysis.reduce import pca_reduce
from deepviz.errors import ConfigurationError


def _wide_classes(n=3000, width=256, n_classes=10, seed=0):
    """Classes spread over a few directions of a wide layer, with noise in every unit: not separable by eye."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(width, 20)))[0].T  # the 20 directions that carry the classes
    centres = rng.normal(size=(n_classes, 20)) * 0.8
    y = rng.integers(0, n_classes, n)
    X = (centres[y] + rng.normal(size=(n, 20))) @ basis + 0.3 * rng.normal(size=(n, width))
    return X.astype(np.float32), y


def test_pca_reduce_narrows_wide_data_and_keeps_narrow_data():
    X, _ = _wide_classes(n=400)
    Z = pca_reduce(X, 16, random_state=0)
    assert Z.shape == (400, 16) and Z.dtype == np.float32
    # The leading components: their variance is the largest and falls off.
    var = Z.var(axis=0)
    assert (np.diff(var) <= 1e-3 * var[0]).all()
    np.testing.assert_array_equal(pca_reduce(X[:, :8], 16), X[:, :8])
    np.testing.assert_array_equal(Z, pca_reduce(X, 16, random_state=0))
    with pytest.raises(ConfigurationError, match=r"n_components must be"):
        pca_reduce(X, 0)


def test_kmeans_on_pca_matches_kmeans_on_the_full_width():
    X, y = _wide_classes()
    assert X.shape[1] > KMEANS_PCA_DIMS
    full = KMeans(n_clusters=10, n_init=4, random_state=0).fit_predict(X)
    ours = kmeans(X, 10, random_state=0)
    assert adjusted_rand_score(full, ours) >= 0.9
    # Not trivially separable: k-means recovers the classes only in part.
    assert adjusted_rand_score(y, full) < 0.9


def test_components_fitted_on_a_sample_project_like_those_of_all_rows(monkeypatch):
    from deepviz.analysis import reduce as R

    X, _ = _wide_classes(n=3000)
    full = pca_reduce(X, 8, random_state=0)
    monkeypatch.setattr(R, "MAX_FIT_ROWS", 600)
    sampled = pca_reduce(X, 8, random_state=0)
    assert sampled.shape == full.shape
    # The same leading subspace (components of near-equal variance may come in another order or mix):
    # the full projection is almost entirely a linear function of the sampled one.
    W, *_ = np.linalg.lstsq(sampled, full, rcond=None)
    residual = ((full - sampled @ W) ** 2).sum() / ((full - full.mean(0)) ** 2).sum()
    assert residual < 0.05
    assert not np.allclose(sampled, full, atol=1e-3)  # it was fitted on the sample, not on all rows
