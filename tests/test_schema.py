"""The schema is the one source of truth: the docs are generated from it, the files follow it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepviz import schema as S
from deepviz.store.codec import arrow_schema

REPO = Path(__file__).resolve().parents[1]


def test_checked_in_readme_is_current():
    generated = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "deepviz.schema"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert generated == S.render_markdown()
    assert (REPO / "stats_db" / "README.md").read_text() == generated, (
        "stats_db/README.md is stale: run `python -m deepviz.schema > stats_db/README.md`"
    )


@pytest.mark.parametrize("table", S.all_tables(), ids=lambda t: t.name)
def test_table_definitions_are_consistent(table):
    names = [name for name, _, _ in table.columns]
    assert len(names) == len(set(names))
    assert set(table.key) <= set(names)
    assert "run_id" in names and table.layout.startswith(f"{table.name}/run_id=<run_id>")
    assert all(doc for _, _, doc in table.columns)
    assert arrow_schema(table).names == names


def test_readme_documents_every_table_and_column():
    text = S.render_markdown()
    assert f"Schema version: **{S.SCHEMA_VERSION}**" in text
    for table in S.all_tables():
        assert f"### `{table.name}`" in text
        for name, _, _ in table.columns:
            assert f"| `{name}` |" in text


@pytest.mark.parametrize("table", S.CORE_TABLES, ids=lambda t: t.name)
def test_written_files_follow_the_schema(populated_db, table):
    files = sorted((populated_db / table.name).glob("**/*.parquet"))
    assert files, f"the populated db has no {table.name} files"
    expected = arrow_schema(table)
    for path in files:
        found = pq.read_schema(path).remove_metadata()
        assert found.names == expected.names, path
        for field, want in zip(found, expected):
            if want.type == pa.binary() and field.name in ("vector", "input"):  # blobs: their width is the file's
                assert pa.types.is_fixed_size_binary(field.type) and b"deepviz.dtype" in field.metadata, (path, field)
            else:
                assert field.type == want.type, (path, field)
