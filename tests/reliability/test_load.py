"""A smaller run of bench/load.py: 50 concurrent clients on waitress, no errors, a bounded tail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fifty_clients_on_waitress(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), "--n", "1000", "--steps", "4", "--method", "pca",
         "--requests", "1000", "--clients", "50", "--think-ms", "200", "--db", str(tmp_path / "db")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"requests=(\d+) errors=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+)", last)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    requests, errors, p50, p99 = int(m[1]), int(m[2]), float(m[3]), float(m[4])
    assert requests >= 1000 and errors == 0, proc.stdout[-2000:]
    # The target is 200 ms on a quiet machine (docs/reliability.md); the shared CI box gets slack.
    assert p99 <= 500, last
    print(last)


SLOW_QUERY = "SELECT count(*) FROM range(0, 100000000000) t(i) WHERE i % 7 = 3"


def test_eight_slow_queries_leave_other_clients_answered_quickly(webui_db):
    """The SQL console's pool (2 at once, 4 waiting) bounds the work: of 8 slow queries at once 6 are taken and
    stopped at the time limit, 2 are told the console is busy, and a page of the UI still answers in under 1 s."""
    import http.client
    import json
    import threading
    import time

    from tests.webui.conftest import Waitress
    from webui import create_app

    app = create_app(webui_db, test_config={"SQL_TIMEOUT_S": 4.0})
    rid = app.extensions["deepviz_db"].run_ids()[-1]
    with Waitress(app) as server:
        statuses, errors = [], []

        def slow():
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("POST", "/api/sql", json.dumps({"query": SLOW_QUERY}), {"Content-Type": "application/json"})
            res = conn.getresponse()
            statuses.append(res.status)
            errors.append(json.loads(res.read())["error"])

        threads = [threading.Thread(target=slow) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the queries are running or queued
        latencies = []
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while any(t.is_alive() for t in threads):
            for url in ("/api/runs", f"/api/runs/{rid}", f"/api/runs/{rid}/steps/0/confusion"):
                start = time.perf_counter()
                conn.request("GET", url)
                res = conn.getresponse()
                res.read()
                latencies.append(time.perf_counter() - start)
                assert res.status == 200, url
            time.sleep(0.1)
        for t in threads:
            t.join()
    assert sorted(statuses) == [400] * 6 + [429] * 2, statuses
    assert sum("time limit of 4 s" in e for e in errors) == 6 and sum("SQL jobs are running or queued" in e for e in errors) == 2, errors
    assert len(latencies) >= 9 and max(latencies) < 1.0, sorted(latencies)[-5:]
