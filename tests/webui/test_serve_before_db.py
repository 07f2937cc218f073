"""`deepviz serve DB` before the db exists: an empty runs page that waits, then the run as soon as it starts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest

from tests.cli_support import assert_error, run_main
from tests.webui.conftest import screenshot, train_run


def _start_serve(db) -> tuple[subprocess.Popen, str]:
    """`deepviz serve DB --port 0` in its own process; returns it, its URL and what it said on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "deepviz", "serve", str(db), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "deepviz UI for DB at http://127.0.0.1:PORT/  (Ctrl-C to stop)"
    match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
    if not match:
        proc.kill()
        pytest.fail(f"no URL from deepviz serve: {line!r} {proc.stderr.read()[:2000]}")
    return proc, match.group(1)


def _runs(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "api/runs", timeout=10) as res:
        return json.load(res)


@pytest.mark.browser
def test_serve_before_the_db_exists_waits_for_the_first_run(tmp_path, page):
    db = tmp_path / "not_yet" / "stats_db"
    proc, url = _start_serve(db)
    try:
        assert _runs(url) == []
        page.goto(url)
        waiting = page.get_by_test_id("runs-waiting")
        waiting.wait_for(state="visible", timeout=10_000)
        assert "Waiting for a first run" in waiting.inner_text()
        screenshot(page, "serve_before_db_waiting")

        run_id = train_run(db, epochs=1, probe_size=60)  # into the db the server already has open

        runs = _runs(url)
        assert [r["run_id"] for r in runs] == [run_id]
        assert runs[0]["steps"] and runs[0]["n_steps"] == len(runs[0]["steps"])
        row = page.locator(f'tr[data-run="{run_id}"]')
        row.wait_for(timeout=15_000)  # the page polls every 3 s: no reload, no restart
        assert page.get_by_test_id("runs-waiting").is_hidden()
        assert row.get_by_test_id("run-steps").inner_text() == str(len(runs[0]["steps"]))
        screenshot(page, "serve_before_db_picked_up")
        assert page.js_errors == []
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "holds no runs yet: each run shows in the UI as soon as it starts" in err


def test_serve_refuses_a_file(capsys, tmp_path):
    path = tmp_path / "stats.parquet"
    path.write_bytes(b"PAR1")
    code, _, err = run_main(capsys, "serve", path, "--port", "0")
    assert_error(code, err, r"No stats db at '.*stats\.parquet': it is a file, not a stats db folder")
    assert path.read_bytes() == b"PAR1"


def test_serve_refuses_a_place_it_cannot_write(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = run_main(capsys, "serve", blocker / "stats_db", "--port", "0")
    assert_error(code, err, r"The stats db folder '.*a_file/stats_db' is not writable \(Not a directory\)")


def test_serve_refuses_a_folder_of_other_files(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("not a db")
    code, _, err = run_main(capsys, "serve", tmp_path, "--port", "0")
    assert_error(code, err, r"is a folder but not a stats db \(it has no deepviz\.json and no runs/\)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written into it


def test_an_empty_folder_becomes_an_empty_db(tmp_path):
    from deepviz import StatsDB
    from deepviz.store import prepare_db

    assert prepare_db(tmp_path) is True
    assert StatsDB(tmp_path).run_ids() == []
    assert prepare_db(tmp_path) is False  # a db now: left as it is
