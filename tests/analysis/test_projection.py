import numpy as np
import pytest

from deepviz.analysis.synthetic import drifting_blobs

from deepviz.analysis.projection import (
    align_to, aligned_layouts, procrustes_disparity, project,
)
from deepviz.errors import ConfigurationError


def drifting(n=150, steps=3, dim=10, drift=0.05, seed=0):
    return drifting_blobs(n, steps, dim, n_classes=5, drift=drift, spread=4.0, seed=seed)[1]


def knn_preserved(X, Y, k=5):
    """Mean fraction of each point's k nearest neighbours in X kept in layout Y."""
    from deepviz.analysis.neighbours import nearest

    keep = [np.intersect1d(nearest(X[i], X, k, "euclidean", exclude=[i])[0],
                           nearest(Y[i], Y, k, "euclidean", exclude=[i])[0]).size
            for i in range(len(X))]
    return np.mean(keep) / k


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_project_shape_dtype_and_determinism(method, make_blobs):
    X, _ = make_blobs(n_per=30)
    a = project(X, method, random_state=3)
    b = project(X, method, random_state=3)
    assert a.shape == (X.shape[0], 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_tsne_keeps_blobs_apart(make_blobs):
    from deepviz.analysis.quality import knn_accuracy

    X, y = make_blobs(n_per=30)
    assert knn_accuracy(project(X, "tsne"), y, metric="euclidean") > 0.95


def test_pca_matches_sklearn_up_to_sign(make_blobs):
    from sklearn.decomposition import PCA

    X, _ = make_blobs()
    Y = project(X, "pca")
    ref = PCA(2).fit_transform(X)
    np.testing.assert_allclose(np.abs(Y), np.abs(ref), rtol=1e-3, atol=1e-3)


def test_pca_with_one_feature_lies_on_a_line():
    Y = project(np.arange(10.0)[:, None], "pca")
    assert Y.shape == (10, 2) and not Y[:, 1].any()


def test_align_to_undoes_rotation_reflection_and_shift():
    rng = np.random.default_rng(0)
    prev = rng.normal(size=(50, 2))
    theta = 1.1
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.diag([1, -1])
    Y = prev @ R + [5, -3]
    np.testing.assert_allclose(align_to(prev, Y), prev, atol=1e-4)


def test_align_to_keeps_scale():
    rng = np.random.default_rng(1)
    prev = rng.normal(size=(40, 2))
    out = align_to(prev, 3 * prev)
    spread = lambda L: np.linalg.norm(L - L.mean(axis=0))  # noqa: E731
    assert spread(out) == pytest.approx(3 * spread(prev), rel=1e-4)


def test_procrustes_disparity_zero_for_similar_layouts_and_positive_otherwise():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(30, 2))
    assert procrustes_disparity(A, 2 * A @ np.array([[0, 1], [-1, 0]]) + 1) < 1e-10
    assert procrustes_disparity(A, rng.normal(size=(30, 2))) > 0.5


def test_aligned_tsne_is_deterministic_and_smoother_than_independent_runs():
    Xs = drifting()
    a = aligned_layouts(Xs, "tsne", random_state=0)
    # A step computed lazily from its cached neighbour equals the sequence's.
    np.testing.assert_array_equal(project(Xs[1], "tsne", init=a[0], random_state=0), a[1])
    ours = [procrustes_disparity(u, v) for u, v in zip(a, a[1:])]
    # Independent full runs, seeds differing as they would between processes.
    indep = [project(X, "tsne", random_state=s) for s, X in enumerate(Xs)]
    theirs = [procrustes_disparity(u, v) for u, v in zip(indep, indep[1:])]
    assert max(ours) < 0.05
    assert np.mean(ours) < np.mean(theirs)
    # The continued layout reflects its own step's data as well as a fresh run does.
    assert knn_preserved(Xs[-1], a[-1]) >= 0.8 * knn_preserved(Xs[-1], indep[-1])


def test_aligned_pca_is_aligned_to_previous_step():
    Xs = drifting(steps=4)
    layouts = aligned_layouts(Xs, "pca")
    for prev, cur in zip(layouts, layouts[1:]):
        # Aligned: no better rotation exists, so re-aligning changes nothing.
        np.testing.assert_allclose(align_to(prev, cur), cur, atol=1e-3)
    assert len(layouts) == 4 and all(L.shape == (150, 2) for L in layouts)


def test_aligned_layouts_accepts_a_3d_array():
    assert len(aligned_layouts(np.stack(drifting(steps=2)), "pca")) == 2


