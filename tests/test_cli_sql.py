"""``deepviz sql``: output formats, bounded fetching, and the sandbox that the plain command does without."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from deepviz import StatsDB

from .cli_support import assert_error, env_with_repo, run_main, trained  # noqa: F401 - trained is a fixture


def test_bad_sql(capsys, trained):
    code, _, err = run_main(capsys, "sql", trained["db"], "SELEC step FROM steps")
    assert_error(code, err, r"Parser Error: syntax error at or near \"SELEC\"")
    code, _, err = run_main(capsys, "sql", trained["db"], "SELECT * FROM no_such_table")
    assert_error(code, err, r"Table with name no_such_table does not exist")


def test_sql_formats_agree(capsys, trained):
    query = "SELECT step, avg(correct::INT) AS acc, count(*) AS n FROM predictions GROUP BY step ORDER BY step"
    code, table, _ = run_main(capsys, "sql", trained["db"], query)
    assert code == 0
    code, csv_text, _ = run_main(capsys, "sql", trained["db"], query, "--format", "csv")
    code2, json_text, _ = run_main(capsys, "sql", trained["db"], query, "--format", "json")
    assert code == code2 == 0
    rows = json.loads(json_text)
    frame = pd.read_csv(io.StringIO(csv_text))
    assert [r["step"] for r in rows] == frame["step"].tolist() == StatsDB(trained["db"]).steps()
    assert all(r["n"] == 50 for r in rows)
    assert frame["acc"].tolist() == pytest.approx([r["acc"] for r in rows])
    assert len(table.strip().splitlines()) == 1 + len(rows)


def test_sql_json_cells(capsys, trained):
    query = "SELECT 'nan'::DOUBLE AS x, NULL AS y, [1, 2] AS l, 'ab'::BLOB AS b, thumbnail FROM probes LIMIT 1"
    code, out, _ = run_main(capsys, "sql", trained["db"], query, "--format", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["x"] is None and row["y"] is None and row["l"] == [1, 2] and row["b"] == "YWI="
    import base64

    assert base64.b64decode(row["thumbnail"]).startswith(b"\x89PNG")
    code, out, _ = run_main(capsys, "sql", trained["db"], query)
    assert code == 0 and "bytes>" in out  # blobs are summarised, not dumped, in a table


def test_sql_max_rows(capsys, trained):
    code, out, err = run_main(capsys, "sql", trained["db"], "SELECT probe_id FROM probes", "--max-rows", "7",
                              "--format", "csv")
    assert code == 0
    assert len(out.strip().splitlines()) == 1 + 7
    # Streamed: one row more than shown is fetched, so the total is not known (nor paid for).
    assert "(more than 7 rows; showing the first 7" in err


def test_sql_max_rows_fetches_no_more(tmp_path, trained):
    """A 30M-row result with --max-rows 5 stays far below the ~650 MB that fetching it all takes."""
    script = (
        "import re, sys\n"
        "from deepviz.cli import main\n"
        "code = main(['sql', sys.argv[1], 'SELECT range AS x, range * 2 AS y FROM range(30000000)', '--max-rows', '5'])\n"
        "# VmHWM: this process's peak resident memory (ru_maxrss would include pytest's, inherited at fork)\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
        "print('MAXRSS_KB', hwm, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(trained["db"])], env=env_with_repo(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) == 1 + 5
    rss_mb = int(re.search(r"MAXRSS_KB (\d+)", proc.stderr).group(1)) / 1024
    assert rss_mb < 400, f"peak memory {rss_mb:.0f} MB"


def test_sql_is_unsandboxed_and_says_so(capsys, trained, tmp_path):
    code, out, _ = run_main(capsys, "sql", "--help")
    assert code == 0 and "NOT sandboxed" in out and "--sandbox" in out
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n42\n")
    code, out, err = run_main(capsys, "sql", trained["db"], f"SELECT a FROM read_csv('{outside}')", "--format", "csv")
    assert code == 0, err
    assert out.split() == ["a", "42"]


def test_sql_sandbox_applies_the_consoles_rules(capsys, trained, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n42\n")
    code, _, err = run_main(capsys, "sql", trained["db"], f"SELECT a FROM read_csv('{outside}')", "--sandbox")
    assert_error(code, err, r"Refused: the SQL console reads only the db's own tables and files")
    code, _, err = run_main(capsys, "sql", trained["db"], f"COPY steps TO '{tmp_path / 'out.csv'}'", "--sandbox")
    assert_error(code, err, r"Refused: the SQL console is read-only and runs only SELECT queries")
    assert not (tmp_path / "out.csv").exists()
    code, out, err = run_main(capsys, "sql", trained["db"], "SELECT probe_id FROM probes ORDER BY probe_id",
                              "--sandbox", "--max-rows", "3", "--format", "csv")
    assert code == 0 and len(out.strip().splitlines()) == 1 + 3
    assert "(more than 3 rows; showing the first 3" in err


def test_sql_empty_result(capsys, trained):
    code, out, _ = run_main(capsys, "sql", trained["db"], "SELECT step FROM steps WHERE step < 0")
    assert code == 0 and out.startswith("(0 rows; columns: step)")


def test_sql_with_the_query_first_says_the_order(capsys, trained):
    code, _, err = run_main(capsys, "sql", "SELECT count(*) FROM steps", trained["db"])
    assert_error(code, err, r"The db folder comes before the query: deepviz sql .* \"SELECT count")
