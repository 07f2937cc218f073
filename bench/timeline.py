"""Timeline benchmark: step switching in the web UI, and aligned t-SNE vs independent runs.

Builds a run through the store (``StatsWriter``) with ``--n`` probe images and
``--steps`` snapshots of synthetic activations that drift slowly, as a layer's
do between snapshots (class centres random-walk, each image's offset is partly
redrawn). Then:

1. caches the projection sequence of the layer through the web app's own
   background job, and times the step-switch API against it with Flask's test
   client: one switch = the two requests the Embedding tab makes for a step
   (``/steps/<s>/projection`` and ``/steps/<s>/predictions``), steps visited in
   random order, ``--passes`` times, from a fresh process (the first pass reads
   every file cold). A selection or filter adds no request to a switch: the
   browser highlights it from the step's predictions, which the switch fetches
   anyway (``webui/static/js/pick.js``), so this is also the switch with a
   selection active;
2. times the A | B panel's "what moved most" (``/moved``: k-NN sets of every
   image at two steps) once computed and once cached;
3. times building aligned t-SNE layouts for all steps (``aligned_layouts``,
   with the options the web UI uses) against cold openTSNE runs, one per step,
   and scikit-learn's ``TSNE`` on one step, on hard data (classes overlap, as
   in bench/aligned_tsne.py: on the run's separable blobs every layout scores
   1.0), and prints each layout's k-NN accuracy and 10-NN preservation and the
   Procrustes disparity between consecutive layouts (0 = the same picture up
   to rotation, shift and scale). ``--tsne-n`` and ``--tsne-steps`` size it.

    python bench/timeline.py                     # 5,000 points x 10 steps; t-SNE on 1,500 x 4 (under 5 min)
    python bench/timeline.py --n 10000 --steps 20 --tsne-n 10000 --tsne-steps 20

The last line is machine-readable:
    step_switch_p50_ms=<x> step_switch_p99_ms=<x> moved_ms=<x> moved_cached_ms=<x> cold_opentsne_vs_ours=<x> sklearn_step_vs_ours=<x>
    tsne_knn_gap=<x> disparity_ours=<max> disparity_cold=<mean> nn10_ours=<mean> nn10_cold=<mean>   (one line)
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# Run from a checkout without installing: make `import deepviz` / `import webui` work.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aligned_tsne import aligned, cold, hard_steps, quality, report, timed  # noqa: E402

from deepviz.analysis.synthetic import drifting_blobs  # noqa: E402

LAYER = "fc1"
N_CLASSES = 10


def drifting_activations(n: int, steps: int, dim: int, drift: float, seed: int):
    """Labels and one (n, dim) float32 array per step; classes separate as steps go on."""
    return drifting_blobs(n, steps, dim, n_classes=N_CLASSES, drift=drift, seed=seed)


def build_run(root: Path, n: int, steps: int, dim: int, drift: float, seed: int) -> tuple[str, list[np.ndarray]]:
    from PIL import Image

    from deepviz.store import StatsWriter

    labels, acts = drifting_activations(n, steps, dim, drift, seed)
    rng = np.random.default_rng(seed + 1)
    inputs = rng.random((n, 1, 8, 8), dtype=np.float32)
    thumbs = []
    for img in inputs:
        buf = io.BytesIO()
        Image.fromarray((img[0] * 255).astype(np.uint8), "L").save(buf, format="PNG")
        thumbs.append(buf.getvalue())
    writer = StatsWriter(root)
    run_id = "bench-timeline"
    class_names = [f"class{i}" for i in range(N_CLASSES)]
    writer.write_run({
        "run_id": run_id, "name": run_id, "started_at": datetime.now(timezone.utc), "ended_at": datetime.now(timezone.utc),
        "deepviz_version": "bench", "model_class": "bench.timeline:Synthetic", "model_summary": "synthetic activations",
        "n_params": 0, "hparams": "{}", "dataset": "synthetic", "class_names": class_names, "input_shape": [1, 8, 8],
        "layers": [LAYER], "conv_layers": [], "n_probe": n, "probe_seed": seed, "world_size": 1, "activation_dtype": "float16",
    })
    ids = np.arange(n)
    writer.write_probes(run_id, ids, labels, class_names, thumbs, inputs)
    for i, X in enumerate(acts):
        # Predictions from the distance to each class's mean activation: accuracy rises as classes separate.
        means = np.stack([X[labels == c].mean(0) for c in range(N_CLASSES)])
        logits = -((X[:, None, :] - means[None]) ** 2).sum(-1) / dim
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        loss = -np.log(probs[ids, labels] + 1e-12)
        writer.write_snapshot(
            run_id, i * 100, epoch=i, trigger="epoch", probe_ids=ids, labels=labels, probs=probs, loss=loss,
            activations={LAYER: X}, weights={}, metrics={"val_acc": float((probs.argmax(1) == labels).mean())},
        )
    return run_id, acts


def wait_for_projections(client, run_id: str, query: str) -> dict:
    url = f"/api/runs/{run_id}/projection?{query}"
    status = client.post(url).get_json()
    while status["running"]:
        time.sleep(0.05)
        status = client.get(url).get_json()
    if status["done"] != status["total"]:
        raise SystemExit(f"projection failed: {status}")
    return status


def time_step_switches(db: Path, run_id: str, query: str, passes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from webui import create_app

    client = create_app(db, test_config={"TESTING": True}).test_client()  # a fresh process cache
    steps = [s["step"] for s in client.get(f"/api/runs/{run_id}").get_json()["steps"]]
    rng = np.random.default_rng(seed)
    times, proj_times = [], []
    for _ in range(passes):
        for step in rng.permutation(steps):
            t0 = time.perf_counter()
            a = client.get(f"/api/runs/{run_id}/steps/{step}/projection?{query}")
            t1 = time.perf_counter()
            b = client.get(f"/api/runs/{run_id}/steps/{step}/predictions")
            t2 = time.perf_counter()
            if a.status_code != 200 or b.status_code != 200:
                raise SystemExit(f"step {step}: HTTP {a.status_code} / {b.status_code}")
            times.append(t2 - t0)
            proj_times.append(t1 - t0)
    return np.array(times) * 1e3, np.array(proj_times) * 1e3


def time_moved(db: Path, run_id: str) -> tuple[float, float]:
    """Milliseconds of the A | B panel's /moved between the first and last step: computed, then cached."""
    from webui import create_app

    client = create_app(db, test_config={"TESTING": True, "COMPUTE_WAIT_S": 600}).test_client()
    steps = [s["step"] for s in client.get(f"/api/runs/{run_id}").get_json()["steps"]]
    url = f"/api/runs/{run_id}/moved?layer={LAYER}&a={steps[0]}&b={steps[-1]}"
    out = []
    for _ in range(2):
        t0 = time.perf_counter()
        res = client.get(url)
        out.append((time.perf_counter() - t0) * 1e3)
        if res.status_code != 200:
            raise SystemExit(f"/moved: HTTP {res.status_code}: {res.get_data(as_text=True)[:200]}")
    return out[0], out[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="probe images")
    parser.add_argument("--steps", type=int, default=10, help="snapshots")
    parser.add_argument("--tsne-n", type=int, default=1500, help="images in the t-SNE comparison (at most --n)")
    parser.add_argument("--tsne-steps", type=int, default=4, help="steps in the t-SNE comparison (at most --steps)")
    parser.add_argument("--dim", type=int, default=64, help="width of the layer")
    parser.add_argument("--drift", type=float, default=0.1, help="per-step change, 0..1")
    parser.add_argument("--passes", type=int, default=5, help="passes over all steps when timing step switches")
    parser.add_argument("--method", default="pca", choices=("pca", "tsne"), help="projection cached for the step-switch timing (the read path is the same)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, default=None, help="where to build the db (default: a temporary folder, removed after)")
    args = parser.parse_args(argv)
    tsne_n = min(args.tsne_n, args.n)
    tsne_steps = min(args.tsne_steps, args.steps)

    root = args.db or Path(tempfile.mkdtemp(prefix="deepviz-bench-"))
    db = root / "stats_db"
    try:
        t0 = time.perf_counter()
        run_id, acts = build_run(db, args.n, args.steps, args.dim, args.drift, args.seed)
        print(f"built run: {args.n} probe images x {args.steps} steps in {time.perf_counter() - t0:.1f} s", flush=True)

        from webui import create_app

        query = f"layer={LAYER}&method={args.method}&seed={args.seed}"
        t0 = time.perf_counter()
        wait_for_projections(create_app(db, test_config={"TESTING": True}).test_client(), run_id, query)
        print(f"cached {args.method} projections of all steps through the web app in {time.perf_counter() - t0:.1f} s", flush=True)

        switch, proj = time_step_switches(db, run_id, query, args.passes, args.seed)
        first_pass = switch[: args.steps]
        p50, p99 = np.percentile(switch, 50), np.percentile(switch, 99)
        print(f"step switch (projection + predictions), {len(switch)} switches: p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
              f"(first pass, files read cold: p50 {np.percentile(first_pass, 50):.1f} ms; projection alone p50 {np.percentile(proj, 50):.1f} ms); "
              "a selection or filter adds no request", flush=True)
        moved_ms, moved_cached_ms = time_moved(db, run_id)
        print(f"what moved most (/moved, {args.n} images, k=10): {moved_ms:.0f} ms computed, {moved_cached_ms:.1f} ms cached", flush=True)

        # The t-SNE comparison runs on hard data (classes overlap; bench/aligned_tsne.py), not on the
        # run's separable blobs, on which every method's layout scores 1.0.
        from sklearn.manifold import TSNE

        labels, Xs = hard_steps(tsne_n, tsne_steps, args.dim, args.drift, args.seed)
        ours, t_ours, c_ours = timed(lambda: aligned(Xs, args.seed))
        q_ours = quality(Xs, ours, labels)
        report(f"deepviz aligned, {tsne_n} x {tsne_steps}", t_ours, c_ours, tsne_steps, q_ours)
        theirs, t_cold, c_cold = timed(lambda: cold(Xs, args.seed))
        q_cold = quality(Xs, theirs, labels)
        report("openTSNE cold per step", t_cold, c_cold, tsne_steps, q_cold)
        # scikit-learn on the first step only: it is the slowest, and one step gives its time per step.
        sk, t_sk, c_sk = timed(lambda: [TSNE(n_components=2, random_state=args.seed).fit_transform(Xs[0])])
        report("sklearn TSNE, 1 step", t_sk, c_sk, 1, quality(Xs[:1], sk, labels))
        gap = max(c - o for c, o in zip(q_cold["knn"], q_ours["knn"]))
    finally:
        if args.db is None:
            shutil.rmtree(root, ignore_errors=True)

    print(f"n={args.n} steps={args.steps} tsne_n={tsne_n} tsne_steps={tsne_steps} dim={args.dim} drift={args.drift} passes={args.passes}")
    print(f"step_switch_p50_ms={p50:.2f} step_switch_p99_ms={p99:.2f} moved_ms={moved_ms:.0f} moved_cached_ms={moved_cached_ms:.1f} "
          f"cold_opentsne_vs_ours={t_cold / t_ours:.2f} sklearn_step_vs_ours={t_sk / (t_ours / tsne_steps):.2f} tsne_knn_gap={gap:.4f} "
          f"disparity_ours={max(q_ours['disparity']):.4f} disparity_cold={np.mean(q_cold['disparity']):.4f} "
          f"nn10_ours={np.mean(q_ours['nn10']):.4f} nn10_cold={np.mean(q_cold['nn10']):.4f}")


if __name__ == "__main__":
    main()
