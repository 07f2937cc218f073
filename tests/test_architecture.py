"""The house rules of ARCHITECTURE.md, checked on the source: sizes, who imports pyarrow and DuckDB, private store calls."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sorted(p for d in ("deepviz", "webui", "trainers", "bench") for p in (REPO / d).rglob("*.py"))
JS = sorted(p for p in (REPO / "webui/static/js").rglob("*.js") if "vendor" not in p.parts)
#: Functions allowed past 60 lines, each explained in ARCHITECTURE.md ("Exceptions to the size rules").
LONG_FUNCTIONS = {"bench/load.py:main", "bench/timeline.py:main", "deepviz/introspect/maximize.py:maximize_activation",
                  "trainers/train.py:train"}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_no_module_is_over_the_size_limits():
    big = [f"{_rel(p)}: {n} lines" for p in PYTHON if (n := p.read_text().count("\n")) > 400]
    big += [f"{_rel(p)}: {n} lines" for p in JS if (n := p.read_text().count("\n")) > 300]
    assert not big, big


def test_no_function_is_over_sixty_lines_but_the_listed_ones():
    long = set()
    for path in PYTHON:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.add(f"{_rel(path)}:{node.name}")
    assert long <= LONG_FUNCTIONS, sorted(long - LONG_FUNCTIONS)


def test_only_the_store_imports_pyarrow_or_duckdb():
    found = []
    for path in PYTHON:
        # Benchmarks may open the files whose size and speed they measure.
        if path.is_relative_to(REPO / "deepviz/store") or path.is_relative_to(REPO / "bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{_rel(path)}: {n}" for n in names if n.split(".")[0] in ("pyarrow", "duckdb")]
    assert not found, found


def test_nothing_outside_the_store_calls_a_private_method_of_it():
    private = re.compile(r"\b(?:db\(\)|db|store|stats|self\.db)\._[a-z]\w*\(")
    found = [f"{_rel(p)}: {m.group(0)}" for p in PYTHON if not p.is_relative_to(REPO / "deepviz/store")
             for m in private.finditer(p.read_text())]
    assert not found, found
