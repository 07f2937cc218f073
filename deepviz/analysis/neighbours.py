"""Nearest neighbours of probe images in a layer's activations (similarity search).

Brute force with matrix products: one query against 10,000 x 512 float32 rows
is a single BLAS call plus ``argpartition``, a few milliseconds, with nothing to
fit or cache, so the candidate pool can change with every request.
"""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import METRICS, as_matrix, check_metric, non_finite_error, positive_int

__all__ = ["METRICS", "distances", "nearest", "similarity_percent"]

# Rows of X per chunk for Minkowski, whose (Q, chunk, D) difference tensor is
# materialised; keeps it near 64 MiB.
_MINKOWSKI_CHUNK_FLOATS = 16 * 1024 * 1024


def distances(query, X, metric: str = "cosine", p: float = 3) -> np.ndarray:
    """Distances (Q, N) float32 from each query (D,) or (Q, D) to every row of X (N, D).

    Euclidean values carry an absolute error of about ``1e-7 * |x|^2`` from
    the fast expansion; :func:`nearest` returns exact values for its results.

    cosine is ``1 - cos(angle)`` in [0, 2] (a zero vector is at distance 1 from
    everything); euclidean/sqeuclidean via ``|q|^2 + |x|^2 - 2 q.x``;
    minkowski ``(sum |q - x|^p)^(1/p)``.
    """
    check_metric(metric, p)
    # X is not scanned for NaN up front (a whole extra pass over a large
    # matrix); a NaN or inf in it shows up in the (Q, N) result instead.
    X = as_matrix(X, "X", check_finite=False)
    q = np.asarray(query)
    q = as_matrix(q[None, :] if q.ndim == 1 else q, "query")
    if q.shape[1] != X.shape[1]:
        raise ConfigurationError(
            f"query has {q.shape[1]} features but X has {X.shape[1]}; they must match."
        )
    d = _minkowski(q, X, float(p)) if metric == "minkowski" else _inner(q, X, metric)
    if not np.isfinite(d).all():
        raise non_finite_error("X")
    return d


def _inner(q: np.ndarray, X: np.ndarray, metric: str) -> np.ndarray:
    dots = q @ X.T
    if metric == "cosine":
        qn = np.linalg.norm(q, axis=1)
        xn = np.sqrt(np.einsum("ij,ij->i", X, X))
        if not np.isfinite(xn).all():  # inf / inf would hide an inf in X as NaN-free 0
            raise non_finite_error("X")
        denom = np.outer(qn, xn)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(denom > 0, dots / np.where(denom > 0, denom, 1), 0.0)
        return (1.0 - np.clip(cos, -1.0, 1.0)).astype(np.float32)
    sq = np.einsum("ij,ij->i", q, q)[:, None] + np.einsum("ij,ij->i", X, X)[None, :] - 2 * dots
    np.maximum(sq, 0, out=sq)  # rounding can push a self-distance below zero
    return (sq if metric == "sqeuclidean" else np.sqrt(sq)).astype(np.float32)


