"""2-D projections of a layer's activations, and sequences of them over steps.

A scatter plot that is replayed step by step is only readable if points move
smoothly from one step to the next.  Independent t-SNE runs give unrelated
layouts (rotated, mirrored, clusters swapped), so :func:`aligned_layouts` starts
each t-SNE step from the previous step's layout and only optimises it a little,
and rotates PCA/UMAP layouts onto the previous one (orthogonal Procrustes).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Sequence

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes

from deepviz.errors import ConfigurationError

from ._checks import as_matrix
from .knn_graph import NeighbourGraph, neighbour_graph
from .reduce import pca_reduce

METHODS = ("pca", "tsne", "umap")

#: A t-SNE step that starts from the previous step's layout: that layout is
#: already near a minimum of the new objective, so a short, un-exaggerated run
#: suffices (a full run is 250 exaggerated + 500 plain iterations); this is
#: where the aligned sequence gains its speed over independent runs.  Measured
#: on hard drifting data (bench/aligned_tsne.py, 1,500 points x 4 steps, the
#: layer's own 10-NN accuracy 0.8): 50 plain iterations give layouts whose k-NN
#: accuracy is within 0.002 of cold openTSNE runs at each step, disparity
#: <= 0.009; 25 exaggerated (x4) iterations first gain 0.03 of accuracy but
#: rearrange the picture (disparity 0.64), which is what alignment must avoid.
CONTINUE_N_ITER = 50
CONTINUE_EXAGGERATION_ITER = 0
CONTINUE_EXAGGERATION = 4.0

#: Wider layers are reduced to this many principal components before t-SNE
#: and UMAP look for neighbours (the usual practice; openTSNE's docs do it).
PCA_DIMS = 50

__all__ = [
    "METHODS",
    "CONTINUE_N_ITER",
    "PCA_DIMS",
    "project",
    "project_step",
    "aligned_layouts",
    "align_to",
    "procrustes_disparity",
]


def project(X, method: str = "pca", *, init=None, random_state: int = 0, **kw) -> np.ndarray:
    """Project ``X`` (N, D) to 2-D; returns an (N, 2) float32 array.

    ``init`` is a previous (N, 2) layout of the same points: t-SNE starts from
    it and runs ``n_iter`` (default :data:`CONTINUE_N_ITER`) un-exaggerated
    iterations; PCA and UMAP results are rotated/reflected onto it.  Extra
    keyword arguments go to ``sklearn.decomposition.PCA``, ``openTSNE.TSNE`` or
    ``umap.UMAP``.  Deterministic for a given ``random_state``.
    """
    return project_step(X, method, init=init, random_state=random_state, **kw)[0]


def project_step(X, method: str = "pca", *, init=None, graph: NeighbourGraph | None = None,
                 random_state: int = 0, **kw) -> tuple[np.ndarray, NeighbourGraph | None]:
    """:func:`project`, also returning t-SNE's neighbour graph (``None`` for PCA and UMAP).

    ``graph`` is the same points' graph at the previous step: at large N the
    neighbour search starts from it instead of from nothing.
    """
    method = _check_method(method)
    X = as_matrix(X, "X", min_rows=3)
    if init is not None:
        init = _check_layout(init, X.shape[0], "init")
    if method == "pca":
        Y = _pca(X, random_state, kw)
    elif method == "tsne":
        Y, graph = _tsne(X, init, random_state, kw, graph)
    else:
        Y, graph = _umap(X, init, random_state, kw), None
    if init is not None:
        Y = align_to(init, Y)
    return np.ascontiguousarray(Y, dtype=np.float32), graph


def aligned_layouts(
    list_of_X: Sequence, method: str = "tsne", random_state: int = 0, **kw
) -> list[np.ndarray]:
    """One (N, 2) float32 layout per step, each continuing from the previous one.

    The first step gets a full projection; each later t-SNE step starts from
    the previous layout (see :func:`project`), each later PCA/UMAP step is
    aligned to it.  ``kw`` goes to every step; for t-SNE, ``n_iter`` in ``kw``
    applies to the first (full) run only and ``continue_n_iter`` to later steps.
    """
    method = _check_method(method)
    if isinstance(list_of_X, np.ndarray) and list_of_X.ndim == 3:
        list_of_X = list(list_of_X)
    if not isinstance(list_of_X, Sequence) or len(list_of_X) == 0:
        raise ConfigurationError(
            "list_of_X must be a non-empty sequence of (N, D) arrays, one per step; "
            f"got {type(list_of_X).__name__}."
        )
    mats = [as_matrix(X, f"list_of_X[{i}]", min_rows=3) for i, X in enumerate(list_of_X)]
    n = mats[0].shape[0]
    for i, X in enumerate(mats):
        if X.shape[0] != n:
            raise ConfigurationError(
                f"list_of_X[{i}] has {X.shape[0]} rows but list_of_X[0] has {n}; "
                "every step must hold the same probe images in the same order."
            )
    continue_kw = dict(kw)
    continue_kw.pop("n_iter", None)
    continue_n_iter = continue_kw.pop("continue_n_iter", CONTINUE_N_ITER)
    first_kw = dict(kw)
    first_kw.pop("continue_n_iter", None)
    if method == "tsne":
        continue_kw["n_iter"] = continue_n_iter

    first, graph = project_step(mats[0], method, random_state=random_state, **first_kw)
    layouts = [first]
    for X in mats[1:]:
        Y, graph = project_step(X, method, init=layouts[-1], graph=graph, random_state=random_state, **continue_kw)
        layouts.append(Y)
    return layouts


def align_to(prev, Y) -> np.ndarray:
    """Rotate/reflect and translate ``Y`` onto ``prev`` (both (N, 2)), keeping scale.

    Used when a step's layout was computed on its own (or from a cached
    neighbouring step) and must be shown in the frame of the step before it.
    """
    Y = _check_layout(Y, None, "Y")
    prev = _check_layout(prev, Y.shape[0], "prev")
    Y64 = Y.astype(np.float64)
    prev64 = prev.astype(np.float64)
    y_mean, p_mean = Y64.mean(axis=0), prev64.mean(axis=0)
    # Orthogonal, not similarity, Procrustes: the layout's own scale carries
    # meaning (a t-SNE map expanding as classes separate), so only the
    # arbitrary rotation/reflection and offset are removed.
    R, _ = orthogonal_procrustes(Y64 - y_mean, prev64 - p_mean)
    return ((Y64 - y_mean) @ R + p_mean).astype(np.float32)


def procrustes_disparity(A, B) -> float:
    """``scipy.spatial.procrustes`` disparity of two (N, 2) layouts.

    Both are centred and scaled to unit norm before the best rotation, so the
    value is in [0, 1]: 0 for layouts equal up to rotation, shift and scale.
    """
    A = _check_layout(A, None, "A")
    B = _check_layout(B, A.shape[0], "B")
    if not np.ptp(A, axis=0).any() or not np.ptp(B, axis=0).any():
        raise ConfigurationError(
            "procrustes_disparity needs layouts whose points are not all identical."
        )
    return float(procrustes(A.astype(np.float64), B.astype(np.float64))[2])


# -- helpers -----------------------------------------------------------------


def _check_method(method) -> str:
    if method not in METHODS:
        raise ConfigurationError(
            f"Unknown projection method {method!r}. Available: {', '.join(METHODS)}."
        )
    return method


def _check_layout(Y, n: int | None, name: str) -> np.ndarray:
    arr = as_matrix(Y, name)
    if arr.shape[1] != 2:
        raise ConfigurationError(f"{name} must be an (N, 2) layout; got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ConfigurationError(
            f"{name} has {arr.shape[0]} points but the data has {n}; they must be the same points."
        )
    return arr


def _construct(cls, label: str, kw: dict, **fixed):
    """``cls(**fixed, **kw)``, turning an unknown keyword into ConfigurationError."""
    clash = sorted(set(fixed) & set(kw))
    if clash:
        raise ConfigurationError(
            f"{label}: {', '.join(clash)} is set by deepviz and cannot be passed."
        )
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *fixed)]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"{label} got unknown option(s) {', '.join(unknown)}. Allowed: {', '.join(allowed)}."
        )
    return cls(**fixed, **kw)


def _pca(X, random_state, kw) -> np.ndarray:
    from sklearn.decomposition import PCA

    k = min(2, X.shape[1], X.shape[0])
    Y = _construct(PCA, "PCA", kw, n_components=k, random_state=random_state).fit_transform(X)
    if k < 2:  # one feature: a line, drawn on the x axis
        Y = np.hstack([Y, np.zeros((Y.shape[0], 2 - k), dtype=Y.dtype)])
    return Y


@contextlib.contextmanager
def _quiet_opentsne():
    # openTSNE warns whenever an initial layout has std > 1e-2, which is
    # exactly what continuing from a finished layout means; silence only that.
    loggers = [logging.getLogger(n) for n in ("openTSNE.tsne", "openTSNE.affinity")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _tsne(X, init, random_state, kw, graph: NeighbourGraph | None = None) -> tuple[np.ndarray, NeighbourGraph]:
    import openTSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    kw = dict(kw)
    n = X.shape[0]
    # openTSNE needs 3 * perplexity < N neighbours; shrink for small probe sets.
    perplexity = kw["perplexity"] = float(min(kw.get("perplexity", 30.0), max((n - 1) / 3.0, 1.0)))
    kw.setdefault("n_jobs", 1)
    schedule = _continuation(kw) if init is not None else None
    tsne = _construct(openTSNE.TSNE, "openTSNE.TSNE", kw, random_state=random_state)
    X = pca_reduce(X, PCA_DIMS, random_state)
    k = min(n - 1, int(3 * perplexity))
    # The previous step's lists seed this step's search (large N; exact below).
    graph = neighbour_graph(X, k, init=graph if graph is not None and graph.k >= k else None,
                            random_state=random_state, n_jobs=tsne.n_jobs)
    with _quiet_opentsne():
        affinities = PerplexityBasedNN(
            perplexity=perplexity, n_jobs=tsne.n_jobs, random_state=random_state,
            knn_index=PrecomputedNeighbors(graph.indices[:, :k], graph.distances[:, :k]),
        )
        if init is None:
            return np.asarray(tsne.fit(X, affinities=affinities)), graph
        emb = tsne.prepare_initial(X, affinities=affinities, initialization=init.astype(np.float64))
        n_iter, ee_iter, exaggeration = schedule
        if ee_iter:
            emb = emb.optimize(n_iter=ee_iter, exaggeration=exaggeration, momentum=tsne.initial_momentum)
        if n_iter:
            emb = emb.optimize(n_iter=n_iter, exaggeration=tsne.exaggeration, momentum=tsne.final_momentum)
    return np.asarray(emb), graph


def _continuation(kw: dict) -> tuple[int, int, float]:
    """(plain iterations, exaggerated iterations, their exaggeration) of a step that continues a layout; pops them from ``kw``."""
    n_iter = kw.pop("n_iter", CONTINUE_N_ITER)
    ee_iter = kw.pop("early_exaggeration_iter", CONTINUE_EXAGGERATION_ITER)
    for name, value in (("n_iter", n_iter), ("early_exaggeration_iter", ee_iter)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigurationError(f"{name} must be an integer >= 0; got {value!r}.")
    return n_iter, ee_iter, float(kw.pop("early_exaggeration", CONTINUE_EXAGGERATION))


def _umap(X, init, random_state, kw) -> np.ndarray:
    import umap  # a dependency; imported here because it loads numba (seconds)

    fixed = dict(n_components=2, random_state=random_state)
    if init is not None:
        fixed["init"] = init.astype(np.float64)
    return _construct(umap.UMAP, "umap.UMAP", kw, **fixed).fit_transform(pca_reduce(X, PCA_DIMS, random_state))
