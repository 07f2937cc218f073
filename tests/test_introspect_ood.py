"""Activation maximisation says when its image is out of distribution: the score rose, the range saturates."""

from __future__ import annotations

import numpy as np
import pytest

from deepviz import introspect as I
from deepviz.errors import ConfigurationError
from deepviz.introspect.maximize import OOD_SATURATION, saturation_fraction

from .test_introspect import C, H, W, linear_model


def test_saturation_fraction_counts_values_beyond_the_range():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 1.01, 2.0])
    assert saturation_fraction(x, (0.0, 1.0)) == pytest.approx(2 / 6)  # 1.01 is inside the 2 % margin
    assert saturation_fraction(x, (0.0, 1.0), margin=0.0) == pytest.approx(3 / 6)
    assert saturation_fraction(np.random.default_rng(0).random((3, 8, 8)), (0.0, 1.0)) == 0.0
    with pytest.raises(ConfigurationError, match=r"value_range=\(1.0, 0.0\) must be \(low, high\)"):
        saturation_fraction(x, (1.0, 0.0))
    with pytest.raises(ConfigurationError, match="margin=1.5 must be in"):
        saturation_fraction(x, (0.0, 1.0), margin=1.5)
    with pytest.raises(ConfigurationError, match="image is empty"):
        saturation_fraction(np.zeros(0), (0.0, 1.0))


def test_unregularised_ascent_is_flagged_and_a_bounded_one_is_not():
    # Unregularised, the ascent walks far outside the data's range: the score soars on an image no data looks like.
    wild = I.maximize_activation(linear_model(), 1, image_shape=(C, H, W), steps=60, lr=0.5, value_range=(0.0, 1.0))
    assert wild.score > wild.history[0] and wild.saturation >= OOD_SATURATION and wild.out_of_distribution
    assert wild.saturation == saturation_fraction(wild.image, (0.0, 1.0))
    # A strong range penalty keeps the image in range: the score still rose, and nothing is flagged.
    tame = I.maximize_activation(linear_model(), 1, image_shape=(C, H, W), steps=60, lr=0.02, bound=1e4,
                                 value_range=(-1.0, 1.0))
    assert tame.score > tame.history[0] and tame.saturation < OOD_SATURATION and not tame.out_of_distribution
