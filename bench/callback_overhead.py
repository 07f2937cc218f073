"""What StatsCallback costs a training: measured in pairs that alternate, on the CIFAR-10 subset.

Run from the project root::

    python bench/callback_overhead.py [--data ../shared/data/cifar-10-batches-py] [--pairs 5]

Two cases, each as ``--pairs`` alternating (without, with) trainings of ``FC64Net`` (seeded, same batches):

- **piggyback**: the probe is the validation set (``probe="val"``, snapshot every epoch): the snapshot is made
  from validation's own forward. Prints ``overhead_ratio`` (median training time with / without the
  callback); target <= 1.05.
- **extra**: the probe is held-out images outside validation (the extra pass). At each snapshot the bare
  forward pass over the same probe is timed beside it, first before and then after, alternating, so both see
  the same weights and machine state. Prints ``snapshot_vs_forward`` (median time the training thread spends in
  a snapshot / median bare forward); target <= 1.1. The write, on the background thread, is then waited for and
  timed apart (``write_s``). Its ``overhead_ratio`` has the inserted bare forwards and waits taken out.

A training with the callback also pays, once per run, step 0's snapshot (a forward over the probe at the
initial weights, where there is no validation pass to reuse) and the run's start on the writer's thread (a
thumbnail per probe image, the probes file): about 0.5 s on these 2 cores, an eighth of a default 2-epoch
training (4 s). ``--epochs`` spreads it over longer trainings.

Each case prints ``probe_share``: probe images per snapshot over training images per epoch. The last line holds
the figures. :func:`measure_callback` gives ``snapshot_vs_forward`` and ``piggyback_overhead`` for a synthetic
probe of any size and layer width, without Lightning training (``bench/scale.py`` calls it).
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
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepviz import Recorder, StatsCallback  # noqa: E402
from deepviz.piggyback import ValidationTap  # noqa: E402


def bare_forward(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> float:
    """Seconds of one eval-mode forward over ``inputs`` in batches, nothing kept."""
    was = model.training
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            model(inputs[i : i + batch_size])
    model.train(was)
    return time.perf_counter() - start


class TimedStatsCallback(StatsCallback):
    """Times each snapshot on the training thread, then its write (waited for), and, with ``beside``, a bare
    forward over the probe next to it."""

    def __init__(self, *args, beside: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.beside = beside
        self.snapshot_s: list[float] = []
        self.write_s: list[float] = []
        self.forward_s: list[float] = []

    def _snapshot(self, trainer, trigger, outputs=None):
        if trigger == "start":  # step 0 is an extra pass in both cases: left out of both figures
            return super()._snapshot(trainer, trigger, outputs)
        first = self.beside and len(self.snapshot_s) % 2 == 0
        if first:
            self.forward_s.append(self._bare(trainer))
        start = time.perf_counter()
        super()._snapshot(trainer, trigger, outputs)
        self.snapshot_s.append(time.perf_counter() - start)
        self.write_s.append(flush_seconds(self.recorder))
        if self.beside and not first:
            self.forward_s.append(self._bare(trainer))

    def _bare(self, trainer) -> float:
        return bare_forward(trainer.lightning_module, self.recorder.probe.inputs, self.recorder.batch_size)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/cifar-10-batches-py"))
    p.add_argument("--train-size", type=int, default=2000, help="training images per epoch")
    p.add_argument("--val-size", type=int, default=300, help="validation images (the piggyback probe)")
    p.add_argument("--probe-size", type=int, default=300, help="held-out probe images of the extra-pass case")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--pairs", type=int, default=5, help="alternating (without, with) pairs of trainings, >= 5")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--case", choices=("both", "piggyback", "extra"), default="both")
    args = p.parse_args()
    if args.pairs < 5:
        p.error(f"--pairs must be at least 5 (alternating pairs of runs), got {args.pairs}")
    return args


def cifar(args):
    from deepviz.datasets import load_dataset

    x, y = load_dataset("cifar10", args.data, split="train", progress=False).to_tensors()
    px, py = load_dataset("cifar10", args.data, split="test", progress=False).to_tensors()
    n, v = args.train_size, args.val_size
    return (x[:n], y[:n]), (x[n : n + v], y[n : n + v]), (px[: args.probe_size], py[: args.probe_size])


def train_once(data, args, db: Path | None, probe, beside=False):
    """One seeded training; returns (seconds, callback or None)."""
    import lightning.pytorch as L
    from torch.utils.data import DataLoader, TensorDataset

    from trainers.models import FC64Net

    (x, y), (vx, vy), _ = data
    L.seed_everything(0, verbose=False)
    train = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True)
    val = DataLoader(TensorDataset(vx, vy), batch_size=256)
    cb = None if db is None else TimedStatsCallback(db, probe=probe, probe_size=None, beside=beside)
    trainer = L.Trainer(
        max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
        callbacks=[cb] if cb else [],
    )
    start = time.perf_counter()
    trainer.fit(FC64Net(), train, val)
    return time.perf_counter() - start, cb


def pairs(data, args, tmp: Path, case: str) -> dict[str, float]:
    """``args.pairs`` alternating (without, with) trainings of one case; its figures."""
    probe = "val" if case == "piggyback" else data[2]
    without, with_cb, snaps, writes, fwds = [], [], [], [], []
    for i in range(args.pairs):
        t0, _ = train_once(data, args, None, probe)
        t1, cb = train_once(data, args, tmp / f"{case}{i}", probe, beside=case == "extra")
        without.append(t0)
        with_cb.append(t1 - sum(cb.forward_s) - sum(cb.write_s))  # inserted forwards and waits: not the callback's
        snaps += cb.snapshot_s
        writes += cb.write_s
        fwds += cb.forward_s
        print(f"{case} pair {i}: without={t0:.2f}s with={with_cb[-1]:.2f}s snapshots="
              + ",".join(f"{s:.3f}" for s in cb.snapshot_s) + " writes=" + ",".join(f"{s:.3f}" for s in cb.write_s)
              + (" bare_forward=" + ",".join(f"{s:.3f}" for s in cb.forward_s) if cb.forward_s else ""), flush=True)
    n_probe = args.val_size if case == "piggyback" else args.probe_size
    out = {"overhead_ratio": statistics.median(with_cb) / statistics.median(without),
           "probe_share": n_probe / args.train_size, "write_s": statistics.median(writes)}
    if fwds:
        out["snapshot_vs_forward"] = statistics.median(snaps) / statistics.median(fwds)
    return out


class SyntheticNet(nn.Module):
    """A small conv net whose hidden layer is ``width`` wide, for probes of any size."""

    def __init__(self, width: int, channels: int = 3, n_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(channels, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.hidden = nn.Linear(64, width)
        self.out = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(self.pool(torch.relu(self.conv(x))).flatten(1))))


def measure_callback(n: int, width: int, *, pairs: int = 5, batch_size: int = 256, image_size: int = 16,
                     db: str | Path | None = None) -> dict[str, float]:
    """``snapshot_vs_forward`` and ``piggyback_overhead`` for a synthetic probe of ``n`` images, ``width``-wide layer.

    - ``snapshot_vs_forward``: median time in an extra-pass snapshot on the caller's thread / median bare
      forward over the probe, alternated ``pairs`` times on the same weights.
    - ``piggyback_overhead``: median (validation pass with the tap + its snapshot call) / median plain
      validation pass over the same images, alternated ``pairs`` times.
    - ``write_s``: median time of the background write, waited for after each snapshot (apart from both).
    """
    torch.manual_seed(0)
    x = torch.randn(n, 3, image_size, image_size)
    y = torch.randint(0, 10, (n,))
    model = SyntheticNet(width).eval()
    batches = [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder(db or Path(tmp) / "db", model, probe=(x, y), probe_size=None, batch_size=batch_size,
                       save_state=False)
        rec.start()
        snap, fwd, piggy, val, writes = [], [], [], [], []
        for i in range(pairs):
            fwd.append(bare_forward(model, x, batch_size))
            start = time.perf_counter()
            rec.snapshot(2 * i + 1)
            snap.append(time.perf_counter() - start)
            writes.append(flush_seconds(rec))
            val.append(bare_forward(model, x, batch_size))
            start = time.perf_counter()
            tap = ValidationTap(model, rec.layers, rec.probe.ids, rec.probe.labels, batches)
            with torch.no_grad():
                for b, rows in enumerate(batches):
                    tap.begin(b)
                    model(x[rows[0]:rows[-1] + 1])  # a slice, as bare_forward's: indexing by rows copies the batch
                    tap.end(b)
            rec.snapshot(2 * i + 2, outputs=tap.result())
            piggy.append(time.perf_counter() - start)
            writes.append(flush_seconds(rec))
        rec.close()
    return {"snapshot_vs_forward": statistics.median(snap) / statistics.median(fwd),
            "piggyback_overhead": statistics.median(piggy) / statistics.median(val),
            "write_s": statistics.median(writes)}


def flush_seconds(rec: Recorder) -> float:
    """Seconds waiting for the Recorder's background writes to finish."""
    start = time.perf_counter()
    rec.flush()
    return time.perf_counter() - start


def main():
    args = parse_args()
    warnings.filterwarnings("ignore")
    import logging

    for name in ("lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = cifar(args)
    print(f"torch threads={torch.get_num_threads()} train={args.train_size} val={args.val_size} "
          f"probe={args.probe_size} epochs={args.epochs} pairs={args.pairs}", flush=True)
    cases = ("piggyback", "extra") if args.case == "both" else (args.case,)
    with tempfile.TemporaryDirectory() as tmp:
        train_once(data, args, None, "val")  # warm-up: imports, allocator, thread pool
        figures = {case: pairs(data, args, Path(tmp), case) for case in cases}
    for case, f in figures.items():
        print(f"{case}: " + " ".join(f"{k}={v:.3f}" for k, v in f.items()))
    last = {"overhead_ratio": figures.get("piggyback", {}).get("overhead_ratio"),
            "snapshot_vs_forward": figures.get("extra", {}).get("snapshot_vs_forward")}
    print(" ".join(f"{k}={v:.3f}" for k, v in last.items() if v is not None))


if __name__ == "__main__":
    main()
