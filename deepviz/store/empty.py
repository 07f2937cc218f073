"""An empty stats db made ahead of its first run, so that a server can wait on it (``deepviz serve``)."""

from __future__ import annotations

import os
from .layout import as_root, check_is_db
from .writer import StatsWriter


def prepare_db(path: str | os.PathLike) -> bool:
    """Make ``path`` an empty stats db when it is missing or an empty folder; return whether it made one.

    Anything else must already be a stats db: a file or a folder of other things is refused at once
    (``NotFoundError``), as is a place that cannot be written (``ConfigurationError``).
    """
    root = as_root(path)  # a local folder or s3://bucket/prefix
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        check_is_db(root)
        return False
    StatsWriter(root)  # the folder and its version file, after a write test
    return True
