import numpy as np
import pytest

from deepviz.analysis.colour import HIST_BINS, colour_features, neighbourhood_agreement
from deepviz.errors import ConfigurationError


def coloured_images(n=60, seed=0):
    """Images of one flat colour each, plus noise; colour unrelated to class."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(n, 3))
    imgs = colours[:, None, None, :] + rng.integers(-5, 6, size=(n, 8, 8, 3))
    return np.clip(imgs, 0, 255).astype(np.uint8), colours


def test_colour_features_layouts_and_ranges():
    imgs, colours = coloured_images()
    F = colour_features(imgs)
    assert F.shape == (60, 3 + HIST_BINS**3) and F.dtype == np.float32
    np.testing.assert_allclose(F[:, :3], imgs.reshape(60, -1, 3).mean(axis=1) / 255, atol=1e-5)
    np.testing.assert_allclose(F[:, 3:].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(colour_features(np.moveaxis(imgs, 3, 1)), F, atol=1e-6)
    np.testing.assert_allclose(colour_features(imgs / 255.0), F, atol=1e-5)
    grey = colour_features(np.zeros((2, 1, 5, 5), np.float32))
    assert grey.shape == (2, 1 + HIST_BINS)
    assert colour_features(np.zeros((2, 6, 6, 4), np.uint8)).shape == (2, 3 + HIST_BINS**3)
    normalised = colour_features(np.random.default_rng(0).normal(size=(3, 5, 5, 3)))
    assert normalised.min() >= 0 and normalised[:, :3].max() <= 1


def test_agreement_tells_colour_from_class():
    imgs, _ = coloured_images()
    colour = colour_features(imgs)
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 20)
    centres = rng.normal(size=(3, 16)) * 10
    by_class = centres[y] + rng.normal(size=(60, 16))
    by_colour = np.hstack([colour * 10, rng.normal(size=(60, 2)) * 0.01])
    a = neighbourhood_agreement(by_class, y, colour, k=5)
    b = neighbourhood_agreement(by_colour, y, colour, k=5, metric="euclidean")
    assert a["class"] > 0.95 and a["colour"] < 0.3
    assert b["colour"] > 0.8 and b["class"] < 0.6
    assert a["class_chance"] == pytest.approx(1 / 3)
    assert a["colour_chance"] == pytest.approx(5 / 59)


def test_errors():
    imgs, _ = coloured_images(n=4)
    with pytest.raises(ConfigurationError, match=r"images must be 4-D.* got shape \(4, 8, 8\)"):
        colour_features(imgs[..., 0])
    with pytest.raises(ConfigurationError, match=r"Cannot tell the channel axis .* \(2, 3, 5, 3\); pass channels_last"):
        colour_features(np.zeros((2, 3, 5, 3)))
    with pytest.raises(ConfigurationError, match=r"no axis of 1, 3 or 4 channels"):
        colour_features(np.zeros((2, 5, 5, 5)))
    with pytest.raises(ConfigurationError, match=r"must have 1, 3 or 4 channels; got 5"):
        colour_features(np.zeros((2, 5, 5, 5)), channels_last=True)
    with pytest.raises(ConfigurationError, match="images contain NaN"):
        colour_features(np.full((2, 5, 5, 3), np.nan))
    X = np.random.default_rng(0).normal(size=(4, 3))
    with pytest.raises(ConfigurationError, match="colour has 3 rows but X has 4"):
        neighbourhood_agreement(X, [0, 0, 1, 1], X[:3])
    with pytest.raises(ConfigurationError, match=r"k=4 neighbours need more than 4 images"):
        neighbourhood_agreement(X, [0, 0, 1, 1], X, k=4)


def test_colour_stats_measure_mean_colour_brightness_and_saturation():
    from deepviz.analysis.colour import LUMA, colour_stats

    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((1, 4, 4, 3), 128, np.uint8)
    black = np.zeros((1, 4, 4, 3), np.uint8)
    s = colour_stats(np.concatenate([red, grey, black]), channels_last=True)
    np.testing.assert_allclose(s["mean_rgb"], [[1, 0, 0], [128 / 255] * 3, [0, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(s["brightness"], [LUMA[0], 128 / 255, 0], atol=1e-6)
    np.testing.assert_allclose(s["saturation"], [1, 0, 0], atol=1e-6)  # black: saturation 0, not NaN
    # brighter images rank brighter; channels-first and channels-last agree
    imgs, _ = coloured_images()
    a, b = colour_stats(imgs), colour_stats(np.moveaxis(imgs, 3, 1))
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)
    assert ((0 <= a["saturation"]) & (a["saturation"] <= 1)).all()
    one = colour_stats(np.full((2, 1, 5, 5), 0.25, np.float32))  # grey images: one channel
    np.testing.assert_allclose(one["mean_rgb"], 0.25)
    np.testing.assert_allclose(one["saturation"], 0)
    with pytest.raises(ConfigurationError, match="images must be 4-D"):
        colour_stats(imgs[..., 0])