def _minkowski(q: np.ndarray, X: np.ndarray, p: float) -> np.ndarray:
    out = np.empty((q.shape[0], X.shape[0]), dtype=np.float32)
    chunk = max(1, _MINKOWSKI_CHUNK_FLOATS // max(1, q.shape[0] * X.shape[1]))
    for s in range(0, X.shape[0], chunk):
        diff = np.abs(q[:, None, :] - X[None, s:s + chunk, :])
        if p == int(p) and p <= 4:  # integer powers by multiplication: ~5x faster than **
            acc = diff.copy()
            for _ in range(int(p) - 1):
                acc *= diff
        else:
            acc = diff**p
        out[:, s:s + chunk] = acc.sum(axis=2) ** (1.0 / p)
    return out


def nearest(query, X, k: int = 10, metric: str = "cosine", p: float = 3,
            candidates=None, exclude=None):
    """The ``k`` rows of X nearest to ``query``: ``(indices, distances)``, nearest first.

    ``candidates`` restricts the pool to those row indices (e.g. one class or
    one split); ``exclude`` drops row indices (e.g. the query image itself).
    Indices always refer to rows of X.  A (D,) query gives 1-D results, a
    (Q, D) query (Q, k) results.  Fewer than ``k`` are returned when the pool
    is smaller.  Deterministic; equal distances are listed lower index first.
    """
    k = positive_int(k, "k")
    check_metric(metric, p)
    X = as_matrix(X, "X", check_finite=False)
    single = np.asarray(query).ndim == 1
    pool = np.arange(X.shape[0])
    if candidates is not None:
        pool = _check_indices(candidates, X.shape[0], "candidates")
        pool = np.unique(pool)
    if exclude is not None:
        pool = np.setdiff1d(pool, _check_indices(exclude, X.shape[0], "exclude"), assume_unique=False)
    sub = X if pool.size == X.shape[0] else X[pool]
    if pool.size == 0:
        d = np.empty((1 if single else np.asarray(query).shape[0], 0), dtype=np.float32)
        idx = np.empty(d.shape, dtype=np.int64)
    else:
        d = distances(query, sub, metric, p)
        kk = min(k, pool.size)
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < pool.size else np.tile(np.arange(pool.size), (d.shape[0], 1))
        pd = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, pd), axis=1)  # by distance, then index
        local = np.take_along_axis(part, order, axis=1)
        d = np.take_along_axis(pd, order, axis=1)
        idx = pool[local]
        if metric in ("euclidean", "sqeuclidean"):
            d = _exact_euclidean(query, X, idx, metric)
    return (idx[0], d[0]) if single else (idx, d)


def _exact_euclidean(query, X, idx, metric):
    """Recompute the k chosen distances directly.

    The ``|q|^2 + |x|^2 - 2 q.x`` expansion loses about ``eps * |x|^2`` to
    cancellation in float32 (a self-distance of 0.002 instead of 0); the k
    results shown to a user get the exact value, at the cost of k rows.
    """
    q = np.asarray(query, dtype=np.float32).reshape(idx.shape[0], 1, -1)
    sq = np.square(X[idx] - q).sum(axis=2)
    d = sq if metric == "sqeuclidean" else np.sqrt(sq)
    order = np.lexsort((idx, d), axis=1)  # keep the nearest-first order exact
    np.copyto(idx, np.take_along_axis(idx, order, axis=1))
    return np.take_along_axis(d, order, axis=1).astype(np.float32)


def _check_indices(idx, n: int, name: str) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ConfigurationError(f"{name} as a boolean mask must have length {n}; got shape {arr.shape}.")
        return np.flatnonzero(arr)
    arr = arr.ravel()
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigurationError(f"{name} must be integer row indices or a boolean mask; got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ConfigurationError(f"{name} holds index {arr[(arr < 0) | (arr >= n)][0]}, outside 0..{n - 1}.")
    return arr


def similarity_percent(distances, metric: str, scale: float | None = None) -> np.ndarray:
    """Distances mapped to 0..100 for display (100 = identical).

    cosine: ``100 * (1 - d)``, i.e. the cosine similarity in percent, clipped
    at 0 (opposite directions show as 0 %).  Other metrics have no natural
    upper bound, so they are shown relative to a reference distance:
    ``100 * (1 - d / scale)`` clipped to 0..100, where ``scale`` defaults to
    the largest distance given (the farthest of the shown results is 0 %);
    pass a typical distance of the pool (e.g. its median) for values that are
    comparable between queries.  Squared Euclidean distances are square-rooted
    first so the percentage is linear in distance.
    """
    check_metric(metric, 3)
    d = np.asarray(distances, dtype=np.float64)
    if metric == "cosine":
        return np.clip(100.0 * (1.0 - d), 0.0, 100.0)
    if metric == "sqeuclidean":
        d = np.sqrt(np.maximum(d, 0))
        scale = None if scale is None else np.sqrt(scale)
    if scale is None:
        scale = float(d.max()) if d.size else 1.0
    elif not np.isfinite(scale) or scale <= 0:
        raise ConfigurationError(f"scale must be a positive distance; got {scale!r}.")
    if scale == 0:  # every distance is 0: all identical
        return np.full(d.shape, 100.0)
    return np.clip(100.0 * (1.0 - d / scale), 0.0, 100.0)
