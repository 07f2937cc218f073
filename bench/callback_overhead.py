"""What StatsCallback costs: a small CIFAR-10 CNN trained with and without it.

Run from the project root::

    python bench/callback_overhead.py [--data ../shared/data/cifar-10-batches-py]

Trains ``FC64Net`` for a few epochs on a CIFAR-10 subset, alternating runs
without and with the callback (probe of 1,000 images, a snapshot every epoch
and one at step 0). Also times, on the same model and probe set, the bare
probe forward pass and ``np.save`` of the arrays a snapshot stores against our
writer. The last line holds the figures::

    overhead_ratio=<with/without> snapshot_vs_forward=<snapshot / bare forward>
    write_vs_npsave=<writer / np.save> bytes_per_value=<activation bytes on disk per value>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightning.pytorch as L  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from deepviz import StatsCallback, StatsWriter  # noqa: E402
from deepviz.capture import capture, weights_of  # noqa: E402
from deepviz.datasets import load_dataset  # noqa: E402
from deepviz.probe import build_probe  # noqa: E402
from trainers.models import FC64Net  # noqa: E402


class TimedStatsCallback(StatsCallback):
    """StatsCallback that records how long each whole snapshot takes (capture, copy, write)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.snapshot_seconds: list[float] = []

    def _snapshot(self, trainer, trigger):
        t0 = time.perf_counter()
        super()._snapshot(trainer, trigger)
        self.snapshot_seconds.append(time.perf_counter() - t0)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/cifar-10-batches-py"))
    p.add_argument("--train-size", type=int, default=2000, help="training images per epoch")
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--probe-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--pairs", type=int, default=2, help="alternating (without, with) pairs of runs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    return p.parse_args()


def train_once(x, y, probe, args, db: Path | None):
    """One training run; returns (seconds, callback or None)."""
    L.seed_everything(0, verbose=False)
    model = FC64Net()
    n = args.train_size
    train = DataLoader(TensorDataset(x[:n], y[:n]), batch_size=args.batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[n : n + args.val_size], y[n : n + args.val_size]), batch_size=256)
    callbacks = []
    cb = None
    if db is not None:
        cb = TimedStatsCallback(db, probe=probe, probe_size=args.probe_size, dataset_name="cifar10")
        callbacks.append(cb)
    trainer = L.Trainer(
        max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0, callbacks=callbacks,
    )
    t0 = time.perf_counter()
    trainer.fit(model, train, val)
    return time.perf_counter() - t0, cb, model


def bare_forward_seconds(model, inputs, batch_size=256, repeats=5) -> float:
    model.eval()
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, len(inputs), batch_size):
                model(inputs[i : i + batch_size])
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def writer_vs_npsave(model, probe, tmp: Path, repeats=7) -> tuple[float, float]:
    """Median seconds to write one snapshot with StatsWriter and with np.save of the same arrays."""
    layers = ["fc64", "fc10"]
    r = capture(model, probe.inputs, probe.labels, layers)
    w = weights_of(model, ["features.0", "features.3"])
    writer = StatsWriter(tmp / "writer_db")
    writer.write_run({"run_id": "bench", "layers": layers})
    t_writer, t_np = [], []
    for step in range(repeats):
        t0 = time.perf_counter()
        writer.write_snapshot(
            "bench", step, epoch=0, trigger="bench", probe_ids=probe.ids, labels=probe.labels.numpy(),
            probs=r.probs, loss=r.loss, activations=r.activations, weights=w, metrics={},
        )
        t_writer.append(time.perf_counter() - t0)
        folder = tmp / f"npsave{step}"
        folder.mkdir()
        t0 = time.perf_counter()
        # the same arrays, float16 activations like ours, one .npy file each
        np.save(folder / "probe_ids.npy", probe.ids)
        np.save(folder / "labels.npy", probe.labels.numpy())
        np.save(folder / "probs.npy", r.probs)
        np.save(folder / "loss.npy", r.loss)
        for name, values in r.activations.items():
            np.save(folder / f"{name}.npy", values.astype(np.float16))
        for name, values in w.items():
            np.save(folder / f"w_{name}.npy", values)
        t_np.append(time.perf_counter() - t0)
    return statistics.median(t_writer), statistics.median(t_np)


def activation_bytes_per_value(db: Path) -> float:
    import pyarrow.parquet as pq

    size = values = 0
    for path in (db / "activations").glob("**/*.parquet"):
        size += path.stat().st_size
        meta = pq.ParquetFile(path).metadata
        values += sum(meta.row_group(i).column(4).num_values for i in range(meta.num_row_groups))
    return size / values


def main():
    args = parse_args()
    warnings.filterwarnings("ignore")
    import logging

    for name in ("lightning.pytorch", "pytorch_lightning"):  # the callback imports both packages
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    train = load_dataset("cifar10", args.data, split="train", progress=False)
    test = load_dataset("cifar10", args.data, split="test", progress=False)
    x, y = train.to_tensors()
    # probe: held-out images (test split, topped up from the end of the train split when it has fewer)
    px, py = test.to_tensors()
    need = args.probe_size - len(px)
    if need > 0:
        px, py = torch.cat([px, x[-need:]]), torch.cat([py, y[-need:]])
    probe_source = (px, py)
    print(f"torch threads={torch.get_num_threads()} train={args.train_size} val={args.val_size} "
          f"probe={args.probe_size} epochs={args.epochs}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_once(x, y, probe_source, args, None)  # warm-up: imports, allocator, thread pool
        without, with_cb, snap, fwd = [], [], [], []
        for i in range(args.pairs):
            t_without, _, _ = train_once(x, y, probe_source, args, None)
            t_with, cb, model = train_once(x, y, probe_source, args, tmp / f"db{i}")
            without.append(t_without)
            with_cb.append(t_with)
            snap.extend(cb.snapshot_seconds)
            fwd.append(bare_forward_seconds(model, cb.recorder.probe.inputs, cb.recorder.batch_size))
            print(f"pair {i}: without={t_without:.2f}s with={t_with:.2f}s snapshots="
                  + ",".join(f"{s:.3f}" for s in cb.snapshot_seconds) + f" bare_forward={fwd[-1]:.3f}s", flush=True)
        probe = build_probe(probe_source, args.probe_size, 0)
        t_writer, t_np = writer_vs_npsave(model, probe, tmp)
        bpv = activation_bytes_per_value(tmp / "db0")

    overhead = statistics.median(with_cb) / statistics.median(without)
    snapshot_vs_forward = statistics.median(snap) / statistics.median(fwd)
    print(f"median: without={statistics.median(without):.2f}s with={statistics.median(with_cb):.2f}s "
          f"snapshot={statistics.median(snap):.3f}s bare_forward={statistics.median(fwd):.3f}s "
          f"writer={t_writer * 1e3:.1f}ms np.save={t_np * 1e3:.1f}ms")
    print(f"overhead_ratio={overhead:.3f} snapshot_vs_forward={snapshot_vs_forward:.3f} "
          f"write_vs_npsave={t_writer / t_np:.3f} bytes_per_value={bpv:.3f}")


if __name__ == "__main__":
    main()
