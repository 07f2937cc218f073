"""k-means as the web UI runs it (``deepviz.analysis.clusters.kmeans``) against k-means on the full width, step by
step on a real run's activations, and its time at scale.

    python bench/clusters.py --db ./stats_db [--run R] [--layer L] [--k 10]
    python bench/clusters.py --db ./stats_db --n 100000     # also the time on synthetic 100,000 x 512

For every step: the adjusted Rand index (ARI) of ours (PCA-32, then k-means) against scikit-learn's k-means on the full width (4 starts,
seed 0), and, as the ceiling, full-width k-means with seed 0 against seed 1 (where that is far below 1, k-means
itself has no one answer to match: the clusters are not separate yet). The last line::

    ari_min= ari_mean= ari_ceiling_min= ari_ceiling_mean= steps_ge_0.9= ours_s= full_s= [clusters_s_100k=]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def full_kmeans(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X)


def compare(db_path: Path, run: str | None, layer: str | None, k: int) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score

    from deepviz import StatsDB
    from deepviz.analysis.clusters import kmeans

    db = StatsDB(db_path)
    run = db.resolve_run(run)
    layer = layer or db.run_info(run)["layers"][-2]  # the widest of the last: the penultimate layer
    aris, ceilings, ours_s, full_s = [], [], [], []
    for step in db.steps(run):
        X = db.activations(step, layer, run)
        t0 = time.perf_counter()
        ours = kmeans(X, k, random_state=0)
        t1 = time.perf_counter()
        full = full_kmeans(X, k, 0)
        t2 = time.perf_counter()
        other = full_kmeans(X, k, 1)
        ours_s.append(t1 - t0)
        full_s.append(t2 - t1)
        aris.append(adjusted_rand_score(full, ours))
        ceilings.append(adjusted_rand_score(full, other))
        print(f"step {step:>6} {layer} {X.shape}: ARI ours/full {aris[-1]:.3f}  full seed 0/1 {ceilings[-1]:.3f}  "
              f"ours {ours_s[-1]:.2f} s full {full_s[-1]:.2f} s", flush=True)
    return {"ari_min": min(aris), "ari_mean": statistics.mean(aris), "ari_ceiling_min": min(ceilings),
            "ari_ceiling_mean": statistics.mean(ceilings), "steps_ge_0.9": sum(a >= 0.9 for a in aris) / len(aris),
            "ours_s": sum(ours_s), "full_s": sum(full_s)}


def seconds_at(n: int, dim: int = 512, k: int = 10) -> float:
    """Seconds of one ``kmeans`` of bench/scale.py's synthetic activations at its middle step."""
    from scale import N_CLASSES, step_activations

    from deepviz.analysis.clusters import kmeans

    rng = np.random.default_rng(0)
    labels = rng.integers(0, N_CLASSES, n)
    centres = rng.standard_normal((N_CLASSES, dim)).astype(np.float32) / np.sqrt(dim) * 4
    X = step_activations(labels, centres, 10, 20, 0)
    t0 = time.perf_counter()
    kmeans(X, k)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=Path, required=True, help="a stats db of a real run (e.g. deepviz train's)")
    p.add_argument("--run")
    p.add_argument("--layer")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--n", type=int, help="also time one clustering of synthetic n x 512 activations")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    r = compare(args.db, args.run, args.layer, args.k)
    if args.n:
        r["clusters_s_100k" if args.n == 100_000 else f"clusters_s_{args.n}"] = seconds_at(args.n)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(" ".join(f"{key}={value:.3f}" for key, value in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
