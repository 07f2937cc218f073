"""The probe set: stratified, seeded, stable ids into what the user gave."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from deepviz.errors import ConfigurationError
from deepviz.probe import build_probe, dataset_of, display_range, stratified_subset, thumbnails, to_uint8_images


class ImagesOnly(Dataset):
    """A dataset that yields images without labels (the error case)."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


class WithTargets(TensorDataset):
    """Like torchvision datasets: labels also available as ``.targets``."""

    def __init__(self, x, y):
        super().__init__(x, y)
        self.targets = y.tolist()


def test_stratified_subset_keeps_class_shares(digits_tensors):
    _, y = digits_tensors
    labels = y.numpy()
    ids = stratified_subset(labels, 300, seed=0)
    assert len(ids) == 300 and len(set(ids)) == 300
    assert np.all(np.diff(ids) > 0), "ids are sorted, so probe order is index order"
    expected = np.bincount(labels) / len(labels) * 300
    assert np.all(np.abs(np.bincount(labels[ids], minlength=10) - expected) <= 1)


def test_stratified_subset_is_seeded(digits_tensors):
    labels = digits_tensors[1].numpy()
    a, b, c = (stratified_subset(labels, 100, seed=s) for s in (3, 3, 4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stratified_subset_all_when_size_is_none_or_large():
    labels = np.array([0, 1, 1, 2])
    assert np.array_equal(stratified_subset(labels, None, 0), np.arange(4))
    assert np.array_equal(stratified_subset(labels, 10, 0), np.arange(4))


def test_stratified_subset_refuses_zero():
    with pytest.raises(ConfigurationError, match="probe_size must be a positive number of images, got 0"):
        stratified_subset(np.array([0, 1]), 0, 0)


@pytest.mark.parametrize("kind", ["tensor_pair", "numpy_pair", "dataset", "dataset_with_targets"])
def test_build_probe_ids_index_what_the_user_gave(digits_tensors, kind):
    x, y = digits_tensors
    x, y = x[:200], y[:200]
    probe = {
        "tensor_pair": (x, y),
        "numpy_pair": (x.numpy(), y.numpy()),
        "dataset": TensorDataset(x, y),
        "dataset_with_targets": WithTargets(x, y),
    }[kind]
    p = build_probe(probe, 50, seed=1)
    assert len(p) == 50 and p.inputs.shape == (50, 1, 8, 8) and p.inputs.dtype == torch.float32
    assert torch.equal(p.inputs, x[torch.as_tensor(p.ids)])
    assert torch.equal(p.labels, y[torch.as_tensor(p.ids)])
    # The same seed picks the same images whatever form the probe takes.
    assert np.array_equal(p.ids, build_probe((x, y), 50, seed=1).ids)


def test_probe_pair_without_labels():
    with pytest.raises(ConfigurationError, match=r"labels=None.*probe=\(images, labels\)"):
        build_probe((torch.zeros(4, 1, 8, 8), None))


def test_probe_dataset_without_labels(digits_tensors):
    with pytest.raises(ConfigurationError, match=r"Probe item 0 is a Tensor, not an \(image, label\) pair"):
        build_probe(ImagesOnly(digits_tensors[0][:10]))


def test_probe_labels_of_wrong_shape():
    with pytest.raises(ConfigurationError, match=r"one label per image: got shape \(3,\) for 4 images"):
        build_probe((torch.zeros(4, 1, 8, 8), np.array([0, 1, 2])))


def test_probe_labels_not_integers():
    with pytest.raises(ConfigurationError, match="must be integers.*got dtype float"):
        build_probe((torch.zeros(2, 1, 8, 8), np.array([0.0, 1.0])))


def test_probe_empty_dataset():
    with pytest.raises(ConfigurationError, match="probe dataset is empty"):
        build_probe(TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)))


def test_probe_of_wrong_type():
    with pytest.raises(ConfigurationError, match="probe must be a torch Dataset.*got int"):
        build_probe(42)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(0.0, 1.0, (0.0, 1.0)), (0.0, 200.0, (0.0, 255.0)), (-2.0, 3.0, (-2.0, 3.0)), (0.5, 0.5, (0.0, 1.0))],
)
def test_display_range(lo, hi, expected):
    x = torch.tensor([lo, hi]).reshape(1, 1, 1, 2)
    assert display_range(x) == expected


@pytest.mark.parametrize("channels", [1, 3])
def test_thumbnails_are_small_pngs(channels):
    x = torch.rand(3, channels, 96, 80)
    thumbs = thumbnails(x, max_size=64)
    assert len(thumbs) == 3
    for png in thumbs:
        img = Image.open(io.BytesIO(png))
        assert img.format == "PNG" and max(img.size) == 64
        assert img.mode == ("L" if channels == 1 else "RGB")


def test_uint8_images_keep_values():
    x = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3)
    assert to_uint8_images(x).reshape(-1).tolist() == [0, 128, 255]


