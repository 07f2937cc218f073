"""Datasets of plain images: scikit-learn's digits, STL-10's binary files, a folder of class sub-folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepviz.errors import DatasetError

from .base import ImageDataset, as_labels, missing_error, stratified_split
from .download import folder_with

# The default square size of images read from a folder.
FOLDER_IMAGE_SIZE = 32

# The extensions a folder loader treats as images. A curated list rather than
# everything Pillow registers: Pillow also claims .h5, .ps, .mpg and others it
# cannot decode without extra plug-ins, and such a file beside the images
# should be skipped, not reported as a broken image.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)


def load_digits(split: str) -> ImageDataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    # pixel values are 0..16 counts of set bits in 4x4 blocks; stretch to 0..255
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    index = stratified_split(labels, split)
    return ImageDataset(images[index], labels[index], [str(d) for d in range(10)], "digits")


STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
STL10_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
STL10_FOLDER = "stl10_binary"
_STL10_IMAGE_BYTES = 3 * 96 * 96


def load_stl10(root: Path, split: str, download: bool, progress: bool) -> ImageDataset:
    needed = ["class_names.txt", f"{split}_X.bin", f"{split}_y.bin"]
    folder, missing = folder_with(root, STL10_FOLDER, needed, STL10_URL, STL10_MD5, download, progress)
    if missing:
        raise missing_error("STL-10", folder, missing, f"Point data_dir at the {STL10_FOLDER} folder (or its parent),")

    names_path = folder / "class_names.txt"
    names = [line.strip() for line in names_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != 10:
        raise DatasetError(f"{names_path}: expected 10 class names, one per line; found {len(names)}.")
    x_path, y_path = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    size = x_path.stat().st_size
    if size % _STL10_IMAGE_BYTES:
        raise DatasetError(
            f"{x_path}: expected a whole number of 96×96×3 images ({_STL10_IMAGE_BYTES} bytes each); "
            f"file has {size} bytes, so it is truncated or corrupt."
        )
    raw = np.fromfile(x_path, dtype=np.uint8)
    # each image is stored channel by channel, each channel column-major
    images = np.ascontiguousarray(raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1))
    y = np.fromfile(y_path, dtype=np.uint8)
    if len(y) != len(images):
        raise DatasetError(f"{x_path} has {len(images)} images but {y_path} has {len(y)} labels.")
    return ImageDataset(images, as_labels(y, y_path, 10, offset=1), names, "stl10")


def load_folder(root: Path, split: str, image_size: int, progress: bool) -> ImageDataset:
    from PIL import Image
    from tqdm.auto import tqdm

    if not root.is_dir():
        raise DatasetError(f"Image folder {root} does not exist or is not a folder.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(
            f"Image folder {root} has no class sub-folders; expected {root}/<class name>/<image files>."
        )
    files: list[Path] = []
    labels: list[int] = []
    empty = []
    for index, cls in enumerate(classes):
        found = sorted(
            p for p in (root / cls).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not found:
            empty.append(cls)
        files += found
        labels += [index] * len(found)
    if empty:
        raise DatasetError(
            f"Image folder {root}: class folder(s) {', '.join(empty)} hold no images "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder(s)."
        )
    all_labels = np.asarray(labels, dtype=np.int64)
    # split on the file list first, so only the requested split is decoded
    index = stratified_split(all_labels, split)
    images = np.empty((len(index), image_size, image_size, 3), dtype=np.uint8)
    for row, i in enumerate(tqdm(index, desc=f"reading {root.name}", unit="img", disable=not progress)):
        try:
            with Image.open(files[i]) as img:
                img = img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
                images[row] = np.asarray(img)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DatasetError(
                f"{files[i]}: has an image extension but cannot be decoded as an image ({exc}); "
                f"fix or remove the file."
            ) from exc
    return ImageDataset(images, all_labels[index], classes, "folder")
