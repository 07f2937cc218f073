"""Aligned t-SNE timeline against cold openTSNE runs and scikit-learn, with the layouts' quality.

Synthetic activations that drift slowly, as a layer's do between snapshots
(``drifting_blobs``), and hard: classes overlap (``--spread``), so the
layer's own 10-NN accuracy is about 0.8, not the 1.0 of separable blobs on
which every method looks perfect. For each method it times the whole
sequence and reports, per step, the layout's k-NN accuracy (10 neighbours,
in 2-D) and its 10-NN preservation (share of each point's 10 nearest in the
layer kept in the layout), and the mean and largest Procrustes disparity
between consecutive layouts (0 = the same picture up to rotation, shift and
scale). Ours runs with the options the web UI uses (``method_options``).
scikit-learn, the slowest, runs on the first ``--sklearn-steps`` steps only.

    python bench/aligned_tsne.py                       # 3,000 points x 5 steps (a few minutes)
    python bench/aligned_tsne.py --n 10000 --steps 20  # the issue's size (about an hour on 2 busy cores)
    python bench/aligned_tsne.py --clusters            # also: k-means on PCA-32 against full k-means

For bench/scale.py: ``timeline_figures(n, width, steps)`` returns
``tsne_timeline_s``, ``tsne_knn_gap`` (the largest shortfall of an aligned
layout's k-NN accuracy against the cold openTSNE layout of the same step) and
``tsne_disparity``; ``clusters_s(n, width)`` the seconds of one clustering.

The last line is machine-readable:
    tsne_timeline_s=<x> cold_opentsne_s=<x> tsne_knn_gap=<x> disparity_ours=<max> disparity_cold=<mean> knn_ours=<mean> knn_cold=<mean> nn10_ours=<mean> nn10_cold=<mean> [clusters_s= ari_pca_vs_full=]
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

#: Class spread of the hard data: the layer's own 10-NN accuracy is ~0.8 (1.0 at the old default of 3).
HARD_SPREAD = 0.4


def hard_steps(n: int, steps: int, width: int, drift: float = 0.15, seed: int = 0):
    """Labels and one (n, width) float32 array per step, classes overlapping."""
    return drifting_blobs(n, steps, width, spread=HARD_SPREAD, drift=drift, seed=seed)


def disparities(layouts) -> list[float]:
    from deepviz.analysis.projection import procrustes_disparity

    return [procrustes_disparity(a, b) for a, b in zip(layouts, layouts[1:])] or [0.0]


def quality(Xs, layouts, labels) -> dict:
    from deepviz.analysis.fidelity import layout_knn_accuracy, neighbour_preservation

    return {"knn": [layout_knn_accuracy(Y, labels) for Y in layouts],
            "nn10": [neighbour_preservation(X, Y) for X, Y in zip(Xs, layouts)],
            "disparity": disparities(layouts)}


def timed(fn) -> tuple[list, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def aligned(Xs, seed: int) -> list[np.ndarray]:
    from deepviz.analysis.projection import aligned_layouts
    from webui.projections import method_options

    return aligned_layouts(Xs, "tsne", random_state=seed, **method_options("tsne", len(Xs[0])))


def cold(Xs, seed: int) -> list[np.ndarray]:
    """openTSNE from scratch at every step, same seed (the most favourable setting for runs to look alike),
    on one thread as ours (webui.projections.method_options says why)."""
    import openTSNE

    return [np.asarray(openTSNE.TSNE(n_jobs=1, random_state=seed).fit(X)) for X in Xs]


def timeline_figures(n: int, width: int, steps: int, seed: int = 0, cold_steps: int | None = None) -> dict:
    """``tsne_timeline_s`` (ours, all steps), ``tsne_knn_gap`` and ``tsne_disparity`` (the largest), on hard data.

    The gap compares with cold openTSNE on the first ``cold_steps`` steps (all by default).
    """
    labels, Xs = hard_steps(n, steps, width, seed=seed)
    ours, t_ours, _ = timed(lambda: aligned(Xs, seed))
    k = len(Xs) if cold_steps is None else max(1, min(cold_steps, len(Xs)))
    theirs = cold(Xs[:k], seed)
    q_ours, q_cold = quality(Xs[:k], ours[:k], labels), quality(Xs[:k], theirs, labels)
    return {"tsne_timeline_s": t_ours,
            "tsne_knn_gap": max(c - o for c, o in zip(q_cold["knn"], q_ours["knn"])),
            "tsne_disparity": max(disparities(ours))}


def clusters_s(n: int, width: int, k: int = 10, seed: int = 0) -> float:
    """Seconds of one ``deepviz.analysis.clusters.kmeans`` (PCA-32, then k-means) of hard (n, width) activations."""
    from deepviz.analysis.clusters import kmeans

    X = hard_steps(n, 1, width, seed=seed)[1][0]
    return timed(lambda: kmeans(X, k, random_state=seed))[1]


def compare_clusters(n: int, width: int, seed: int) -> tuple[float, float, float]:
    """(seconds ours, seconds full-width k-means, adjusted Rand index between them)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from deepviz.analysis.clusters import kmeans

    X = hard_steps(n, 1, width, seed=seed)[1][0]
    ours, t_ours, _ = timed(lambda: kmeans(X, 10, random_state=seed))
    full, t_full, _ = timed(lambda: KMeans(n_clusters=10, n_init=4, random_state=seed).fit_predict(X))
    return t_ours, t_full, adjusted_rand_score(full, ours)


