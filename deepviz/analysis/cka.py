"""Linear CKA (Kornblith et al., 2019): how alike two representations of the same images are.

1 for representations equal up to rotation and isotropic scaling, near 0 for
unrelated ones.  Compares layers with different widths, or one layer over steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_matrix

__all__ = ["linear_cka", "cka_matrix", "cka_matrix_or_nan"]


def _centred(X, name: str) -> np.ndarray:
    X = as_matrix(X, name, min_rows=2, dtype=np.float64)
    return X - X.mean(axis=0)


def _cross(A: np.ndarray, B: np.ndarray) -> float:
    """``|A^T B|_F^2`` (= <A A^T, B B^T>) by whichever route is cheaper.

    Feature space costs N*Da*Db, Gram space N^2*(Da+Db): wide conv layers with
    more features than images go through the N x N Gram matrices.
    """
    n, da = A.shape
    db = B.shape[1]
    if da * db <= n * (da + db):
        return float(np.sum((A.T @ B) ** 2))
    return float(np.sum((A @ A.T) * (B @ B.T)))


def _cka(A, B, self_a: float, self_b: float) -> float:
    if self_a == 0 or self_b == 0:
        raise ConfigurationError(
            "linear CKA is undefined for a constant representation (every row identical)."
        )
    return _cross(A, B) / np.sqrt(self_a * self_b)


def linear_cka(X, Y) -> float:
    """Linear CKA of X (N, Dx) and Y (N, Dy): rows are the same N images."""
    A, B = _centred(X, "X"), _centred(Y, "Y")
    if A.shape[0] != B.shape[0]:
        raise ConfigurationError(
            f"X has {A.shape[0]} rows and Y has {B.shape[0]}; CKA compares the same images."
        )
    return _cka(A, B, _cross(A, A), _cross(B, B))


def cka_matrix(list_of_X: Sequence) -> np.ndarray:
    """(S, S) symmetric matrix of linear CKA between every pair of representations."""
    if len(list_of_X) == 0:
        raise ConfigurationError("cka_matrix needs at least one (N, D) array; got none.")
    mats = [_centred(X, f"list_of_X[{i}]") for i, X in enumerate(list_of_X)]
    n = mats[0].shape[0]
    for i, M in enumerate(mats):
        if M.shape[0] != n:
            raise ConfigurationError(
                f"list_of_X[{i}] has {M.shape[0]} rows but list_of_X[0] has {n}; "
                "all must hold the same images."
            )
    selfs = [_cross(M, M) for M in mats]
    for i, v in enumerate(selfs):
        if v == 0:
            raise ConfigurationError(
                f"list_of_X[{i}] is constant (every row identical); linear CKA is undefined for it."
            )
    out = np.eye(len(mats))
    for i in range(len(mats)):
        for j in range(i + 1, len(mats)):
            out[i, j] = out[j, i] = _cka(mats[i], mats[j], selfs[i], selfs[j])
    return out


def cka_matrix_or_nan(list_of_X: Sequence) -> np.ndarray:
    """:func:`cka_matrix`, with NaN rows and columns for constant representations instead of an error.

    A dead ReLU layer at step 0 has no CKA; a timeline of CKA must still show the other steps.
    """
    try:
        return cka_matrix(list_of_X)
    except ConfigurationError:
        n = len(list_of_X)
        out = np.full((n, n), np.nan)
        ok = [i for i, r in enumerate(list_of_X) if np.ptp(np.asarray(r), axis=0).any()]
        if ok:
            out[np.ix_(ok, ok)] = cka_matrix([list_of_X[i] for i in ok])
        return out
