"""The stats database: the only code that touches Parquet or DuckDB.

``StatsWriter`` (``writer``) writes runs and snapshots, one writer per run;
``StatsDB`` (``reader``) reads them back as numpy arrays and pandas frames and
runs SQL over views of the tables (``sql``; the web console's limits in ``sandbox``). Every path comes from
``layout``, which derives it from ``deepviz/schema.py``; ``codec`` holds the
Arrow and Parquet helpers, ``tables`` builds a snapshot's tables, ``runs`` the
run-level reads (``StatsDB``'s base; its one bounded cache is ``deepviz.cache.Cache``), ``lock`` the run lock, ``derived`` the
derived tables' files. DuckDB loads only when SQL is first used.
"""

from .empty import prepare_db
from .layout import DEFAULT_DB, check_layer_name, new_run_id
from .reader import Snapshot, StatsDB
from .writer import StatsWriter


def __getattr__(name):
    # The SQL module loads DuckDB: only when its names are asked for.
    if name == "SQL_MAX_QUERY_CHARS":
        from .sandbox import SQL_MAX_QUERY_CHARS

        return SQL_MAX_QUERY_CHARS
    raise AttributeError(f"module 'deepviz.store' has no attribute {name!r}")


__all__ = ["StatsDB", "StatsWriter", "Snapshot", "DEFAULT_DB", "check_layer_name", "new_run_id", "prepare_db"]
