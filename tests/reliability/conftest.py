"""Fixtures of the reliability tests: the web UI's trained run and app, and a private copy to damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.webui.conftest import app, assert_api_error, client, run_id, webui_db  # noqa: F401  (fixtures reused)


@pytest.fixture()
def db_copy(webui_db, tmp_path) -> Path:  # noqa: F811
    """A copy of the trained run's db that a test may corrupt (the shared one is never changed)."""
    copy = tmp_path / "db"
    # Without temporary files: another test's app may be writing a derived table into the shared db just now,
    # and a temporary file is never part of a db.
    shutil.copytree(webui_db, copy, ignore=shutil.ignore_patterns(".*.tmp"))
    return copy
