"""CIFAR-10, read from its python pickles without running code from them."""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np

from deepviz.errors import DatasetError

from .base import ImageDataset, as_labels, missing_error
from .download import folder_with

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays and plain containers.

    CIFAR-10 ships as pickles, and unpickling runs whatever callables a file
    names; this one allows just those that rebuild numpy arrays, so a file
    from elsewhere cannot run code.
    """

    _reconstruct = np.ndarray((0,)).__reduce__()[0]
    _scalar = np.float64(0).__reduce__()[0]
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): _scalar,
        ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles from Python 3 store bytes
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}, which is not part of a numpy array"
            ) from None


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            # latin1: the official files are Python 2 pickles holding raw bytes
            obj = _ArrayUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(
            f"{path}: cannot be read as a CIFAR-10 python pickle ({exc}); the file may be truncated "
            f"or corrupt. Delete it and pass --download / download=True."
        ) from exc
    if not isinstance(obj, dict):
        return {}
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_pickle(path)
    if "data" not in batch or "labels" not in batch:
        raise DatasetError(f"{path}: expected a pickled dict with keys 'data' and 'labels'.")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: expected 'data' as a uint8 array of shape (N, 3072); got {got}.")
    labels = np.asarray(batch["labels"])
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise DatasetError(
            f"{path}: expected 'labels' as {data.shape[0]} integers, one per image; "
            f"got {labels.dtype} {labels.shape}."
        )
    labels = as_labels(labels, path, 10)
    # each row holds the red plane, then green, then blue, each 32x32 row-major
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def load_cifar10(root: Path, split: str, download: bool, progress: bool) -> ImageDataset:
    needed = ["batches.meta", *_CIFAR10_FILES[split]]
    folder, missing = folder_with(root, CIFAR10_FOLDER, needed, CIFAR10_URL, CIFAR10_MD5, download, progress)
    if missing:
        raise missing_error(
            "CIFAR-10", folder, missing,
            f"Point data_dir at the {CIFAR10_FOLDER} folder (or its parent),",
        )
    meta = _read_pickle(folder / "batches.meta")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DatasetError(
            f"{folder / 'batches.meta'}: expected a pickled dict with 'label_names', a list of 10 names."
        )
    parts = [_read_cifar_batch(folder / f) for f in _CIFAR10_FILES[split]]
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    return ImageDataset(images, labels, [_text(n) for n in names], "cifar10")
