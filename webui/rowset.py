"""The selection's compact form in a URL (pick.js writes it): row ranges "0-9.15", or "b" and a
base64url bitset (bit r of digit r // 6 set: row r), rows being positions in the run's probe order."""

from __future__ import annotations

import numpy as np

from .errors import ApiError

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MAX_LEN = 40_000  # 10,000 single rows as ranges fit; a bitset of 240,000 rows too


def decode_rows(text: str, n: int, name: str = "rows") -> np.ndarray:
    """(n,) bool mask of the rows named by ``text``; rows outside 0..n-1 are dropped."""
    mask = np.zeros(n, dtype=bool)
    if text.startswith("b"):
        digits = np.array([B64.find(c) for c in text[1:]], dtype=np.int64)
        if (digits < 0).any():
            raise ApiError(f"Parameter '{name}' is a bitset with a character outside base64url; got {text[:40]!r}.", 400)
        bits = ((digits[:, None] >> np.arange(6)) & 1).astype(bool).ravel()[:n]
        mask[: bits.size] = bits
        return mask
    for part in text.split("."):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ApiError(f"Parameter '{name}' must be row ranges like '0-9.15' or a 'b' bitset; got part {part[:40]!r}.", 400)
        mask[int(lo): min(n, int(hi or lo) + 1)] = True
    return mask
