"""Image classification datasets, read from their official file formats.

``load_dataset(name, data_dir, split=...)`` returns an :class:`ImageDataset`:
uint8 images ``(N, H, W, C)`` and int64 labels, whatever the source format.

Local files are read as they are, without demanding the official checksums,
so a shortened copy of a dataset (a subset for tests or quick runs) loads.
Checksums are checked on what we download: :func:`download_file` writes to a
temporary name and renames only once the MD5 matches, so an interrupted or
corrupt download never looks like a finished one.
"""

from __future__ import annotations

from pathlib import Path

from deepviz.errors import ConfigurationError

from .base import ImageDataset, resize
from .cifar import load_cifar10
from .download import download_file, extract_archive
from .idx import load_idx_dataset, read_idx
from .images import FOLDER_IMAGE_SIZE, IMAGE_EXTENSIONS, load_digits, load_folder, load_stl10

__all__ = [
    "DATASETS",
    "FOLDER_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "ImageDataset",
    "download_file",
    "extract_archive",
    "load_dataset",
    "read_idx",
]

DATASETS = ("digits", "cifar10", "mnist", "fashion-mnist", "stl10", "folder")
SPLITS = ("train", "test")

# Where data lives when no data_dir is given: ./data, ignored by git.
DEFAULT_DATA_DIR = Path("data")


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    split: str = "train",
    download: bool = False,
    image_size: int | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Load one split of a dataset.

    ``data_dir`` is the folder holding the dataset's files or its parent (where
    a download puts them in a sub-folder); it defaults to ``./data``. The
    ``folder`` dataset needs it: a folder of class sub-folders of images.
    ``image_size`` resizes every image to a square of that side (the folder
    dataset defaults to 32; the others keep their native size when it is None).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in DATASETS:
        raise ConfigurationError(f"Unknown dataset {name!r}. Available: {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise ConfigurationError(f"Unknown split {split!r} for dataset {key!r}. Allowed: {', '.join(SPLITS)}.")
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise ConfigurationError(f"image_size must be a positive integer or None; got {image_size!r}.")

    if key == "digits":
        dataset = load_digits(split)
    elif key == "folder":
        if data_dir is None:
            raise ConfigurationError(
                "The 'folder' dataset needs data_dir: a folder with one sub-folder of images per class."
            )
        if download:
            raise ConfigurationError(
                "The 'folder' dataset is read from your own images and cannot be downloaded; "
                "drop --download / download=True."
            )
        return load_folder(Path(data_dir), split, image_size or FOLDER_IMAGE_SIZE, progress)
    else:
        root = DEFAULT_DATA_DIR if data_dir is None else Path(data_dir)
        if key == "cifar10":
            dataset = load_cifar10(root, split, download, progress)
        elif key in ("mnist", "fashion-mnist"):
            dataset = load_idx_dataset(key, root, split, download, progress)
        else:
            dataset = load_stl10(root, split, download, progress)

    if image_size is not None and dataset.images.shape[1:3] != (image_size, image_size):
        dataset = ImageDataset(
            resize(dataset.images, image_size), dataset.labels, dataset.class_names, dataset.name
        )
    return dataset
