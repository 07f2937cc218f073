"""The probe set: a fixed, class-stratified, seeded subset of images that every snapshot refers to."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from .errors import ConfigurationError

THUMBNAIL_MAX = 64
#: Bytes of float32 pixels converted for display at a time: no temporary the size of the whole probe, and
#: each chunk's few passes stay in the CPU's cache.
CHUNK_BYTES = 1 << 20
#: Thumbnails one worker encodes in a row (PIL's encoder releases the GIL; one task per image would cost more than it).
THUMBNAIL_SLICE = 512
#: Images converted and encoded at a time by ``iter_thumbnails``.
THUMBNAIL_WINDOW = 8192


@dataclass
class ProbeSet:
    ids: np.ndarray  # int64 indices into what the user gave; stable across snapshots
    inputs: torch.Tensor  # (N, C, H, W) float32, as the model sees them
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.ids)


def _labels_of(probe) -> np.ndarray | None:
    for attr in ("targets", "labels"):
        values = getattr(probe, attr, None)
        if values is not None:
            try:
                arr = np.asarray(values)
            except Exception:  # noqa: BLE001 - any non-array attribute: fall back to iterating
                return None
            if arr.ndim == 1 and len(arr) == len(probe):
                return arr.astype(np.int64)
    return None


def _item(dataset, i):
    item = dataset[int(i)]
    if not isinstance(item, (tuple, list)) or len(item) < 2 or item[1] is None:
        raise ConfigurationError(
            f"Probe item {int(i)} is a {type(item).__name__}, not an (image, label) pair. The probe must be a "
            "Dataset of (image, label) pairs or a pair (images, labels) of arrays or tensors; labels are needed "
            "for loss, correctness and the confusion matrix."
        )
    return item[0], item[1]


def _check_class_indices(labels: np.ndarray) -> np.ndarray:
    if len(labels) and labels.min() < 0:
        bad = int(labels.min())
        raise ConfigurationError(
            f"Probe label {bad} (at index {int(np.argmin(labels))}) is negative; labels must be class indices "
            "0..n_classes-1. Map the labels to class indices first (e.g. -1 for 'unlabelled' has no class)."
        )
    return labels


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Indices of a class-stratified subset of ``size`` (all when None), sorted.

    Each class gets its share of ``size`` in proportion to its frequency
    (largest remainders first), drawn with a seeded generator.
    """
    n = len(labels)
    if size is None or size >= n:
        return np.arange(n, dtype=np.int64)
    if size <= 0:
        raise ConfigurationError(f"probe_size must be a positive number of images, got {size}.")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts / n * size
    take = np.floor(exact).astype(int)
    for c in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[c] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == cls))[:k] for cls, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _pair_of(probe):
    """A ``TensorDataset(images, integer labels)`` as its pair of tensors: the same items, taken at once."""
    if isinstance(probe, TensorDataset) and len(probe.tensors) == 2 and len(probe):  # an empty one is refused below
        labels = probe.tensors[1]
        if labels.ndim == 1 and not labels.is_floating_point() and not labels.is_complex():
            return probe.tensors
    return probe


def _rows(images: torch.Tensor, ids: np.ndarray) -> torch.Tensor:
    """``images[ids]`` as float32; all of a float32 tensor is the tensor itself (no copy of the whole probe)."""
    if len(ids) == len(images):  # stratified_subset takes all in order
        return images.float()
    return images[torch.as_tensor(ids)].float()


