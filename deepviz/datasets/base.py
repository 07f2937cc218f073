"""What every loader shares: the dataset type, the split we make, resizing and label checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepviz.errors import DatasetError

# Seed and fraction of the split we make for datasets without an official one
# (digits, folder); fixed so that train and test stay disjoint across runs.
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays with == is ambiguous
class ImageDataset:
    """Images and labels of one split of one dataset."""

    images: np.ndarray  # uint8, (N, H, W, C), C = 1 or 3
    labels: np.ndarray  # int64, (N,)
    class_names: list[str]
    name: str

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DatasetError(
                f"ImageDataset {self.name!r}: images must be a uint8 array of shape (N, H, W, C) "
                f"with C = 1 or 3; got {images.dtype} {images.shape}."
            )
        if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
            raise DatasetError(
                f"ImageDataset {self.name!r}: labels must be an int64 array of shape "
                f"({images.shape[0]},) to match the images; got {labels.dtype} {labels.shape}."
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DatasetError(
                f"ImageDataset {self.name!r}: labels must lie in 0..{len(self.class_names) - 1} "
                f"(one per class name); found {labels.min()}..{labels.max()}."
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float32 ``(N, C, H, W)`` in [0, 1], labels as int64 ``(N,)``."""
        images = torch.from_numpy(np.ascontiguousarray(self.images.transpose(0, 3, 1, 2)))
        return images.float().div_(255.0), torch.from_numpy(self.labels.copy())


def stratified_split(labels: np.ndarray, split: str, random_state: int = SPLIT_SEED) -> np.ndarray:
    """Indices of ``split`` in a seeded 80/20 split made class by class.

    Written out rather than taken from scikit-learn's ``train_test_split``,
    which refuses a class with a single example; a small image folder may
    well have one, and it simply goes to train.
    """
    rng = np.random.default_rng(random_state)
    test = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_test = int(round(len(members) * TEST_FRACTION)) if len(members) > 1 else 0
        test.append(rng.permutation(members)[:n_test])
    test_mask = np.zeros(len(labels), dtype=bool)
    if test:
        test_mask[np.concatenate(test)] = True
    return np.flatnonzero(test_mask if split == "test" else ~test_mask)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 (N, H, W, C) batch to (N, size, size, C)."""
    batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
    # antialias so that shrinking (STL-10's 96 px to 32) averages, not aliases
    out = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def as_labels(values, path: Path, n_classes: int, offset: int = 0) -> np.ndarray:
    labels = np.asarray(values).astype(np.int64) - offset
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DatasetError(
            f"{path}: expected labels {offset}..{offset + n_classes - 1}, "
            f"found {labels.min() + offset}..{labels.max() + offset}."
        )
    return labels


def dataset_folder(root: Path, folder_name: str, markers: list[str]) -> Path:
    """The folder holding the files: ``root`` if it is that folder or holds any of
    ``markers``, else ``root/folder_name`` (where a download puts them)."""
    if root.name == folder_name or any((root / m).exists() for m in markers):
        return root
    return root / folder_name


def missing_error(title: str, folder: Path, missing: list[str], hint: str) -> DatasetError:
    return DatasetError(
        f"{title} files missing in {folder}: {', '.join(missing)}. {hint} "
        f"or pass --download / download=True to fetch them."
    )
