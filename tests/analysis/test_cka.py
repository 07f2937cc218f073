import numpy as np
import pytest
from scipy.stats import ortho_group

from deepviz.analysis.cka import cka_matrix, linear_cka
from deepviz.errors import ConfigurationError


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(60, 12))


def gram_cka(X, Y):
    """Reference: the N x N Gram-matrix (HSIC) formula."""
    H = np.eye(len(X)) - 1 / len(X)
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))


def test_identical_is_one_and_invariances(X):
    assert linear_cka(X, X) == pytest.approx(1.0)
    Q = ortho_group.rvs(12, random_state=1)
    assert linear_cka(X, 3.5 * X @ Q + 2.0) == pytest.approx(1.0)


def test_matches_gram_formula_and_handles_wide_layers(X):
    rng = np.random.default_rng(2)
    Y = X @ rng.normal(size=(12, 5)) + rng.normal(size=(60, 5))
    assert linear_cka(X, Y) == pytest.approx(gram_cka(X, Y))
    wide = rng.normal(size=(60, 500))  # D > N goes through the Gram route
    assert linear_cka(X, wide) == pytest.approx(gram_cka(X, wide))
    assert linear_cka(X, rng.normal(size=(60, 12))) < 0.5


def test_cka_matrix(X):
    rng = np.random.default_rng(3)
    reps = [X, X + 0.1 * rng.normal(size=X.shape), rng.normal(size=(60, 30))]
    M = cka_matrix(reps)
    assert M.shape == (3, 3)
    np.testing.assert_allclose(M, M.T)
    np.testing.assert_allclose(np.diag(M), 1)
    assert M[0, 1] > 0.95 and M[0, 2] < 0.6
    assert M[0, 2] == pytest.approx(linear_cka(X, reps[2]))


def test_errors(X):
    with pytest.raises(ConfigurationError, match="X has 60 rows and Y has 10"):
        linear_cka(X, X[:10])
    with pytest.raises(ConfigurationError, match="undefined for a constant representation"):
        linear_cka(X, np.ones((60, 3)))
    with pytest.raises(ConfigurationError, match="needs at least one"):
        cka_matrix([])
    with pytest.raises(ConfigurationError, match=r"list_of_X\[1\] has 10 rows but list_of_X\[0\] has 60"):
        cka_matrix([X, X[:10]])
    with pytest.raises(ConfigurationError, match=r"list_of_X\[0\] is constant"):
        cka_matrix([np.ones((5, 2))])
