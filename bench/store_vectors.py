"""Activation vectors on disk: schema 1's ``list<float16>`` against schema 2's one ``fixed_size_binary`` per row.

Run from the project root::

    python bench/store_vectors.py [--n 100000] [--d 512] [--repeats 3]

Writes one layer's activations (``--n`` rows of ``--d`` float16 values, as a
snapshot stores them) through the store's own table builders and Parquet
writer, in each format alternately, and reads them back as ``StatsDB`` does
(into one float32 ``(n, d)`` array). The median of ``--repeats`` is kept. The
last line holds the figures::

    bytes_per_value=<schema 2 bytes on disk per value> bytes_per_value_old=<schema 1>
    write_old_vs_new=<list write / blob write> read_old_vs_new=<list read / blob read>
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepviz.store import codec, tables  # noqa: E402
from deepviz.store.vectors import vectors_to_numpy  # noqa: E402

FORMATS = {"old": 1, "new": tables.BLOB_VERSION}


def _activations(n: int, d: int, seed: int = 0) -> np.ndarray:
    # ReLU-like outputs: a third zeros, the rest spread, as a trained layer's are
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return np.maximum(x, -0.5) + 0.5


def write_once(path: Path, values: np.ndarray, version: int) -> float:
    t0 = time.perf_counter()
    table = tables.activations("run", 0, "fc", np.arange(len(values)), values, "float16", version)
    codec.write_parquet(table, path, ("vector",))
    return time.perf_counter() - t0


def read_once(path: Path) -> float:
    t0 = time.perf_counter()
    table = codec.read(path, columns=["probe_id", "vector"])
    values = vectors_to_numpy(table, "vector", str(path))
    assert values.dtype == np.float32 and values.ndim == 2
    return time.perf_counter() - t0


def measure(n: int, d: int, repeats: int, folder: Path) -> dict[str, float]:
    """Median write and read seconds of each format, and its bytes on disk per value."""
    values = _activations(n, d)
    times: dict[str, dict[str, list[float]]] = {k: {"write": [], "read": []} for k in FORMATS}
    sizes = {}
    for i in range(repeats):
        for name, version in FORMATS.items():  # alternated, so a busy moment hurts both
            path = folder / f"{name}-{i}.parquet"
            times[name]["write"].append(write_once(path, values, version))
            times[name]["read"].append(read_once(path))
            sizes[name] = os.path.getsize(path)
            path.unlink()
    out = {f"{what}_{name}_s": statistics.median(times[name][what]) for name in FORMATS for what in ("write", "read")}
    out.update({f"bytes_per_value_{name}": sizes[name] / (n * d) for name in FORMATS})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="rows (probe images)")
    parser.add_argument("--d", type=int, default=512, help="values per row (layer width)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"pyarrow {pa.__version__}; {args.n:,} x {args.d} float16, median of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.n, args.d, args.repeats, Path(tmp))
    for name in FORMATS:
        print(f"{name} (schema {FORMATS[name]}): write {r[f'write_{name}_s'] * 1e3:.0f} ms, "
              f"read {r[f'read_{name}_s'] * 1e3:.0f} ms, {r[f'bytes_per_value_{name}']:.3f} bytes/value")
    print(f"bytes_per_value={r['bytes_per_value_new']:.3f} bytes_per_value_old={r['bytes_per_value_old']:.3f} "
          f"write_old_vs_new={r['write_old_s'] / r['write_new_s']:.2f} read_old_vs_new={r['read_old_s'] / r['read_new_s']:.2f}")


if __name__ == "__main__":
    main()
