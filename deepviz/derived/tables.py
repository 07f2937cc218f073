"""Reading a cached derived table: an unreadable file is a cache miss, never an error."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from deepviz.errors import CorruptDataError

log = logging.getLogger(__name__)

__all__ = ["read_derived"]


def read_derived(db, table: str, key: Mapping[str, Any], run: str | None = None):
    """The cached frame of ``table`` at ``key``, or None when it was never computed or cannot be read.

    A derived file is a cache of what the snapshots already hold: a truncated
    or corrupt one (``get_derived`` raises :class:`CorruptDataError`) is
    recomputed by the caller and overwritten, so a damaged cache costs time,
    not a failing view.  Use it for every read of a derived table (the web
    UI's projections included).
    """
    try:
        return db.get_derived(table, key, run)
    except CorruptDataError as exc:
        log.warning("%s It is recomputed.", exc)
        return None
