"""Small dataset files written in the official formats, for the dataset tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

CIFAR_SUBSET = Path(__file__).resolve().parents[1].parent / "shared/data/cifar-10-batches-py"
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_tar(archive: Path, entries: dict[str, bytes], base: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(f"{base}{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


# --------------------------------------------------------------------------
# Writers for the official formats


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4"}[code]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_file(path: Path, data: bytes, gz: bool = False) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    images[0, 3, 5] = 201  # a known pixel: row 3, column 5 of the first image
    return images, labels


def write_mnist(folder: Path, gz: bool, n_train: int = 12, n_test: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = mnist_arrays(n, seed)
        write_file(folder / f"{prefix}-images-idx3-ubyte", idx_bytes(images), gz)
        write_file(folder / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels), gz)
    return folder


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    images[0, 1, 2] = (255, 10, 20)  # a known pixel: row 1, column 2, RGB
    data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # the official channel-major rows
    return {"batch_label": "test", "data": data, "labels": [int(i % 10) for i in range(n)]}


def write_cifar(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"label_names": CIFAR_NAMES, "num_cases_per_batch": n}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        (folder / name).write_bytes(pickle.dumps(cifar_batch(n, i), protocol=2))
    return folder


STL_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def write_stl10(folder: Path, n: int = 3) -> tuple[Path, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 96, 96, 3), dtype=np.uint8)
    images[0, 7, 40] = (3, 77, 250)  # row 7, column 40: not symmetric, so a wrong transpose shows
    # the official layout: per image, per channel, column-major
    stored = images.transpose(0, 3, 2, 1)
    for split in ("train", "test"):
        (folder / f"{split}_X.bin").write_bytes(stored.tobytes())
        (folder / f"{split}_y.bin").write_bytes(bytes(1 + (i % 10) for i in range(n)))
    (folder / "class_names.txt").write_text("\n".join(STL_NAMES) + "\n")
    return folder, images
