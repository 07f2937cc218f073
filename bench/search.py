"""Benchmark: similarity search over a 10,000-image probe set with a 512-d layer.

Writes a one-step run through ``deepviz.store.StatsWriter`` (CIFAR-sized 3x32x32
inputs, 10 classes, a 512-d layer clustered by class), then times

- ``search_fn``: the layer search alone (``SearchIndex.query`` plus the
  similarity percentages), as the search route calls it;
- ``route``: the whole ``GET /api/runs/<run>/analysis/search?space=layer``
  request through Flask's test client (the UI's layer column), and the same
  with ``space=pixels`` (the 3,072-d pixel-space column, fetched in parallel).

Wall-clock and CPU time (of the whole process, BLAS threads included) are both shown: on a busy
machine the wall clock mostly measures waiting for a core.

Activations are read once and then cached by the store, as in the server.
The last line is ``search_p50_ms=<route p50> n=<probe size>``.

    python bench/search.py [--n 10000] [--dim 512] [--queries 200] [--metric cosine]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(root: Path, n: int, dim: int, seed: int = 0) -> str:
    from PIL import Image

    from deepviz.store import StatsWriter

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, dim)).astype(np.float32) * 3
    acts = centres[labels] + rng.normal(size=(n, dim)).astype(np.float32)
    inputs = (rng.integers(0, 256, (n, 3, 32, 32)) / 255.0).astype(np.float32)
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    run_id = "bench-search"
    w = StatsWriter(root)
    w.write_run({"run_id": run_id, "name": run_id, "started_at": datetime.now(timezone.utc), "model_class": "x:Y",
                 "hparams": "{}", "class_names": [str(i) for i in range(10)], "input_shape": [3, 32, 32],
                 "layers": ["fc"], "conv_layers": [], "n_probe": n})
    w.write_probes(run_id, np.arange(n), labels, [str(i) for i in range(10)], [buf.getvalue()] * n, inputs)
    probs = np.full((n, 10), 0.1, np.float32)
    w.write_snapshot(run_id, 0, epoch=0, trigger="epoch", probe_ids=np.arange(n), labels=labels, probs=probs,
                     loss=np.zeros(n), activations={"fc": acts}, weights={}, metrics={})
    return run_id


def percentiles(times_ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(times_ms, 50)), float(np.percentile(times_ms, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--metric", default="cosine")
    args = ap.parse_args()

    from deepviz import StatsDB
    from deepviz.analysis import similarity_percent
    from deepviz.analysis.search import SearchIndex
    from webui import create_app

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_id = build(Path(tmp) / "db", args.n, args.dim)
        print(f"built a {args.n}-image probe set with a {args.dim}-d layer in {time.perf_counter() - t0:.1f} s")
        rng = np.random.default_rng(1)
        queries = rng.integers(0, args.n, args.queries)

        db = StatsDB(Path(tmp) / "db")
        X = db.activations(0, "fc", run_id)  # first read; cached from now on
        index = SearchIndex(X)
        wall, cpu = [], []
        for q in queries:
            t, c = time.perf_counter(), time.process_time()
            idx, dist, median = index.query(X[q], k=args.k, metric=args.metric, exclude=int(q))
            similarity_percent(dist, args.metric, None if args.metric == "cosine" else median)
            cpu.append((time.process_time() - c) * 1000)
            wall.append((time.perf_counter() - t) * 1000)
        print(f"search_fn  {args.metric}: p50 {percentiles(wall)[0]:.2f} ms wall, {percentiles(cpu)[0]:.2f} ms CPU "
              f"(p95 {percentiles(wall)[1]:.2f} ms wall) over {len(queries)} queries")

        client = create_app(Path(tmp) / "db", test_config={"TESTING": True}).test_client()
        url = f"/api/runs/{run_id}/analysis/search"
        results = {}
        for space in ("pixels", "layer"):
            warm = client.get(url, query_string={"probe": 0, "k": args.k, "metric": args.metric, "space": space})
            assert warm.status_code == 200, warm.get_json()
            wall, cpu = [], []
            for q in queries:
                t, c = time.perf_counter(), time.process_time()
                resp = client.get(url, query_string={"probe": int(q), "k": args.k, "metric": args.metric, "space": space})
                cpu.append((time.process_time() - c) * 1000)
                wall.append((time.perf_counter() - t) * 1000)
                assert resp.status_code == 200
            results[space] = percentiles(wall)
            note = " (3,072-d pixels: the contrast column)" if space == "pixels" else ""
            print(f"route space={space:6s} {args.metric}: p50 {results[space][0]:.2f} ms wall, {percentiles(cpu)[0]:.2f} ms CPU "
                  f"(p95 {results[space][1]:.2f} ms wall){note}")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"search_p50_ms={results['layer'][0]:.2f} n={args.n}")


if __name__ == "__main__":
    main()
