"""Each dataset format read from small files written here (and the real CIFAR-10 subset where present):
what they hold, and a clear error for each way they can be missing, truncated or malformed."""

from __future__ import annotations

import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from deepviz import datasets
from deepviz.datasets import load_dataset, read_idx
from deepviz.errors import ConfigurationError, DatasetError

from .dataset_files import (
    CIFAR_NAMES,
    CIFAR_SUBSET,
    STL_NAMES,
    idx_bytes,
    md5_of,
    mnist_arrays,
    write_cifar,
    write_file,
    write_mnist,
    write_stl10,
)


# --------------------------------------------------------------------------
# CIFAR-10


@pytest.fixture
def cifar_dir(tmp_path):
    return write_cifar(tmp_path / "cifar-10-batches-py")


@pytest.mark.skipif(not CIFAR_SUBSET.is_dir(), reason=f"CIFAR-10 subset not found at {CIFAR_SUBSET}")
def test_cifar10_real_subset():
    train = load_dataset("cifar10", CIFAR_SUBSET, split="train")
    test = load_dataset("cifar10", CIFAR_SUBSET.parent, split="test")  # the parent works too
    assert train.images.shape == (5 * 932, 32, 32, 3) and test.images.shape == (932, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert set(np.unique(train.labels)) == set(range(10))
    assert train.class_names == CIFAR_NAMES and train.name == "cifar10"
    # natural photos: channels are strongly correlated, which a wrong reshape would destroy
    flat = train.images[:500].reshape(-1, 3).astype(float)
    assert np.corrcoef(flat.T)[0, 1] > 0.8


def test_cifar10_known_pixel_round_trips(cifar_dir):
    train = load_dataset("cifar10", cifar_dir)
    test = load_dataset("cifar10", cifar_dir.parent, split="test")
    assert len(train) == 20 and len(test) == 4
    assert train.images[0, 1, 2].tolist() == [255, 10, 20]
    assert test.images[0, 1, 2].tolist() == [255, 10, 20]
    assert train.labels.tolist()[:4] == [0, 1, 2, 3]
    x, _ = train.to_tensors()
    assert torch.allclose(x[0, :, 1, 2], torch.tensor([255, 10, 20]) / 255.0)


def test_cifar10_missing_files_named_with_a_hint(cifar_dir):
    (cifar_dir / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match=r"CIFAR-10 files missing in .*cifar-10-batches-py: data_batch_3\. .*download=True"):
        load_dataset("cifar10", cifar_dir)
    load_dataset("cifar10", cifar_dir, split="test")  # the test split needs only test_batch


def test_cifar10_empty_dir_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetError, match=r"missing in .*cifar-10-batches-py: batches\.meta, data_batch_1.*--download"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_truncated_batch(cifar_dir):
    path = cifar_dir / "data_batch_2"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetError, match=r"data_batch_2: cannot be read as a CIFAR-10 python pickle"):
        load_dataset("cifar10", cifar_dir)


