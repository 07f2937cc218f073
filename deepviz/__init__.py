"""deepviz: training-time monitoring for image classifiers.

Add :class:`StatsCallback` to a Lightning ``Trainer``; read the stats database
back with :class:`StatsDB` (or plain DuckDB: it is Parquet).
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ConfigurationError,
    CorruptDataError,
    DatasetError,
    DeepvizError,
    NotFoundError,
    QueryError,
    SchemaVersionError,
)
from .store import Snapshot, StatsDB, StatsWriter  # noqa: E402


def __getattr__(name):
    # The callback imports Lightning; load it only when asked for, so that
    # reading a database needs neither Lightning nor a GPU stack at import.
    if name == "StatsCallback":
        from .callback import StatsCallback

        return StatsCallback
    raise AttributeError(f"module 'deepviz' has no attribute {name!r}")


__all__ = [
    "StatsCallback",
    "StatsDB",
    "StatsWriter",
    "Snapshot",
    "DeepvizError",
    "ConfigurationError",
    "NotFoundError",
    "SchemaVersionError",
    "CorruptDataError",
    "DatasetError",
    "QueryError",
    "__version__",
]
