"""deepviz: training-time monitoring for image classifiers.

Add :class:`StatsCallback` to a Lightning ``Trainer`` (or call a :class:`Recorder`
from any training loop); read the stats database
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

# Heavy parts load when first asked for: `import deepviz` (or deepviz.introspect)
# pulls in neither Lightning nor pyarrow/DuckDB until they are used.
_LAZY = {
    "StatsCallback": ".callback",
    "Recorder": ".recorder",
    "StatsDB": ".store",
    "StatsWriter": ".store",
    "Snapshot": ".store",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepviz' has no attribute {name!r}")


__all__ = [
    "StatsCallback",
    "Recorder",
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