@pytest.mark.parametrize(
    "batch, match",
    [
        ({"data": np.zeros((2, 3072), np.uint8)}, "expected a pickled dict with keys 'data' and 'labels'"),
        ([1, 2, 3], "expected a pickled dict with keys 'data' and 'labels'"),
        ({"data": np.zeros((2, 1024), np.uint8), "labels": [0, 1]}, r"uint8 array of shape \(N, 3072\); got uint8 \(2, 1024\)"),
        ({"data": [[0] * 3072] * 2, "labels": [0, 1]}, "got list"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "expected 'labels' as 2 integers"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "expected labels 0..9, found 0..10"),
    ],
)
def test_cifar10_malformed_batch(cifar_dir, batch, match):
    (cifar_dir / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_1: .*" + match):
        load_dataset("cifar10", cifar_dir)


def test_cifar10_meta_without_label_names(cifar_dir):
    (cifar_dir / "batches.meta").write_bytes(pickle.dumps({"num_vis": 3072}))
    with pytest.raises(DatasetError, match=r"batches\.meta: expected a pickled dict with 'label_names'"):
        load_dataset("cifar10", cifar_dir)


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar10_pickle_that_would_run_code_is_refused(cifar_dir, capsys):
    (cifar_dir / "test_batch").write_bytes(pickle.dumps({"data": _Payload(), "labels": []}))
    with pytest.raises(DatasetError, match=r"test_batch: .*refusing to load builtins\.print"):
        load_dataset("cifar10", cifar_dir, split="test")
    assert "must never run" not in capsys.readouterr().out


def test_cifar10_download_fetches_verifies_and_extracts(tmp_path, monkeypatch):
    source = write_cifar(tmp_path / "src" / "cifar-10-batches-py", n=2)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    monkeypatch.setattr(datasets.cifar, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(datasets.cifar, "CIFAR10_MD5", md5_of(archive))

    root = tmp_path / "data"
    ds = load_dataset("cifar10", root, download=True, progress=False)
    assert len(ds) == 10 and ds.images[0, 1, 2].tolist() == [255, 10, 20]
    assert (root / "cifar-10-batches-py" / "test_batch").is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp files left

    monkeypatch.setattr(datasets.cifar, "CIFAR10_MD5", "0" * 32)
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    (root / "cifar-10-python.tar.gz").unlink()
    with pytest.raises(DatasetError, match=f"has MD5 {md5_of(archive)}, expected 0{{32}}"):
        load_dataset("cifar10", root, split="test", download=True, progress=False)


# --------------------------------------------------------------------------
# MNIST and Fashion-MNIST


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_reads_idx_files(tmp_path, gz):
    folder = write_mnist(tmp_path / "mnist", gz)
    train = load_dataset("mnist", folder)
    test = load_dataset("mnist", tmp_path, split="test")  # the parent works too
    assert train.images.shape == (12, 28, 28, 1) and test.images.shape == (5, 28, 28, 1)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.images[0, 3, 5, 0] == 201
    expected_images, expected_labels = mnist_arrays(12, 0)
    assert np.array_equal(train.images[..., 0], expected_images)
    assert np.array_equal(train.labels, expected_labels)
    assert train.class_names == [str(d) for d in range(10)]


def test_fashion_mnist_class_names(tmp_path):
    ds = load_dataset("fashion-mnist", write_mnist(tmp_path / "fashion-mnist", gz=True), split="test")
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert len(ds.class_names) == 10 and ds.name == "fashion-mnist"


def test_mnist_missing_files(tmp_path):
    folder = write_mnist(tmp_path / "mnist", gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    load_dataset("mnist", folder)
    with pytest.raises(DatasetError, match=r"MNIST files missing in .*mnist: t10k-labels-idx1-ubyte\[\.gz\]\..*--download"):
        load_dataset("mnist", folder, split="test")


def test_mnist_truncated_payload_reports_header_and_size(tmp_path):
    folder = write_mnist(tmp_path / "mnist", gz=True, n_train=3)
    images, _ = mnist_arrays(3, 0)
    write_file(folder / "train-images-idx3-ubyte", idx_bytes(images)[: 16 + 100], gz=True)
    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte\.gz: header says 3×28×28 = 2352 bytes, file has 100 after the 16-byte header",
    ):
        load_dataset("mnist", folder)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x00\x00", "only 2 bytes, too few for a header"),
        (b"\x1f\x8b\x08\x03" + b"\x00" * 20, "two zero bytes and a type code .* found magic 0x1F8B0803"),
        (b"\x00\x00\x07\x01" + b"\x00" * 8, "found magic 0x00000701"),
        (struct.pack(">HBBI", 0, 8, 3, 5), r"header of 3 dimensions needs 16 bytes; file has 8"),
        (idx_bytes(np.zeros((2, 3), np.uint8)), "expected an idx file of 3 dimensions; header says 2"),
    ],
)
def test_read_idx_rejects_malformed_headers(tmp_path, data, match):
    path = write_file(tmp_path / "train-images-idx3-ubyte", data)
    with pytest.raises(DatasetError, match=match):
        read_idx(path, ndim=3)


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    path = write_file(tmp_path / "x.idx", idx_bytes(values, code=0x0C), gz=True)
    out = read_idx(path)
    assert out.dtype == np.int32 and np.array_equal(out, values)


def test_mnist_images_must_be_unsigned_bytes(tmp_path):
    folder = write_mnist(tmp_path / "mnist", gz=False)
    images, _ = mnist_arrays(12, 0)
    write_file(folder / "train-images-idx3-ubyte", idx_bytes(images, code=0x0C))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: expected unsigned bytes \(idx type 0x08\); header says int32"):
        load_dataset("mnist", folder)


def test_mnist_image_and_label_counts_must_match(tmp_path):
    folder = write_mnist(tmp_path / "mnist", gz=False)
    write_file(folder / "train-labels-idx1-ubyte", idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte has 12 images but .*train-labels-idx1-ubyte has 11 labels"):
        load_dataset("mnist", folder)


def test_mnist_labels_out_of_range(tmp_path):
    folder = write_mnist(tmp_path / "mnist", gz=False)
    write_file(folder / "train-labels-idx1-ubyte", idx_bytes(np.full(12, 12, np.uint8)))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte: expected labels 0..9, found 12..12"):
        load_dataset("mnist", folder)


@pytest.mark.parametrize("cut", [True, False], ids=["truncated-gzip", "not-gzip"])
def test_mnist_corrupt_gzip(tmp_path, cut):
    folder = write_mnist(tmp_path / "mnist", gz=True)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200] if cut else b"plain text, not gzip")
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: cannot be decompressed as gzip"):
        load_dataset("mnist", folder)