def report(name: str, wall: float, cpu: float, steps: int, q: dict) -> None:
    print(f"{name:22s} {wall:8.1f} s wall {cpu:8.1f} s cpu ({wall / steps:.2f} s/step)  "
          f"disparity mean {np.mean(q['disparity']):.4f} max {np.max(q['disparity']):.4f}  "
          f"knn {' '.join(f'{v:.3f}' for v in q['knn'])}  nn10 {' '.join(f'{v:.3f}' for v in q['nn10'])}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="points per step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64, help="width of the layer")
    parser.add_argument("--drift", type=float, default=0.15, help="per-step change, 0..1")
    parser.add_argument("--sklearn-steps", type=int, default=1, help="steps run with scikit-learn (0: none)")
    parser.add_argument("--clusters", action="store_true", help="also compare k-means on PCA-32 with full-width k-means")
    parser.add_argument("--cluster-n", type=int, default=20_000)
    parser.add_argument("--cluster-dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    labels, Xs = hard_steps(args.n, args.steps, args.dim, args.drift, args.seed)
    ours, t_ours, c_ours = timed(lambda: aligned(Xs, args.seed))
    q_ours = quality(Xs, ours, labels)
    report("deepviz aligned", t_ours, c_ours, args.steps, q_ours)
    theirs, t_cold, c_cold = timed(lambda: cold(Xs, args.seed))
    q_cold = quality(Xs, theirs, labels)
    report("openTSNE cold per step", t_cold, c_cold, args.steps, q_cold)
    sk_steps = min(args.sklearn_steps, args.steps)
    if sk_steps:
        from sklearn.manifold import TSNE

        sk, t_sk, c_sk = timed(lambda: [TSNE(n_components=2, random_state=args.seed).fit_transform(X) for X in Xs[:sk_steps]])
        report(f"sklearn ({sk_steps} step{'s' if sk_steps > 1 else ''})", t_sk, c_sk, sk_steps, quality(Xs[:sk_steps], sk, labels))
        print(f"sklearn per step against ours: {t_sk / sk_steps / (t_ours / args.steps):.1f}x", flush=True)
    gap = max(c - o for c, o in zip(q_cold["knn"], q_ours["knn"]))
    print(f"n={args.n} steps={args.steps} dim={args.dim} drift={args.drift}; the layer's own 10-NN accuracy "
          f"at step 0: {layer_knn_accuracy(Xs[0], labels):.3f} (not trivially separable)")
    line = (f"tsne_timeline_s={t_ours:.1f} cold_opentsne_s={t_cold:.1f} tsne_knn_gap={gap:.4f} "
            f"disparity_ours={max(q_ours['disparity']):.4f} disparity_cold={np.mean(q_cold['disparity']):.4f} "
            f"knn_ours={np.mean(q_ours['knn']):.4f} knn_cold={np.mean(q_cold['knn']):.4f} "
            f"nn10_ours={np.mean(q_ours['nn10']):.4f} nn10_cold={np.mean(q_cold['nn10']):.4f}")
    if args.clusters:
        t_c, t_full, ari = compare_clusters(args.cluster_n, args.cluster_dim, args.seed)
        print(f"k-means of {args.cluster_n} x {args.cluster_dim}: PCA-32 {t_c:.2f} s, full width {t_full:.2f} s "
              f"({t_full / t_c:.1f}x), adjusted Rand {ari:.3f}", flush=True)
        line += f" clusters_s={t_c:.2f} ari_pca_vs_full={ari:.3f}"
    print(line)


def layer_knn_accuracy(X, labels) -> float:
    from deepviz.analysis.quality import knn_accuracy

    return knn_accuracy(X, labels, k=10, metric="euclidean")


if __name__ == "__main__":
    main()
