"""Dataset loaders, read from small files written here in the official formats.

The real CIFAR-10 subset in shared/data is used where present; no test goes
to the network (downloads are exercised with file:// URLs).
"""

from __future__ import annotations
import os
import tarfile

import numpy as np
import pytest
import torch

from deepviz import datasets
from deepviz.datasets import DATASETS, ImageDataset, download_file, extract_archive, load_dataset
from deepviz.errors import ConfigurationError, DatasetError

from .dataset_files import make_tar, md5_of


# --------------------------------------------------------------------------
# Arguments


def test_unknown_dataset_lists_the_available_ones():
    with pytest.raises(ConfigurationError, match=r"Unknown dataset 'imagenet'\. Available: digits, cifar10, mnist"):
        load_dataset("imagenet")


def test_unknown_split_lists_the_allowed_ones():
    with pytest.raises(ConfigurationError, match=r"Unknown split 'val' .* Allowed: train, test"):
        load_dataset("digits", split="val")


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "32"])
def test_image_size_must_be_a_positive_integer(size):
    with pytest.raises(ConfigurationError, match="image_size must be a positive integer"):
        load_dataset("digits", image_size=size)


def test_dataset_names_are_case_insensitive():
    assert load_dataset("DIGITS", split="test").name == "digits"
    assert set(DATASETS) == {"digits", "cifar10", "mnist", "fashion-mnist", "stl10", "folder"}


# --------------------------------------------------------------------------
# ImageDataset


def test_image_dataset_to_tensors_scales_and_reorders():
    images = np.zeros((2, 3, 4, 3), dtype=np.uint8)
    images[1, 2, 3] = (255, 51, 0)
    ds = ImageDataset(images, np.array([0, 1]), ["a", "b"], "toy")
    x, y = ds.to_tensors()
    assert len(ds) == 2 and ds.num_classes == 2
    assert x.shape == (2, 3, 3, 4) and x.dtype == torch.float32
    assert torch.allclose(x[1, :, 2, 3], torch.tensor([1.0, 0.2, 0.0]))
    assert y.dtype == torch.int64 and y.tolist() == [0, 1]


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((2, 4, 4, 3), np.float32), np.zeros(2, np.int64), "images must be a uint8 array"),
        (np.zeros((2, 4, 4, 2), np.uint8), np.zeros(2, np.int64), "C = 1 or 3; got uint8 \\(2, 4, 4, 2\\)"),
        (np.zeros((2, 4, 4, 1), np.uint8), np.zeros(3, np.int64), "labels must be an int64 array of shape \\(2,\\)"),
        (np.zeros((2, 4, 4, 1), np.uint8), np.zeros(2, np.int32), "labels must be an int64 array"),
        (np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 2]), "labels must lie in 0..1 .* found 0..2"),
    ],
)
def test_image_dataset_rejects_malformed_arrays(images, labels, match):
    with pytest.raises(DatasetError, match=match):
        ImageDataset(images, labels, ["a", "b"], "toy")


# --------------------------------------------------------------------------
# digits


def test_digits_splits_are_disjoint_stratified_and_stable():
    train = load_dataset("digits", split="train", progress=False)
    test = load_dataset("digits", split="test", progress=False)
    assert train.images.shape[1:] == (8, 8, 1) and train.images.dtype == np.uint8
    assert train.images.max() == 255 and train.images.min() == 0
    assert len(train) + len(test) == 1797
    assert len(test) == pytest.approx(0.2 * 1797, abs=10)
    assert train.class_names == [str(d) for d in range(10)]
    # every class keeps about a fifth of its examples for test
    counts_train, counts_test = np.bincount(train.labels), np.bincount(test.labels)
    assert np.all(np.abs(counts_test / (counts_train + counts_test) - 0.2) < 0.02)
    again = load_dataset("digits", split="test")
    assert np.array_equal(again.images, test.images) and np.array_equal(again.labels, test.labels)


def test_stratified_split_partitions_the_indices():
    labels = np.repeat(np.arange(4), [1, 2, 10, 33])
    train = datasets.base.stratified_split(labels, "train")
    test = datasets.base.stratified_split(labels, "test")
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    assert 0 not in labels[test]  # a class with one example stays in train
    assert np.array_equal(test, datasets.base.stratified_split(labels, "test"))


def test_digits_resized_on_request():
    ds = load_dataset("digits", split="test", image_size=16)
    assert ds.images.shape[1:] == (16, 16, 1) and ds.images.dtype == np.uint8


# --------------------------------------------------------------------------
# Download and extraction


def test_download_file_copies_and_verifies(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * (1 << 20) + 17))  # more than one chunk
    dest = download_file(src.as_uri(), tmp_path / "out" / "file.bin", md5=md5_of(src), progress=False)
    assert dest.read_bytes() == src.read_bytes()
    # present with the right checksum: kept, not fetched again
    src.unlink()
    assert download_file(src.as_uri(), dest, md5=md5_of(dest), progress=False) == dest


def test_download_file_checksum_mismatch_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=f"has MD5 {md5_of(src)}, expected deadbeef.*partial file was deleted"):
        download_file(src.as_uri(), out / "file.bin", md5="deadbeef", progress=False)
    assert list(out.iterdir()) == []


def test_download_file_unreachable_url(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"Could not download file://.*absent\.bin to .*file\.bin"):
        download_file((tmp_path / "absent.bin").as_uri(), out / "file.bin", progress=False)
    assert list(out.iterdir()) == []


def test_extract_archive_unpacks_into_dest(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {"a.txt": b"A", "sub/b.txt": b"B"}, base="top/")
    dest = extract_archive(archive, tmp_path / "dest")
    assert (dest / "top" / "a.txt").read_bytes() == b"A"
    assert (dest / "top" / "sub" / "b.txt").read_bytes() == b"B"
    assert sorted(p.name for p in dest.iterdir()) == ["top"]  # no temp folder left


@pytest.mark.parametrize("name", ["../evil.txt", "top/../../evil.txt", "/tmp/deepviz-evil.txt"])
def test_extract_archive_refuses_paths_outside(tmp_path, name):
    archive = make_tar(tmp_path / "a.tar.gz", {"ok.txt": b"fine", name: b"evil"})
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match=r"refusing to extract .*evil\.txt.*path is outside"):
        extract_archive(archive, dest)
    assert not (tmp_path / "evil.txt").exists() and not (dest / "ok.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_extract_archive_refuses_links_outside(tmp_path, kind):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("top/link")
        info.type, info.linkname = kind, "../../../etc/passwd"
        tar.addfile(info)
    with pytest.raises(DatasetError, match=r"refusing to extract 'top/link', a link to '\.\./\.\./\.\./etc/passwd' outside"):
        extract_archive(archive, tmp_path / "dest")


def test_extract_archive_refuses_devices(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("fifo")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    with pytest.raises(DatasetError, match=r"refusing to extract 'fifo', which is a device or pipe"):
        extract_archive(archive, tmp_path / "dest")


def test_extract_archive_truncated(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {"a.bin": os.urandom(50_000)})
    archive.write_bytes(archive.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"a\.tar\.gz: cannot be extracted as a tar archive .* Delete it and download again"):
        extract_archive(archive, tmp_path / "dest")
