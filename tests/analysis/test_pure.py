"""deepviz.analysis is pure: importing all of it loads no storage, and no module in it names the store."""

import pathlib
import subprocess
import sys

import deepviz.analysis


def test_importing_analysis_loads_no_store_duckdb_or_flask():
    code = (
        "import sys, deepviz.analysis; "
        "print([m for m in ('deepviz.store', 'deepviz.derived', 'duckdb', 'flask') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_analysis_module_reads_or_writes_a_db():
    folder = pathlib.Path(deepviz.analysis.__file__).parent
    for path in folder.glob("*.py"):
        text = path.read_text()
        for word in ("deepviz.store", "get_derived", "put_derived", "StatsDB", "import duckdb", "import pyarrow"):
            assert word not in text, f"{path.name} mentions {word}: analysis takes arrays, deepviz.derived reads the db"