@pytest.mark.parametrize("as_dataset", [False, True])
def test_probe_negative_label(digits_tensors, as_dataset):
    x, y = digits_tensors
    labels = y[:30].clone()
    labels[4] = -1
    probe = TensorDataset(x[:30], labels) if as_dataset else (x[:30], labels)
    with pytest.raises(ConfigurationError, match=r"Probe label -1 \(at index 4\) is negative; labels must be class "
                       r"indices 0\.\.n_classes-1"):
        build_probe(probe, 10)


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter([(torch.zeros(1, 2, 2), 0)])


def test_an_iterable_dataset_is_refused_by_name():
    with pytest.raises(ConfigurationError, match=r"The probe is an IterableDataset \(Stream\): it has no index, so no "
                       r"stable probe ids and no seeded subset\. Give a map-style Dataset"):
        build_probe(Stream(), 10)


@pytest.mark.parametrize(
    ("loaders", "match"),
    [
        ({"a": 1, "b": 2}, r"probe='val': the trainer has 2 validation dataloaders \(a, b\); the probe must be one"),
        ([], r"probe='val': the trainer has 0 validation dataloaders \(none\)"),
        (iter([1]), r"probe='val': the trainer's validation data is a list_iterator, not a DataLoader"),
    ],
)
def test_dataset_of_names_what_the_trainer_holds(loaders, match):
    with pytest.raises(ConfigurationError, match=match):
        dataset_of(loaders, "val")


def test_dataset_of_one_loader_in_a_list_or_dict(digits_tensors):
    data = TensorDataset(*digits_tensors)
    loader = torch.utils.data.DataLoader(data)
    assert dataset_of(loader, "train") is data
    assert dataset_of([loader], "val") is data and dataset_of({"digits": loader}, "val") is data


# --------------------------------------------------------------------------- a large probe: no whole-probe copies


class Items(Dataset):
    """A map-style dataset known only through its items (no tensors, no targets)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_a_whole_float32_probe_is_the_given_tensor_and_a_subset_is_its_rows(digits_tensors):
    x, y = digits_tensors
    whole = build_probe((x, y))
    assert whole.inputs.data_ptr() == x.data_ptr() and torch.equal(whole.labels, y)  # no copy
    part = build_probe(TensorDataset(x, y), 100, seed=2)
    assert part.inputs.data_ptr() != x.data_ptr() and torch.equal(part.inputs, x[torch.as_tensor(part.ids)])


def test_a_tensor_dataset_and_its_items_give_the_same_probe(digits_tensors):
    x, y = digits_tensors
    x8 = (x[:300] * 255).to(torch.uint8)  # uint8 images: the probe holds them as float32
    fast, slow = build_probe(TensorDataset(x8, y[:300]), 60, seed=3), build_probe(Items(x8, y[:300]), 60, seed=3)
    assert np.array_equal(fast.ids, slow.ids) and torch.equal(fast.labels, slow.labels)
    assert fast.inputs.dtype == slow.inputs.dtype == torch.float32 and torch.equal(fast.inputs, slow.inputs)


def test_probe_items_of_different_shapes_are_refused():
    items = Items([torch.zeros(1, 8, 8), torch.zeros(1, 8, 9)], [0, 1])
    with pytest.raises(ConfigurationError, match=r"Probe item 1 has shape \(1, 8, 9\), item 0 has \(1, 8, 8\): every probe image"):
        build_probe(items)


def test_uint8_images_in_chunks_are_those_of_one_pass(monkeypatch):
    from deepviz import probe as P

    x = torch.randn(10, 3, 5, 4) * 3
    lo, hi = display_range(x)
    whole = np.round(np.clip((x.numpy() - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    monkeypatch.setattr(P, "CHUNK_BYTES", 3 * 60 * 4)
    np.testing.assert_array_equal(to_uint8_images(x), whole)


def test_thumbnails_encoded_in_parallel_keep_probe_order(monkeypatch):
    from deepviz import probe as P

    monkeypatch.setattr(P, "THUMBNAIL_SLICE", 2)
    x = torch.rand(7, 3, 6, 6)
    x[:, 0, 0, 0] = torch.arange(7) / 7  # every image differs
    expected = to_uint8_images(x)
    pngs = thumbnails(x)
    assert len(pngs) == 7
    for png, img in zip(pngs, expected):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), img)


def test_thumbnails_streamed_a_window_at_a_time_share_the_whole_probes_range(monkeypatch):
    # Normalised inputs are shown by the range of the whole probe: a window of a few images must not
    # stretch its own range (which would brighten a dark window).
    from deepviz import probe as P

    x = torch.randn(11, 3, 4, 4) * 2
    x[:4] -= 5  # a dark first window
    monkeypatch.setattr(P, "THUMBNAIL_WINDOW", 4)
    streamed = P.iter_thumbnails(x)
    assert not isinstance(streamed, list)
    got = [np.asarray(Image.open(io.BytesIO(png))) for png in streamed]
    np.testing.assert_array_equal(np.stack(got), to_uint8_images(x))
