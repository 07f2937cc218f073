"""The derived tables of a stats db: computed on demand from the snapshots, stored, and reused.

This package is the bridge between the pure functions of
:mod:`deepviz.analysis` and the store: it reads through
:class:`deepviz.StatsDB`, computes, and caches with ``put_derived``.
``deepviz analyze`` calls :func:`compute_all`; the web UI keeps one
:class:`Derived` per app and calls its single-item methods lazily.

Every derived row records what it was computed from (``layer_quality`` and
``projections`` rows their ``step``; ``data_map`` rows ``n_steps`` and
``last_step``), and a stale or unreadable stored file is recomputed rather
than served: read derived tables through :func:`read_derived`.
"""

from deepviz.analysis.measures import AGREEMENT_K, QUALITY_METRICS

from .quality import BASELINES
from .service import CKA_ROWS, Derived, compute_all
from .tables import read_derived

__all__ = ["AGREEMENT_K", "BASELINES", "CKA_ROWS", "QUALITY_METRICS", "Derived", "compute_all", "read_derived"]
