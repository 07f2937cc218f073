"""Aligned t-SNE sequence vs independent sklearn TSNE runs, one per step.

Synthetic embeddings that drift slowly, as a layer's activations do between
two snapshots: 10 class centres plus a per-image offset; every step the
centres random-walk and each offset is partly redrawn.  For both approaches
we time the whole sequence and report the mean Procrustes disparity between
consecutive layouts (0 = same picture up to rotation/shift/scale).

    python bench/aligned_tsne.py --n 2000 --steps 6

The last line is machine-readable:
    aligned_tsne_speedup=<sklearn/ours> disparity_ours=<x> disparity_sklearn=<x>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# Run from a checkout without installing: make `import deepviz` find the repo.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepviz.analysis.synthetic import drifting_blobs  # noqa: E402


def drifting_embeddings(n: int, steps: int, dim: int, drift: float, seed: int) -> list[np.ndarray]:
    return drifting_blobs(n, steps, dim, drift=drift, seed=seed)[1]


def mean_consecutive_disparity(layouts) -> float:
    from deepviz.analysis.projection import procrustes_disparity

    return float(np.mean([procrustes_disparity(a, b) for a, b in zip(layouts, layouts[1:])]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="points per step")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--drift", type=float, default=0.1, help="per-step change, 0..1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.manifold import TSNE

    from deepviz.analysis.projection import aligned_layouts

    Xs = drifting_embeddings(args.n, args.steps, args.dim, args.drift, args.seed)

    t0, c0 = time.perf_counter(), time.process_time()
    # sklearn's Barnes-Hut runs on every core (OpenMP); give ours the same.
    ours = aligned_layouts(Xs, "tsne", random_state=args.seed, n_jobs=-1)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    d_ours = mean_consecutive_disparity(ours)
    print(f"ours:    {t_ours:8.1f} s wall {c_ours:8.1f} s cpu ({t_ours / args.steps:.2f} s/step)  disparity {d_ours:.4f}", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    # Same seed every step (PCA init is sklearn's default): the most
    # favourable setting for independent runs to look alike.
    theirs = [TSNE(n_components=2, random_state=args.seed).fit_transform(X) for X in Xs]
    t_sk, c_sk = time.perf_counter() - t0, time.process_time() - c0
    d_sk = mean_consecutive_disparity(theirs)
    print(f"sklearn: {t_sk:8.1f} s wall {c_sk:8.1f} s cpu ({t_sk / args.steps:.2f} s/step)  disparity {d_sk:.4f}", flush=True)

    print(f"n={args.n} steps={args.steps} dim={args.dim} drift={args.drift} "
          f"cpu_speedup={c_sk / c_ours:.2f}")
    print(f"aligned_tsne_speedup={t_sk / t_ours:.2f} disparity_ours={d_ours:.4f} disparity_sklearn={d_sk:.4f}")


if __name__ == "__main__":
    main()
