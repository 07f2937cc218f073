"""The scale benchmark: a synthetic probe of 100,000 images with a 512-wide layer over 20 steps (issue 13).

Writes the db with ``StatsWriter`` directly (class clusters that separate as
the steps go on, 32x32 RGB images and their PNG thumbnails), then measures
each figure with one small function below, so that a better measurement can
replace one function without touching the others:

- training: a snapshot's extra pass against a bare forward, and validation
  with the piggy-back tap against without (bench/callback_overhead.py), and the
  start of a run in a fresh process with its peak memory (bench/run_start.py);
- the store: bytes per stored activation value; SQL (``StatsDB.sql``, and
  plain DuckDB on the same files for comparison);
- the server (``deepviz serve``'s waitress settings, in a child process):
  step switches, the predictions payload, the first paint of the Embedding
  view, clustering a cold step, the t-SNE timeline, and its peak memory.

Each figure is printed with its target and where it comes from.

    python bench/scale.py                   # 100,000 images x 512 x 20 steps, t-SNE skipped
    python bench/scale.py --n 2000          # CI's size
    python bench/scale.py --tsne            # also the 20-step t-SNE timeline (an hour or more at 100,000)
    python bench/scale.py --skip-training --skip-clusters

The last line is machine-readable (``nan``: a figure that was skipped)::

    snapshot_vs_forward= piggyback_overhead= run_start_s= train_peak_rss_mb= bytes_per_value= step_switch_p50_ms=
    step_switch_p99_ms= predictions_bytes= first_paint_bytes= clusters_s= tsne_timeline_s= tsne_knn_gap= server_rss_mb= sql_ms=
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


RUN = "bench-scale"
LAYER = "hidden"
N_CLASSES = 10
SQL_QUERY = ("SELECT step, label, avg(correct::INT) AS accuracy, count(*) AS n FROM predictions "
             "GROUP BY step, label ORDER BY step, label")

#: figure -> its target (at most), from issue 13's "Done when"; None where the issue sets none
TARGETS = {
    "snapshot_vs_forward": 1.2, "piggyback_overhead": 1.05, "run_start_s": 5, "train_peak_rss_mb": 2500,
    "bytes_per_value": None, "step_switch_p50_ms": 20, "step_switch_p99_ms": None, "predictions_bytes": 400_000,
    "first_paint_bytes": 2_000_000, "clusters_s": 3, "tsne_timeline_s": 900, "tsne_knn_gap": 0.02,
    "server_rss_mb": 1500, "sql_ms": 12,
}


@dataclass
class Figure:
    value: float
    source: str  # how it was measured


# --------------------------------------------------------------------------- the db


def class_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 3, 32, 32) uint8: each class its own colour, with noise."""
    colours = rng.integers(40, 216, size=(N_CLASSES, 3, 1, 1))
    noise = rng.integers(-40, 40, size=(len(labels), 3, 32, 32))
    return np.clip(colours[labels] + noise, 0, 255).astype(np.uint8)


def png_thumbnails(images: np.ndarray) -> list[bytes]:
    from PIL import Image

    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def step_activations(labels: np.ndarray, centres: np.ndarray, i: int, steps: int, seed: int) -> np.ndarray:
    """(N, D) float32 at step ``i``: class centres that move apart as training goes on, and noise."""
    rng = np.random.default_rng(seed + 1000 + i)
    spread = 0.3 + 2.7 * i / max(1, steps - 1)
    X = rng.standard_normal((len(labels), centres.shape[1]), dtype=np.float32)
    X += spread * centres[labels]
    return X


def build_db(root: Path, n: int, dim: int, steps: int, seed: int = 0) -> str:
    """A run of ``n`` probe images and ``steps`` snapshots of one ``dim``-wide layer, written step by step."""
    from deepviz.store import StatsWriter

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, n)
    images = class_images(labels, rng)
    writer = StatsWriter(root)
    names = [f"class{c}" for c in range(N_CLASSES)]
    now = datetime.now(timezone.utc)
    writer.write_run({
        "run_id": RUN, "name": RUN, "started_at": now, "ended_at": now, "deepviz_version": "bench",
        "model_class": "bench.scale:Synthetic", "model_summary": "synthetic activations", "n_params": 0, "hparams": "{}",
        "dataset": "synthetic", "class_names": names, "input_shape": [3, 32, 32], "layers": [LAYER], "conv_layers": [],
        "n_probe": n, "probe_seed": seed, "world_size": 1, "activation_dtype": "float16",
    })
    ids = np.arange(n)
    writer.write_probes(RUN, ids, labels, names, png_thumbnails(images), images.astype(np.float32) / 255)
    del images
    centres = rng.standard_normal((N_CLASSES, dim)).astype(np.float32) / math.sqrt(dim) * 4
    for i in range(steps):
        X = step_activations(labels, centres, i, steps, seed)
        logits = X @ centres.T
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        loss = -np.log(probs[ids, labels] + 1e-12)
        writer.write_snapshot(RUN, i * 100, epoch=i, trigger="epoch", probe_ids=ids, labels=labels,
                              probs=probs.astype(np.float32), loss=loss.astype(np.float32), activations={LAYER: X},
                              weights={}, metrics={"val_acc": float((probs.argmax(1) == labels).mean())})
    writer.close()
    return RUN


