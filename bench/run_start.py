"""The start of a run at a large probe: seconds and peak memory, in a fresh process.

Run from the project root::

    python bench/run_start.py [--n 5000]        # --n 100000 for the issue's scale

A child process makes ``--n`` synthetic 3x32x32 images as ``ToTensor`` gives
them (float32 ``u / 255``: 1.2 GB at 100,000) and a small CNN with a 512-wide
layer, then times what ``StatsCallback`` does when training starts: the
``Recorder`` (the probe set) and its ``start()`` (the thumbnails, the probes
table and the run row are queued to the writer's thread: training waits for none
of them), then one snapshot of the whole probe, and the writes' end
(``all_written_s``, from the start: what the writer's thread took in all). Peak RSS is the child's
``ru_maxrss``: the training process's own peak, data and model included. The
last line holds the figures::

    run_start_s=<Recorder + start> snapshot_s=<one snapshot> all_written_s=<until every write ended>
    train_peak_rss_mb=<peak RSS>
    data_rss_mb=<RSS with the data and model alone> probes_bytes=<probes file on disk>

``measure(n)`` returns them as a dict, for ``bench/scale.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _images(n: int, seed: int = 0):
    """Smooth random images (8x8 blocks of colour plus noise): PNGs compress about as real photos do."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    out = torch.empty((n, 3, 32, 32), dtype=torch.float32)
    for start in range(0, n, 4096):  # built a chunk at a time, so the data's own making is no peak
        k = min(4096, n - start)
        blocks = rng.integers(0, 224, (k, 3, 8, 8), dtype=np.uint8).repeat(4, axis=2).repeat(4, axis=3)
        u = blocks + rng.integers(0, 32, (k, 3, 32, 32), dtype=np.uint8)
        out[start:start + k] = torch.from_numpy(u).float().div_(255)
    return out, torch.from_numpy(rng.integers(0, 10, n))


def _model():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 512), nn.ReLU(), nn.Linear(512, 10),
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(n: int, db: Path) -> dict[str, float]:
    """In this process: the data, then the run's start and one snapshot, timed."""
    import torch

    from deepviz.recorder import Recorder

    torch.manual_seed(0)
    images, labels = _images(n)
    model = _model()
    data_rss = _rss_mb()
    t0 = time.perf_counter()
    recorder = Recorder(db, model, (images, labels), probe_size=None, layers=["4"], class_names=list("0123456789"))
    recorder.start()
    t1 = time.perf_counter()
    recorder.snapshot(0, trigger="start")
    t2 = time.perf_counter()
    recorder.close()
    t3 = time.perf_counter()
    probes = next((db / "probes").glob("run_id=*/probes.parquet"))
    return {
        "run_start_s": t1 - t0,
        "snapshot_s": t2 - t1,
        "all_written_s": t3 - t0,
        "train_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "data_rss_mb": data_rss,
        "probes_bytes": probes.stat().st_size,
    }


def measure(n: int) -> dict[str, float]:
    """``run_start_s``, ``snapshot_s``, ``train_peak_rss_mb``, ``data_rss_mb``, ``probes_bytes`` at ``n`` images."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--n", str(n), "--db", str(Path(tmp) / "db")],
            capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="probe images (100000: the issue's scale)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.n, args.db)))
        return
    load = os.getloadavg()[0]
    r = measure(args.n)
    print(f"{args.n:,} probe images of 3x32x32, {os.cpu_count()} cores, load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
