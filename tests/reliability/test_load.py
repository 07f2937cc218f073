"""Load on waitress with ``deepviz serve``'s settings: bench/load.py at 50 and 200 clients (no errors, a bounded
tail), and slow SQL queries that must not hold up the other clients."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def bench(tmp_path, clients: int, requests: int, think_ms: int, *extra: str, out: list | None = None):
    """bench/load.py on a 1,000-image run: (requests, errors, p50_ms, p99_ms, its last line); its whole
    output is appended to ``out``."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), "--n", "1000", "--steps", "4", "--method", "pca",
         "--requests", str(requests), "--clients", str(clients), "--think-ms", str(think_ms), "--db", str(tmp_path / "db"),
         *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    if out is not None:
        out.append(proc.stdout)
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"requests=(\d+) errors=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+)", last)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    return int(m[1]), int(m[2]), float(m[3]), float(m[4]), last


@pytest.mark.slow
def test_fifty_clients_on_waitress(tmp_path):
    # The mix of docs/reliability.md's figures, every step warm (the heavy routes and cold steps: the test below).
    requests, errors, p50, p99, last = bench(tmp_path, 50, 1000, 200, "--mix", "light", "--cold-share", "0")
    assert requests >= 1000 and errors == 0, last
    # The target is 200 ms on a quiet machine (docs/reliability.md); the shared CI box gets slack.
    assert p99 <= 500, last
    print(last)


@pytest.mark.slow
def test_two_hundred_clients_on_waitress(tmp_path):
    """At 200 clients with keep-alive connections waitress's default connection_limit of 100 made the rest
    wait (p99 7.6 s measured); webui.server's settings hold them all."""
    requests, errors, p50, p99, last = bench(tmp_path, 200, 2000, 1000, "--mix", "light", "--cold-share", "0")
    assert requests >= 2000 and errors == 0, last
    assert p99 <= 2000, last
    print(last)


@pytest.mark.slow
def test_the_rate_of_fifty_active_people_with_the_embedding_views_heavy_routes_and_cold_steps(tmp_path):
    """Open loop: 50 people clicking every 2 s on average (25 clicks/s offered whatever the answer times);
    the mix asks for clusters and the mosaic's tiles, and a step left cold by the warm-up is first read under load."""
    out: list[str] = []
    requests, errors, p50, p99, last = bench(tmp_path, 16, 300, 0, "--users", "50", "--click-every-s", "2",
                                             "--cold-share", "0.25", out=out)
    assert requests >= 300 and errors == 0, last
    assert "offering 25.0 clicks/s: 50 people clicking every 2 s" in out[0]
    assert re.search(r"cold: steps \[\d+\] and the mosaic's tiles", out[0]), out[0]
    families = dict(re.findall(r"family (\w+(?: \w+)?) +n=(\d+)", out[0]))
    assert int(families["embedding heavy"]) > 0 and int(families["step switch"]) > 0, out[0]
    assert re.search(r"clicks waiting for a free connection: p50_ms=[\d.]+ p99_ms=[\d.]+", out[0]), out[0]
    assert p99 <= 2000, last


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


@pytest.mark.slow
def test_the_scale_benchmark_ends_with_its_line_of_figures(tmp_path):
    """bench/scale.py at a CI size: every figure of issue 13's line, in its order, with a value."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale.py"), "--n", "300", "--steps", "3", "--passes", "2",
         "--repeats", "1", "--db", str(tmp_path / "db")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    names = ("snapshot_vs_forward piggyback_overhead run_start_s train_peak_rss_mb bytes_per_value step_switch_p50_ms "
             "step_switch_p99_ms predictions_bytes first_paint_bytes clusters_s tsne_timeline_s tsne_knn_gap "
             "server_rss_mb sql_ms").split()
    pairs = [field.split("=") for field in last.split(" ")]
    assert [name for name, _ in pairs] == names, last
    values = dict(pairs)
    assert values["tsne_timeline_s"] == values["tsne_knn_gap"] == "nan"  # skipped unless --tsne
    assert all(float(v) > 0 for k, v in values.items() if not k.startswith("tsne")), last
    assert float(values["bytes_per_value"]) < 4, last  # float16 activations and their Parquet pages
    assert re.search(r"sql_ms +[\d.]+ +target <= 12 ", proc.stdout), proc.stdout
