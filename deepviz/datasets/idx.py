"""MNIST and Fashion-MNIST, read from their idx files (gzipped or not)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from deepviz.errors import DatasetError

from .base import ImageDataset, as_labels, dataset_folder, missing_error
from .download import download_file

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_SOURCES = {
    "mnist": {
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "classes": [str(d) for d in range(10)],
    },
    "fashion-mnist": {
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "classes": [
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ],
    },
}

# idx type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"{path}: cannot be decompressed as gzip ({exc}); the file is truncated or corrupt. "
            f"Delete it and pass --download / download=True."
        ) from exc


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read an idx file (gzipped or not): a header of magic, type code and dims, then the data."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DatasetError(f"{path}: expected an idx file; it has only {len(raw)} bytes, too few for a header.")
    zero, code, dims_n = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise DatasetError(
            f"{path}: expected an idx file starting with two zero bytes and a type code in "
            f"{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)}; found magic 0x{raw[:4].hex().upper()}."
        )
    if ndim is not None and dims_n != ndim:
        raise DatasetError(f"{path}: expected an idx file of {ndim} dimensions; header says {dims_n}.")
    header = 4 + 4 * dims_n
    if len(raw) < header:
        raise DatasetError(f"{path}: header of {dims_n} dimensions needs {header} bytes; file has {len(raw)}.")
    dims = struct.unpack(f">{dims_n}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        shape = "×".join(str(d) for d in dims)
        size = f" × {dtype.itemsize}" if dtype.itemsize > 1 else ""
        raise DatasetError(
            f"{path}: header says {shape}{size} = {expected} bytes, file has {len(raw) - header} "
            f"after the {header}-byte header; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(key: str, root: Path, split: str, download: bool, progress: bool) -> ImageDataset:
    source = IDX_SOURCES[key]
    image_stem, label_stem = _IDX_FILES[split]
    stems = [image_stem, label_stem]
    folder = dataset_folder(root, key, stems + [f"{stem}.gz" for stem in stems])
    paths = {stem: _find_idx(folder, stem) for stem in (image_stem, label_stem)}
    if download and None in paths.values():
        for stem, path in paths.items():
            if path is None:
                gz = f"{stem}.gz"
                download_file(source["url"] + gz, folder / gz, md5=source["md5"][gz], progress=progress)
        paths = {stem: _find_idx(folder, stem) for stem in (image_stem, label_stem)}
    missing = [f"{stem}[.gz]" for stem, path in paths.items() if path is None]
    if missing:
        title = "MNIST" if key == "mnist" else "Fashion-MNIST"
        raise missing_error(title, folder, missing, "Point data_dir at the folder holding the idx files,")

    images_path, labels_path = paths[image_stem], paths[label_stem]
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected unsigned bytes (idx type 0x08); header says {images.dtype}.")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels.")
    return ImageDataset(
        np.ascontiguousarray(images[..., None]),
        as_labels(labels, labels_path, 10),
        list(source["classes"]),
        key,
    )
