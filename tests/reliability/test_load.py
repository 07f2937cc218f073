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