def test_unknown_method():
    with pytest.raises(ConfigurationError, match=r"Unknown projection method 'mds'. Available: pca, tsne, umap"):
        project(np.zeros((5, 3)), "mds")


def test_unknown_option_lists_allowed_ones(make_blobs):
    X, _ = make_blobs(n_per=5)
    with pytest.raises(ConfigurationError, match=r"openTSNE.TSNE got unknown option\(s\) perplexxity. Allowed: .*perplexity"):
        project(X, "tsne", perplexxity=5)


def test_fixed_option_cannot_be_overridden(make_blobs):
    X, _ = make_blobs(n_per=5)
    with pytest.raises(ConfigurationError, match="n_components is set by deepviz and cannot be passed"):
        project(X, "pca", n_components=3)


def test_negative_continue_iterations(make_blobs):
    X, _ = make_blobs(n_per=5)
    with pytest.raises(ConfigurationError, match=r"n_iter must be an integer >= 0; got -1"):
        project(X, "tsne", init=np.zeros((len(X), 2)), n_iter=-1)


def test_bad_inputs():
    with pytest.raises(ConfigurationError, match=r"X must be a 2-D array .* got shape \(5,\)"):
        project(np.zeros(5))
    with pytest.raises(ConfigurationError, match="X has 2 rows; at least 3 are needed"):
        project(np.zeros((2, 4)))
    with pytest.raises(ConfigurationError, match="X contains NaN or infinite values"):
        project(np.full((4, 2), np.nan))
    with pytest.raises(ConfigurationError, match="X must hold real numbers; got dtype <U1"):
        project(np.array([["a", "b"]] * 4))
    with pytest.raises(ConfigurationError, match=r"X has no features \(shape \(4, 0\)\)"):
        project(np.zeros((4, 0)))
    with pytest.raises(ConfigurationError, match=r"init must be an \(N, 2\) layout; got shape \(4, 3\)"):
        project(np.zeros((4, 3)), init=np.zeros((4, 3)))
    with pytest.raises(ConfigurationError, match="init has 5 points but the data has 4"):
        project(np.zeros((4, 3)), init=np.zeros((5, 2)))


def test_aligned_layouts_bad_inputs():
    with pytest.raises(ConfigurationError, match="non-empty sequence of .* got list"):
        aligned_layouts([], "pca")
    with pytest.raises(ConfigurationError, match=r"list_of_X\[1\] has 4 rows but list_of_X\[0\] has 5"):
        aligned_layouts([np.zeros((5, 2)), np.zeros((4, 2))], "pca")


def test_procrustes_of_collapsed_layout():
    with pytest.raises(ConfigurationError, match="not all identical"):
        procrustes_disparity(np.zeros((5, 2)), np.ones((5, 2)))


@pytest.mark.slow  # numba compiles UMAP on first use (about a minute here)
def test_umap_same_seed_same_layout_and_aligned_steps():
    _, Xs = drifting_blobs(200, 2, 8, n_classes=4, seed=1)
    a = project(Xs[0], "umap", random_state=0)
    assert a.shape == (200, 2) and np.allclose(a, project(Xs[0], "umap", random_state=0))
    layouts = aligned_layouts(Xs, "umap", random_state=0)
    assert len(layouts) == 2 and procrustes_disparity(layouts[0], layouts[1]) < 0.5


def test_a_wide_layer_is_projected_from_its_first_50_principal_components():
    from deepviz.analysis.reduce import pca_reduce

    X = drifting_blobs(200, 1, 120, spread=0.5, seed=3)[1][0]
    np.testing.assert_allclose(project(X, "tsne", random_state=0), project(pca_reduce(X, 50, 0), "tsne", random_state=0),
                               atol=1e-4)


def test_aligned_tsne_layouts_are_as_faithful_as_cold_runs_on_hard_data():
    import openTSNE

    from deepviz.analysis.fidelity import layout_knn_accuracy
    from deepviz.analysis.quality import knn_accuracy

    labels, Xs = drifting_blobs(800, 3, 32, spread=0.4, drift=0.15, seed=0)
    assert knn_accuracy(Xs[0], labels, k=10, metric="euclidean") < 0.9  # classes overlap: not trivially separable
    ours = aligned_layouts(Xs, "tsne", random_state=0)
    for X, Y in zip(Xs[1:], ours[1:]):
        cold = np.asarray(openTSNE.TSNE(random_state=0).fit(X))
        assert layout_knn_accuracy(Y, labels) >= layout_knn_accuracy(cold, labels) - 0.03
    assert max(procrustes_disparity(a, b) for a, b in zip(ours, ours[1:])) <= 0.05