def build_probe(probe, probe_size: int | None = None, seed: int = 0) -> ProbeSet:
    """A ProbeSet from a torch Dataset of (image, label) or a pair (images, labels).

    A float32 tensor given whole is used as it is, not copied: do not change it in place during training.
    """
    probe = _pair_of(probe)
    if isinstance(probe, (tuple, list)) and len(probe) == 2 and not isinstance(probe[0], (int, float)):
        images, labels = probe
        if labels is None:
            raise ConfigurationError(
                "The probe pair (images, labels) has labels=None. Pass the labels: probe=(images, labels)."
            )
        images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        labels_np = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        if labels_np.ndim != 1 or len(labels_np) != len(images):
            raise ConfigurationError(
                f"Probe labels must be a 1-D array with one label per image: got shape {labels_np.shape} "
                f"for {len(images)} images."
            )
        if not np.issubdtype(labels_np.dtype, np.integer):
            raise ConfigurationError(f"Probe labels must be integers (class indices), got dtype {labels_np.dtype}.")
        ids = stratified_subset(_check_class_indices(labels_np), probe_size, seed)
        return ProbeSet(ids=ids, inputs=_rows(images, ids), labels=torch.as_tensor(labels_np[ids], dtype=torch.long))

    if isinstance(probe, IterableDataset):
        raise ConfigurationError(
            f"The probe is an IterableDataset ({type(probe).__name__}): it has no index, so no stable probe ids "
            "and no seeded subset. Give a map-style Dataset, or probe=(images, labels) collected from it."
        )
    if not hasattr(probe, "__getitem__") or not hasattr(probe, "__len__"):
        raise ConfigurationError(
            f"probe must be a torch Dataset of (image, label) pairs or a pair (images, labels); got {type(probe).__name__}."
        )
    if len(probe) == 0:
        raise ConfigurationError("The probe dataset is empty; give at least one (image, label) pair.")
    labels_np = _labels_of(probe)
    if labels_np is None:
        labels_np = np.asarray([int(_item(probe, i)[1]) for i in range(len(probe))], dtype=np.int64)
    ids = stratified_subset(_check_class_indices(labels_np), probe_size, seed)
    return ProbeSet(ids=ids, **_items(probe, ids))


def _items(dataset, ids: np.ndarray) -> dict[str, torch.Tensor]:
    """The items at ``ids``, copied into one tensor allocated once (not a list of them stacked: half the memory)."""
    inputs, labels = None, torch.empty(len(ids), dtype=torch.long)
    for row, i in enumerate(ids):
        x, y = _item(dataset, i)
        x = torch.as_tensor(x)
        if inputs is None:
            inputs = torch.empty((len(ids), *x.shape), dtype=torch.float32)
        elif x.shape != inputs.shape[1:]:
            raise ConfigurationError(
                f"Probe item {int(i)} has shape {tuple(x.shape)}, item {int(ids[0])} has {tuple(inputs.shape[1:])}: "
                "every probe image must have the same shape (resize or crop them in the dataset's transform)."
            )
        inputs[row] = x
        labels[row] = int(y)
    return {"inputs": inputs, "labels": labels}


SPLIT_NAMES = {"val": "validation", "train": "training"}


def dataset_of(loaders, split: str):
    """The dataset behind the one dataloader a trainer holds for ``split`` ("val" or "train").

    ``loaders`` is what the trainer holds: a DataLoader, or a list or dict of
    them. Several loaders are refused (which one is the probe is the user's
    choice, not ours), and so is anything but a DataLoader.
    """
    name = SPLIT_NAMES[split]
    if loaders is None:
        raise ConfigurationError(
            f"probe={split!r}: the trainer has no {name} dataloader when training starts. Pass one to "
            f"trainer.fit (or a DataModule with {split}_dataloader), or give the probe dataset itself: probe=dataset."
        )
    if isinstance(loaders, (list, tuple, dict)):
        found = list(loaders) if isinstance(loaders, dict) else [type(loader).__name__ for loader in loaders]
        if len(loaders) != 1:
            raise ConfigurationError(
                f"probe={split!r}: the trainer has {len(loaders)} {name} dataloaders "
                f"({', '.join(map(str, found)) or 'none'}); the probe must be one "
                "dataset. Give the one you want: probe=its_dataset."
            )
        (loaders,) = loaders.values() if isinstance(loaders, dict) else loaders
    if not isinstance(loaders, DataLoader):
        raise ConfigurationError(
            f"probe={split!r}: the trainer's {name} data is a {type(loaders).__name__}, not a DataLoader, so it has "
            "no dataset to take the probe from. Give the probe dataset itself: probe=dataset."
        )
    return loaders.dataset