# --------------------------------------------------------------------------- training (a child process)


def training_figures(n: int, dim: int, repeats: int) -> dict[str, Figure]:
    """The training side: bench/callback_overhead.py's snapshot and piggy-back ratios (a synthetic probe of ``n``
    images through a conv net with a ``dim``-wide layer), and bench/run_start.py's start of a run at ``n`` images
    in a fresh process (its peak RSS is the figure)."""
    from callback_overhead import measure_callback
    from run_start import measure

    ratios = measure_callback(n, dim, pairs=repeats)
    start = measure(n)
    pairs = f"{repeats} alternated pairs on {n:,} images, a {dim}-wide layer (bench/callback_overhead.py)"
    fresh = f"Recorder.start on {n:,} 32x32 RGB images in a fresh process (bench/run_start.py)"
    return {
        "snapshot_vs_forward": Figure(ratios["snapshot_vs_forward"], "extra pass: snapshot / bare forward, " + pairs),
        "piggyback_overhead": Figure(ratios["piggyback_overhead"], "validation with the tap / without, " + pairs),
        "run_start_s": Figure(start["run_start_s"], fresh),
        "train_peak_rss_mb": Figure(start["train_peak_rss_mb"], fresh + ", then a snapshot: peak RSS"),
    }


def bytes_per_value(db: Path, n: int, dim: int, steps: int) -> Figure:
    size = sum(p.stat().st_size for p in (db / "activations").rglob("*.parquet"))
    return Figure(size / (n * dim * steps), "activation files on disk / values")


def sql_ms(db: Path, repeats: int = 15) -> tuple[Figure, float]:
    """Median ms of the per-class accuracy per step through ``StatsDB.sql``, and through plain DuckDB."""
    import duckdb

    from deepviz import StatsDB

    stats = StatsDB(db)
    expected = stats.sql(SQL_QUERY)  # the first query also loads DuckDB
    ours, plain = [], []
    files = sorted(str(p) for p in (db / "predictions").rglob("*.parquet"))
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = stats.sql(SQL_QUERY)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with duckdb.connect() as con:
            con.execute(SQL_QUERY.replace("FROM predictions", f"FROM read_parquet({files})")).df()
        plain.append(time.perf_counter() - t0)
    if not got.equals(expected):
        raise SystemExit("StatsDB.sql answered differently on a second query")
    return Figure(1e3 * statistics.median(ours), "StatsDB.sql, warm"), 1e3 * statistics.median(plain)


# --------------------------------------------------------------------------- main


def _shown(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def report(figures: dict[str, Figure]) -> str:
    """Print each figure beside its target; return the last line."""
    for name, target in TARGETS.items():
        fig = figures.get(name)
        aim = "(no target)" if target is None else f"target <= {target:,}"
        verdict = "" if fig is None or target is None else ("ok" if fig.value <= target else "OVER")
        shown = "skipped" if fig is None else _shown(fig.value)
        print(f"{name:<20} {shown:>10}  {aim:<22} {verdict:<4}  {fig.source if fig else ''}")
    return " ".join(f"{name}={_shown(figures[name].value) if name in figures else 'nan'}" for name in TARGETS)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="probe images")
    p.add_argument("--dim", type=int, default=512, help="width of the layer")
    p.add_argument("--steps", type=int, default=20, help="snapshots")
    p.add_argument("--passes", type=int, default=3, help="visits of every step for the step switch")
    p.add_argument("--repeats", type=int, default=3, help="alternated (forward, snapshot) pairs in training")
    p.add_argument("--skip-training", action="store_true", help="leave out the training figures")
    p.add_argument("--skip-clusters", action="store_true", help="leave out clustering a cold step")
    p.add_argument("--tsne", action="store_true", help="also the t-SNE timeline (slow: an hour or more at 100,000)")
    p.add_argument("--db", type=Path, help="build the db here and keep it (reused when it holds the run)")
    args = p.parse_args(argv)
    print(f"scale: {args.n:,} images x {args.dim} x {args.steps} steps; load average {os.getloadavg()[0]:.2f}", flush=True)
    tmp = None if args.db else Path(tempfile.mkdtemp(prefix="deepviz-scale-"))
    db = args.db or tmp / "stats_db"
    from scale_server import server_figures

    figures: dict[str, Figure] = {}
    try:
        if not (db / "runs").exists():
            t0 = time.perf_counter()
            build_db(db, args.n, args.dim, args.steps)
            print(f"wrote the db in {time.perf_counter() - t0:.1f} s", flush=True)
        if not args.skip_training:
            figures |= training_figures(args.n, args.dim, args.repeats)
        figures["bytes_per_value"] = bytes_per_value(db, args.n, args.dim, args.steps)
        figures["sql_ms"], plain = sql_ms(db)
        print(f"  (plain DuckDB on the same files: {plain:.1f} ms)", flush=True)
        figures |= server_figures(db, args)
        from payload import first_paint_bytes

        figures["first_paint_bytes"] = Figure(first_paint_bytes(db, RUN), "Chromium: every body received before the "
                                              "Embedding view drew its points (bench/payload.py)")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    line = report(figures)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
