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

import codecs
import gzip
import hashlib
import http.client
import os
import pickle
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepviz.errors import ConfigurationError, DatasetError

__all__ = [
    "DATASETS",
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

# Seed and fraction of the split we make for datasets without an official one
# (digits, folder); fixed so that train and test stay disjoint across runs.
SPLIT_SEED = 0
TEST_FRACTION = 0.2

# The default square size of images read from a folder.
FOLDER_IMAGE_SIZE = 32

# The extensions a folder loader treats as images. A curated list rather than
# everything Pillow registers: Pillow also claims .h5, .ps, .mpg and others it
# cannot decode without extra plug-ins, and such a file beside the images
# should be skipped, not reported as a broken image.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)

_CHUNK = 1 << 20


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


# --------------------------------------------------------------------------
# Entry point


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
        dataset = _load_digits(split)
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
        return _load_folder(Path(data_dir), split, image_size or FOLDER_IMAGE_SIZE, progress)
    else:
        root = DEFAULT_DATA_DIR if data_dir is None else Path(data_dir)
        if key == "cifar10":
            dataset = _load_cifar10(root, split, download, progress)
        elif key in ("mnist", "fashion-mnist"):
            dataset = _load_idx_dataset(key, root, split, download, progress)
        else:
            dataset = _load_stl10(root, split, download, progress)

    if image_size is not None and dataset.images.shape[1:3] != (image_size, image_size):
        dataset = ImageDataset(
            _resize(dataset.images, image_size), dataset.labels, dataset.class_names, dataset.name
        )
    return dataset


# --------------------------------------------------------------------------
# Shared helpers


def _stratified_split(labels: np.ndarray, split: str, random_state: int = SPLIT_SEED) -> np.ndarray:
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


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 (N, H, W, C) batch to (N, size, size, C)."""
    batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
    # antialias so that shrinking (STL-10's 96 px to 32) averages, not aliases
    out = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _as_labels(values, path: Path, n_classes: int, offset: int = 0) -> np.ndarray:
    labels = np.asarray(values).astype(np.int64) - offset
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DatasetError(
            f"{path}: expected labels {offset}..{offset + n_classes - 1}, "
            f"found {labels.min() + offset}..{labels.max() + offset}."
        )
    return labels


def _dataset_folder(root: Path, folder_name: str, markers: list[str]) -> Path:
    """The folder holding the files: ``root`` if it is that folder or holds any of
    ``markers``, else ``root/folder_name`` (where a download puts them)."""
    if root.name == folder_name or any((root / m).exists() for m in markers):
        return root
    return root / folder_name


def _missing_error(title: str, folder: Path, missing: list[str], hint: str) -> DatasetError:
    return DatasetError(
        f"{title} files missing in {folder}: {', '.join(missing)}. {hint} "
        f"or pass --download / download=True to fetch them."
    )


# --------------------------------------------------------------------------
# Download and extraction


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # integrity against the published sums, not security
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: str | Path, md5: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The bytes go to a temporary file beside ``dest``, renamed only when the
    download is complete and its MD5 (if given) matches. A ``dest`` that is
    already there with the right MD5 is kept without downloading again.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    if md5 is not None and dest.is_file() and _md5(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True,
                desc=dest.name, disable=not progress,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"Could not download {url} to {dest}: {reason}. Check the network connection, "
            f"or fetch the file by hand and place it at {dest}."
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)  # Ctrl-C mid-download: leave no partial file behind
        raise
    actual = digest.hexdigest()
    if md5 is not None and actual != md5:
        tmp.unlink(missing_ok=True)
        raise DatasetError(
            f"Downloaded {url} has MD5 {actual}, expected {md5}; the download was corrupted "
            f"or the file changed upstream. The partial file was deleted; try again."
        )
    os.replace(tmp, dest)
    return dest


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    """Refuse a member that would land, or link, outside ``dest``."""
    base = os.path.realpath(dest)

    def inside(path: str) -> bool:
        return os.path.commonpath([base, os.path.realpath(path)]) == base

    target = os.path.join(base, member.name)
    if os.path.isabs(member.name) or not inside(target):
        raise DatasetError(
            f"{archive}: refusing to extract {member.name!r}, whose path is outside {dest}; "
            f"the archive is not safe to unpack."
        )
    if member.issym() or member.islnk():
        link_base = os.path.dirname(target) if member.issym() else base
        if os.path.isabs(member.linkname) or not inside(os.path.join(link_base, member.linkname)):
            raise DatasetError(
                f"{archive}: refusing to extract {member.name!r}, a link to {member.linkname!r} "
                f"outside {dest}; the archive is not safe to unpack."
            )
    elif not (member.isfile() or member.isdir()):
        raise DatasetError(
            f"{archive}: refusing to extract {member.name!r}, which is a device or pipe, "
            f"not a file or folder."
        )


def extract_archive(archive: str | Path, dest_dir: str | Path) -> Path:
    """Unpack a tar archive (any compression) into ``dest_dir`` and return it.

    Every member must stay inside ``dest_dir``: absolute paths, ``..`` and
    links pointing out are refused before anything is written. Files are
    unpacked into a temporary folder first and moved into place at the end,
    so an interrupted extraction leaves no half-written dataset behind.
    """
    archive, dest = Path(archive), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, dest, archive)
            with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
                if hasattr(tarfile, "data_filter"):  # a second guard where Python has it (3.10.12+)
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; members were checked above
                    tar.extractall(tmp, members=members)
                for path in sorted(Path(tmp).rglob("*")):
                    target = dest / path.relative_to(tmp)
                    if path.is_dir() and not path.is_symlink():
                        target.mkdir(parents=True, exist_ok=True)
                    else:
                        os.replace(path, target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(
            f"{archive}: cannot be extracted as a tar archive ({exc}); it may be truncated. "
            f"Delete it and download again."
        ) from exc
    return dest


def _fetch_archive(url: str, md5: str, dest_dir: Path, progress: bool) -> None:
    archive = download_file(url, dest_dir / url.rsplit("/", 1)[-1], md5=md5, progress=progress)
    extract_archive(archive, dest_dir)


# --------------------------------------------------------------------------
# digits (scikit-learn)


def _load_digits(split: str) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # pixel values are 0..16 counts of set bits in 4x4 blocks; stretch to 0..255
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    index = _stratified_split(labels, split)
    return ImageDataset(images[index], labels[index], [str(d) for d in range(10)], "digits")


# --------------------------------------------------------------------------
# CIFAR-10 (python pickles)

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
    labels = _as_labels(labels, path, 10)
    # each row holds the red plane, then green, then blue, each 32x32 row-major
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _load_cifar10(root: Path, split: str, download: bool, progress: bool) -> ImageDataset:
    needed = ["batches.meta", *_CIFAR10_FILES[split]]
    folder = _dataset_folder(root, CIFAR10_FOLDER, needed)
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and download:
        _fetch_archive(CIFAR10_URL, CIFAR10_MD5, folder.parent, progress)
        missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise _missing_error(
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


# --------------------------------------------------------------------------
# MNIST and Fashion-MNIST (idx files)

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


def _load_idx_dataset(key: str, root: Path, split: str, download: bool, progress: bool) -> ImageDataset:
    source = IDX_SOURCES[key]
    image_stem, label_stem = _IDX_FILES[split]
    stems = [image_stem, label_stem]
    folder = _dataset_folder(root, key, stems + [f"{stem}.gz" for stem in stems])
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
        raise _missing_error(title, folder, missing, "Point data_dir at the folder holding the idx files,")

    images_path, labels_path = paths[image_stem], paths[label_stem]
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected unsigned bytes (idx type 0x08); header says {images.dtype}.")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels.")
    return ImageDataset(
        np.ascontiguousarray(images[..., None]),
        _as_labels(labels, labels_path, 10),
        list(source["classes"]),
        key,
    )


# --------------------------------------------------------------------------
# STL-10 (binary)

STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
STL10_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
STL10_FOLDER = "stl10_binary"
_STL10_IMAGE_BYTES = 3 * 96 * 96


def _load_stl10(root: Path, split: str, download: bool, progress: bool) -> ImageDataset:
    needed = ["class_names.txt", f"{split}_X.bin", f"{split}_y.bin"]
    folder = _dataset_folder(root, STL10_FOLDER, needed)
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and download:
        _fetch_archive(STL10_URL, STL10_MD5, folder.parent, progress)
        missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise _missing_error("STL-10", folder, missing, f"Point data_dir at the {STL10_FOLDER} folder (or its parent),")

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
    return ImageDataset(images, _as_labels(y, y_path, 10, offset=1), names, "stl10")


# --------------------------------------------------------------------------
# A folder of class sub-folders


def _load_folder(root: Path, split: str, image_size: int, progress: bool) -> ImageDataset:
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
    index = _stratified_split(all_labels, split)
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