def _array(inputs: torch.Tensor | np.ndarray) -> np.ndarray:
    """The images as a numpy array (a CPU tensor's own memory, not a copy).

    What makes thumbnails runs on the writer's thread, and does its
    arithmetic in numpy: a torch operation there that runs on several
    threads (a min over the probe) gives that thread an OpenMP team of its
    own, and with more OpenMP threads than cores every thread of the
    training's team stops spinning between operations: training ran 10-20%
    slower from then on, with the writer idle.
    """
    return inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)


def display_range(inputs: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """The value range mapped to black..white in thumbnails.

    Inputs already in [0, 1] are shown as they are; anything else (e.g.
    normalised inputs) is stretched by the probe set's global range, so
    relative brightness between images is kept.
    """
    x = _array(inputs)
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if lo >= 0.0 and hi <= 255.0 and hi > 1.0:
        return 0.0, 255.0
    return lo, hi if hi > lo else lo + 1.0


def to_uint8_images(inputs: torch.Tensor | np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(N, C, H, W) model inputs -> (N, H, W, C) uint8 for display (a view), converted a chunk at a time;
    ``value_range`` is ``display_range(inputs)`` unless given (that of the whole probe, for some of its rows)."""
    lo, hi = value_range or display_range(inputs)
    x = _array(inputs)
    if x.ndim == 3:
        x = x[:, None]
    out = np.empty(x.shape, np.uint8)
    rows = max(1, CHUNK_BYTES // max(1, x[0].size * 4)) if len(x) else 1
    buf = np.empty((min(rows, len(x)), *x.shape[1:]), np.float32)
    for start in range(0, len(x), rows):
        chunk = x[start:start + rows]
        t = buf[: len(chunk)]
        np.subtract(chunk, lo, out=t, casting="unsafe")
        t /= hi - lo
        np.clip(t, 0.0, 1.0, out=t)
        t *= 255
        np.round(t, out=t)
        np.copyto(out[start:start + rows], t, casting="unsafe")
    return out.transpose(0, 2, 3, 1)


def _png(img: np.ndarray, max_size: int) -> bytes:
    from PIL import Image

    # grey and RGB as they are; inputs that are neither show their first channel
    pil = Image.fromarray(img if img.shape[2] == 3 else img[:, :, 0])
    if max(pil.size) > max_size:
        pil.thumbnail((max_size, max_size))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=1)  # as small as level 6 at this size, 1.5x faster
    return buf.getvalue()


def thumbnails(inputs: torch.Tensor | np.ndarray, max_size: int = THUMBNAIL_MAX) -> list[bytes]:
    """PNG bytes of each probe image, at most ``max_size`` pixels a side, encoded on every core."""
    return list(iter_thumbnails(inputs, max_size))


def iter_thumbnails(inputs: torch.Tensor | np.ndarray, max_size: int = THUMBNAIL_MAX) -> Iterator[bytes]:
    """``thumbnails``, yielded in order as they are encoded, ``THUMBNAIL_WINDOW`` images at a time: at 100,000
    images every PNG, and the images as uint8, held at once were over half a gigabyte."""
    inputs = _array(inputs)
    value_range = display_range(inputs)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=cores, thread_name_prefix="deepviz-thumbnails") as pool:
        for start in range(0, len(inputs), THUMBNAIL_WINDOW):
            images = to_uint8_images(inputs[start:start + THUMBNAIL_WINDOW], value_range)
            slices = [images[i:i + THUMBNAIL_SLICE] for i in range(0, len(images), THUMBNAIL_SLICE)]
            # each worker makes its slice contiguous: PIL copies a strided image row by row, 5x slower
            for part in pool.map(lambda part: [_png(img, max_size) for img in np.ascontiguousarray(part)], slices):
                yield from part