def test_mnist_download_from_mirror(tmp_path, monkeypatch):
    mirror = write_mnist(tmp_path / "mirror", gz=True)
    md5s = {p.name: md5_of(p) for p in mirror.iterdir()}
    monkeypatch.setitem(datasets.idx.IDX_SOURCES["mnist"], "url", mirror.as_uri() + "/")
    monkeypatch.setitem(datasets.idx.IDX_SOURCES["mnist"], "md5", md5s)
    root = tmp_path / "data"
    ds = load_dataset("mnist", root, split="test", download=True, progress=False)
    assert len(ds) == 5
    assert sorted(p.name for p in (root / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"  # only the split asked for
    ]


# --------------------------------------------------------------------------
# STL-10


def test_stl10_reads_binary_files(tmp_path):
    folder, images = write_stl10(tmp_path / "stl10_binary")
    train = load_dataset("stl10", folder)
    test = load_dataset("stl10", tmp_path, split="test")  # the parent works too
    assert train.images.shape == (3, 96, 96, 3) and len(test) == 3
    assert train.images[0, 7, 40].tolist() == [3, 77, 250]
    assert np.array_equal(train.images, images)
    assert train.labels.tolist() == [0, 1, 2]  # stored 1..10
    assert train.class_names == STL_NAMES
    small = load_dataset("stl10", folder, image_size=32)
    assert small.images.shape == (3, 32, 32, 3)


def test_stl10_truncated_images(tmp_path):
    folder, _ = write_stl10(tmp_path / "stl10_binary")
    path = folder / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=r"train_X\.bin: expected a whole number of 96×96×3 images \(27648 bytes each\); file has 82939"):
        load_dataset("stl10", folder)


def test_stl10_label_count_mismatch(tmp_path):
    folder, _ = write_stl10(tmp_path / "stl10_binary")
    (folder / "test_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(DatasetError, match=r"test_X\.bin has 3 images but .*test_y\.bin has 2 labels"):
        load_dataset("stl10", folder, split="test")


def test_stl10_labels_are_one_based(tmp_path):
    folder, _ = write_stl10(tmp_path / "stl10_binary")
    (folder / "train_y.bin").write_bytes(bytes([0, 1, 2]))
    with pytest.raises(DatasetError, match=r"train_y\.bin: expected labels 1..10, found 0..2"):
        load_dataset("stl10", folder)


def test_stl10_class_names_count(tmp_path):
    folder, _ = write_stl10(tmp_path / "stl10_binary")
    (folder / "class_names.txt").write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match=r"class_names\.txt: expected 10 class names, one per line; found 2"):
        load_dataset("stl10", folder)


def test_stl10_missing(tmp_path):
    with pytest.raises(DatasetError, match=r"STL-10 files missing in .*stl10_binary: class_names\.txt, train_X\.bin, train_y\.bin.*--download"):
        load_dataset("stl10", tmp_path)


# --------------------------------------------------------------------------
# A folder of images

COLOURS = {"blue": (0, 0, 255), "green": (0, 200, 0), "red": (255, 0, 0)}


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "pets"
    for k, (name, colour) in enumerate(COLOURS.items()):
        (root / name / "nested").mkdir(parents=True)
        for i in range(5):
            size = (20 + 7 * i, 40 - 3 * i)  # sizes differ: the loader must resize
            img = Image.new("RGB", size, colour)
            # modes differ too: all must come out as RGB
            img = {0: img, 1: img.convert("RGBA"), 2: img.convert("P")}[k] if i % 2 else img
            where = root / name / "nested" if i == 4 else root / name
            img.save(where / f"img{i}.png")
        (root / name / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()  # hidden: not a class
    (root / ".cache" / "x.png").write_bytes(b"ignored")
    (root / "README.md").write_text("a file at the top, not a class")
    return root


def test_folder_reads_classes_and_resizes(image_folder):
    train = load_dataset("folder", image_folder, progress=False)
    test = load_dataset("folder", image_folder, split="test", progress=False)
    assert train.class_names == ["blue", "green", "red"]
    assert len(train) == 12 and len(test) == 3  # one image of each class in test
    assert sorted(test.labels.tolist()) == [0, 1, 2]
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    for ds in (train, test):
        for image, label in zip(ds.images, ds.labels):
            # a solid image stays solid through conversion and resizing
            colour = COLOURS[ds.class_names[label]]
            assert np.abs(image.astype(int) - colour).max() <= 1
    assert load_dataset("folder", image_folder, image_size=8, progress=False).images.shape == (12, 8, 8, 3)


def test_folder_undecodable_image_is_named(image_folder):
    bad = image_folder / "red" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DatasetError, match=r"red/broken\.jpg: has an image extension but cannot be decoded"):
        for split in ("train", "test"):
            load_dataset("folder", image_folder, split=split, progress=False)


def test_folder_missing(tmp_path):
    with pytest.raises(DatasetError, match=r"Image folder .*nowhere does not exist"):
        load_dataset("folder", tmp_path / "nowhere")


def test_folder_without_class_folders(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"has no class sub-folders; expected .*/<class name>/<image files>"):
        load_dataset("folder", tmp_path)


def test_folder_with_an_empty_class(image_folder):
    (image_folder / "zebra").mkdir()
    (image_folder / "zebra" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"class folder\(s\) zebra hold no images"):
        load_dataset("folder", image_folder)


def test_folder_needs_data_dir_and_cannot_download(image_folder):
    with pytest.raises(ConfigurationError, match="'folder' dataset needs data_dir"):
        load_dataset("folder")
    with pytest.raises(ConfigurationError, match="cannot be downloaded; drop --download"):
        load_dataset("folder", image_folder, download=True)
