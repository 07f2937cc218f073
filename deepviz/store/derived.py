"""Derived tables' files: one computation each, under ``<table>/run_id=<run_id>/<key>/part.parquet``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import pyarrow as pa

from .. import schema as S
from .codec import arrow_schema, publish
from .layout import mtime, refuse_outside

if TYPE_CHECKING:
    from .reader import StatsDB


def get(db: StatsDB, table: str, key: Mapping[str, Any], run_id: str):
    """The stored result as a DataFrame, None when there is none; ``CorruptDataError`` when it cannot be read."""
    path = db.layout.derived_file(table, run_id, key)
    if not path.exists():
        return None
    return db.cache.get(("derived", str(path), mtime(path)), lambda: db._read(path).to_pandas())


def put(db: StatsDB, table: str, key: Mapping[str, Any], frame, run_id: str) -> None:
    import pandas as pd

    path = db.layout.derived_file(table, run_id, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_outside(db._real_root, db.root, path.parent)  # never write through a link leading out of the db
    frame = pd.DataFrame(frame).copy()
    frame["run_id"] = run_id
    columns = S.DERIVED_TABLES[table].column_names
    for k, v in key.items():
        if k in columns:
            frame[k] = v
    arrow = pa.Table.from_pandas(frame, schema=arrow_schema(S.DERIVED_TABLES[table]), preserve_index=False)
    publish(arrow, path, "part")
