"""Properties of deepviz.introspect on tiny models built here.

Linear and two-layer models are used where an attribution has a closed form,
so the checks are exact relations (saliency of a linear model is its weight
pattern) rather than stored pictures.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from torch import nn

from deepviz import introspect as I
from deepviz.errors import ConfigurationError, NotFoundError

C, H, W, K = 3, 8, 8, 4


def linear_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K))


def conv_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    m = nn.Sequential()
    m.add_module("conv1", nn.Conv2d(C, 6, 3, padding=1))
    m.add_module("bn1", nn.BatchNorm2d(6))
    m.add_module("relu1", nn.ReLU())
    m.add_module("conv2", nn.Conv2d(6, 5, 3, padding=1))
    m.add_module("relu2", nn.ReLU(inplace=True))
    m.add_module("flat", nn.Flatten())
    m.add_module("drop", nn.Dropout(0.5))
    m.add_module("fc1", nn.Linear(5 * H * W, K))
    return m


class TwoLayer(nn.Module):
    """x -> fc1 -> ReLU -> fc2: guided backprop and deconvnet have closed forms."""

    def __init__(self, functional: bool = False) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.fc1 = nn.Linear(C * H * W, 16)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(16, K)
        self.functional = functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x.flatten(1))
        return self.fc2(torch.relu(h) if self.functional else self.relu(h))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These models are tiny: with other processes on a 2-core machine, OpenMP's
    # thread hand-off costs ~15 ms per conv call, 500x the work itself.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def image() -> torch.Tensor:
    return torch.randn(C, H, W, generator=torch.Generator().manual_seed(7))


def tv_of(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, axis=-1)).sum() + np.abs(np.diff(x, axis=-2)).sum())


# --- attributions with closed forms -------------------------------------------------


def test_saliency_of_linear_model_is_its_weight_pattern(image):
    m = linear_model()
    w = m[1].weight.detach().reshape(K, C, H, W)
    for target in range(K):
        np.testing.assert_allclose(I.saliency(m, image, target), w[target].abs().amax(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(I.saliency(m, image[None], 2, reduce="none"), w[2].numpy(), rtol=1e-6)
    np.testing.assert_allclose(I.saliency(m, image, 2, reduce="sum"), w[2].sum(0).numpy(), rtol=1e-5, atol=1e-6)


def test_gradient_x_input_of_linear_model_sums_to_logit_minus_bias(image):
    m = linear_model()
    attr = I.gradient_x_input(m, image, 1)
    assert attr.shape == (H, W) and attr.dtype == np.float32
    logit = m(image[None])[0, 1].item() - m[1].bias[1].item()
    assert attr.sum() == pytest.approx(logit, rel=1e-4, abs=1e-5)


def test_smoothgrad_of_linear_model_equals_saliency_and_leaves_global_rng_alone(image):
    m = linear_model()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    sg = I.smoothgrad(m, image, 0, n_samples=5, stdev=0.2, random_state=3)
    assert torch.equal(torch.rand(1), expected_next)
    # a linear model's gradient does not depend on the input, so noise changes nothing
    np.testing.assert_allclose(sg, I.saliency(m, image, 0), rtol=1e-5)


def test_smoothgrad_is_reproducible_and_depends_on_random_state(image):
    m = conv_model()
    a = I.smoothgrad(m, image, 0, n_samples=4, random_state=0)
    b = I.smoothgrad(m, image, 0, n_samples=4, random_state=0)
    c = I.smoothgrad(m, image, 0, n_samples=4, random_state=1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_guided_backprop_and_deconvnet_override_relu_modules(image):
    m = TwoLayer()
    target = 2
    w1 = m.fc1.weight.detach()
    w2 = m.fc2.weight.detach()[target]
    active = (m.fc1(image.flatten()[None])[0] > 0).float()
    # guided: the ReLU passes back only positive gradient, and only where it was active
    guided = (w1.T @ (active * w2.clamp_min(0))).reshape(C, H, W)
    # deconvnet: the ReLU passes back the positive gradient regardless of the forward pass
    deconv = (w1.T @ w2.clamp_min(0)).reshape(C, H, W)
    np.testing.assert_allclose(I.guided_backprop(m, image, target, reduce="none"), guided.numpy(), atol=1e-6)
    np.testing.assert_allclose(I.deconvnet(m, image, target, reduce="none"), deconv.numpy(), atol=1e-6)
    assert not np.allclose(I.guided_backprop(m, image, target), I.saliency(m, image, target))


def test_guided_backprop_warns_when_relu_is_functional(image):
    m = TwoLayer(functional=True)
    del m.relu  # no nn.ReLU module left: Captum has nothing to hook
    with pytest.warns(UserWarning, match="no nn.ReLU modules"):
        gbp = I.guided_backprop(m, image, 0)
    np.testing.assert_allclose(gbp, I.saliency(m, image, 0), atol=1e-6)
    with pytest.warns(UserWarning, match="deconvnet: the model has no nn.ReLU"):
        I.deconvnet(m, image, 0)


def test_grad_cam_matches_image_size_and_is_non_negative(image):
    m = conv_model()
    for layer in ("conv1", "conv2", None):
        cam = I.grad_cam(m, image, 1, layer)
        assert cam.shape == (H, W) and cam.dtype == np.float32
        assert (cam >= 0).all()


def test_grad_cam_on_non_spatial_layer_raises(image):
    with pytest.raises(ConfigurationError, match=r"grad_cam needs a layer with a spatial .* 'fc1' gives \(1, 4\)\. Conv layers: conv1, conv2\."):
        I.grad_cam(conv_model(), image, 0, "fc1")


def test_grad_cam_without_conv_layers_raises(image):
    with pytest.raises(ConfigurationError, match="grad_cam needs a Conv2d layer, but the model has none"):
        I.grad_cam(linear_model(), image, 0)


def test_layer_gradient_differs_from_logit_saliency(image):
    m = conv_model()
    whole = I.layer_gradient(m, image, "conv1")
    unit = I.layer_gradient(m, image, "conv1", unit=2)
    assert whole.shape == unit.shape == (H, W)
    assert not np.allclose(whole, I.saliency(m, image, 0))
    assert not np.allclose(whole, unit)


def test_layer_gradient_of_a_logit_unit_equals_saliency(image):
    m = linear_model()
    np.testing.assert_allclose(I.layer_gradient(m, image, "1", unit=3), I.saliency(m, image, 3), rtol=1e-6)


def test_layer_gradient_unit_out_of_range_raises(image):
    with pytest.raises(ConfigurationError, match=r"unit=5 is out of range for layer 'conv2', which has 5 channels .* 0\.\.4"):
        I.layer_gradient(conv_model(), image, "conv2", unit=5)


# --- occlusion ----------------------------------------------------------------------


def test_occluding_an_ignored_region_changes_nothing():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(C * 16 * 16, K))
    with torch.no_grad():
        m[1].weight.view(K, C, 16, 16)[..., :8] = 0  # the model ignores the left half
    x = torch.rand(C, 16, 16) + 0.5
    heat = I.occlusion(m, x, 1, size=4, stride=2)
    assert heat.shape == (16, 16)
    # columns 0..4 are only ever covered by windows lying wholly in the left half
    assert np.all(heat[:, :5] == 0)
    assert np.abs(heat[:, 8:]).min() > 0


def test_occlusion_with_one_window_is_the_score_drop(image):
    m = conv_model()
    heat = I.occlusion(m, image, 3, size=H, stride=1, baseline=0.5)
    m.eval()
    with torch.no_grad():
        drop = (m(image[None]) - m(torch.full((1, C, H, W), 0.5)))[0, 3].item()
    np.testing.assert_allclose(heat, np.full((H, W), drop), rtol=1e-5, atol=1e-6)


def test_occlusion_of_a_unit_is_its_activation_drop(image):
    m = conv_model()
    heat = I.occlusion(m, image, None, size=H, stride=1, layer="conv2", unit=1)
    before = I.activation_maps(m, image, "conv2")[1].mean()
    after = I.activation_maps(m, torch.zeros(C, H, W), "conv2")[1].mean()
    np.testing.assert_allclose(heat, np.full((H, W), before - after), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 9}, r"size=9 must be an int in 1\.\.8"),
        ({"size": 0}, r"size=0 must be an int in 1\.\.8"),
        ({"size": 2, "stride": 3}, r"stride=3 must be an int in 1\.\.size=2"),
        ({"size": 3, "stride": 2}, r"leave the last 1 pixel\(s\) of the image height \(8\) never occluded"),
        ({"baseline": "grey"}, r"baseline='grey' must be a number"),
        ({"batch_size": 0}, r"batch_size=0 must be an int >= 1"),
        ({"layer": "conv2"}, r"got layer='conv2', unit=None: give both"),
        ({"target": 1, "layer": "conv2", "unit": 0}, r"got target=1 and layer='conv2'.*pass target=None"),
        ({"target": 9}, r"target=9 is not a class index: the model has 4 classes, so target must be an int in 0\.\.3"),
    ],
)
def test_occlusion_refuses_bad_arguments(image, kwargs, message):
    kwargs = {"target": None if "layer" in kwargs else 0, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        I.occlusion(conv_model(), image, **kwargs)


def test_occlusion_refuses_non_square_misfit():
    m = nn.Sequential(nn.Flatten(), nn.Linear(C * 8 * 7, K))
    with pytest.raises(ConfigurationError, match=r"image width \(7\) never occluded"):
        I.occlusion(m, torch.zeros(C, 8, 7), 0, size=4, stride=2)


# --- filters, activation maps, grid ------------------------------------------------


def test_filters_rgb_and_mean_over_channels():
    m = conv_model()
    rgb = I.filters(m)
    grey = I.filters(m, "conv2")
    assert rgb.shape == (6, 3, 3, 3) and grey.shape == (5, 3, 3, 1)
    for f in (rgb, grey):
        assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    # symmetric normalisation, one scale per layer: zero weight maps to 0.5 and
    # the layer's strongest weight (not every filter's) reaches 0 or 1
    w = m.conv1.weight.detach().permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(rgb > 0.5, w > 0)
    np.testing.assert_allclose(rgb, 0.5 + w / (2 * np.abs(w).max()), rtol=1e-6)
    assert np.abs(rgb - 0.5).max() == pytest.approx(0.5)
    mean_w = m.conv2.weight.detach().mean(1)
    np.testing.assert_array_equal(grey[..., 0] > 0.5, mean_w.numpy() > 0)


def test_filters_of_a_dead_filter_are_flat_grey():
    m = conv_model()
    with torch.no_grad():
        m.conv1.weight[0] = 0
    assert np.all(I.filters(m)[0] == 0.5)


def test_a_fading_filter_fades_beside_its_live_neighbours():
    # Issue 12: a per-filter scale stretched a dying filter back to full contrast.
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    w[1] *= 1e-3
    tiles = I.filter_images(w)
    assert np.abs(tiles[1] - 0.5).max() < 1e-2 < np.abs(tiles[0] - 0.5).max()
    assert I.filter_images(w[:, :2]).shape == (4, 3, 3, 1)  # not RGB: mean over input channels


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.zeros((4, 3, 3)), r"Conv weights must be \(out, in, kh, kw\); got shape \(4, 3, 3\)"),
        (np.zeros((0, 3, 3, 3)), r"got shape \(0, 3, 3, 3\)"),
        (np.full((2, 3, 3, 3), np.nan), r"Conv weights contain NaN or inf"),
    ],
)
def test_filter_images_refuses_what_is_not_a_conv_weight(weights, message):
    with pytest.raises(ConfigurationError, match=message):
        I.filter_images(weights)
    with pytest.raises(ConfigurationError, match=r"rgb=True needs 3 input channels; these weights have 2"):
        I.filter_images(np.ones((4, 2, 3, 3)), rgb=True)


def test_filter_images_shows_three_channels_in_grey_when_told():
    w = np.random.default_rng(1).normal(size=(2, 3, 3, 3)).astype(np.float32)
    grey = I.filter_images(w, rgb=False)
    mean = w.mean(axis=1)
    np.testing.assert_allclose(grey[..., 0], 0.5 + mean / (2 * np.abs(mean).max()), rtol=1e-6)
    assert I.filter_images(w).shape == (2, 3, 3, 3)


def test_filters_refuses_non_conv_layers():
    with pytest.raises(ConfigurationError, match=r"Layer 'fc1' is a Linear, not a Conv2d; .*: conv1, conv2\."):
        I.filters(conv_model(), "fc1")
    with pytest.raises(ConfigurationError, match="filters needs a Conv2d layer, but the model has none"):
        I.filters(linear_model())


def test_unknown_layer_lists_the_available_ones(image):
    m = nn.Sequential()
    for name, mod in [("conv1", nn.Conv2d(3, 2, 3)), ("conv2", nn.Conv2d(2, 2, 3)), ("flat", nn.Flatten()),
                      ("fc1", nn.Linear(32, 4))]:
        m.add_module(name, mod)
    expected = "Unknown layer 'fc9'. Available: conv1, conv2, flat, fc1."
    for call in (
        lambda: I.filters(m, "fc9"),
        lambda: I.activation_maps(m, image, "fc9"),
        lambda: I.grad_cam(m, image, 0, "fc9"),
        lambda: I.layer_gradient(m, image, "fc9"),
        lambda: I.occlusion(m, image, None, layer="fc9", unit=0),
        lambda: I.maximize_activation(m, layer="fc9", channel=0, image_shape=(3, 8, 8)),
    ):
        with pytest.raises(NotFoundError, match=re.escape(expected)):
            call()


def test_activation_maps_and_grid(image):
    m = conv_model()
    maps = I.activation_maps(m, image, "conv2")
    assert maps.shape == (5, H, W) and maps.dtype == np.float32
    # conv2 is followed by an in-place ReLU: the maps are still the conv output, signs and all
    assert (maps < 0).any()
    g = I.grid(maps, ncols=3, pad=1, pad_value=-1)
    assert g.shape == (2 * H + 1, 3 * W + 2)
    np.testing.assert_array_equal(g[:H, W + 1: 2 * W + 1], maps[1])
    assert np.all(g[H + 1:, 2 * (W + 1):] == -1)  # the sixth cell is empty
    assert I.grid(maps).shape == (2 * H + 1, 3 * W + 2)  # ceil(sqrt(5)) = 3 columns
    assert I.grid(I.filters(m)).shape == (2 * 3 + 1, 3 * 3 + 2, 3)
    assert I.grid(I.filters(m, "conv2"), pad=0).shape == (6, 9)


def test_activation_maps_of_dense_layer_raises(image):
    with pytest.raises(ConfigurationError, match=r"activation_maps needs a layer with a spatial .* 'fc1' gives \(1, 4\)"):
        I.activation_maps(conv_model(), image, "fc1")


@pytest.mark.parametrize(
    ("maps", "kwargs", "message"),
    [
        (np.zeros((4, 4)), {}, r"grid takes a non-empty stack .* got shape \(4, 4\)"),
        (np.zeros((0, 4, 4)), {}, r"got shape \(0, 4, 4\)"),
        (np.zeros((2, 4, 4, 2)), {}, r"\(N, h, w, 1\|3\), got shape \(2, 4, 4, 2\)"),
        (np.zeros((2, 4, 4)), {"ncols": 0}, r"ncols=0 must be a positive int"),
        (np.zeros((2, 4, 4)), {"pad": -1}, r"pad=-1 must be an int >= 0"),
    ],
)
def test_grid_refuses_bad_input(maps, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        I.grid(maps, **kwargs)


# --- input checks shared by all methods --------------------------------------------


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((C, H, W), dtype=np.float32), r"image must be a torch\.Tensor .* got ndarray"),
        (torch.zeros(C, H, W, dtype=torch.uint8), r"image must be a float tensor, got dtype torch\.uint8"),
        (torch.zeros(2, C, H, W), r"image must have shape \(C, H, W\) or \(1, C, H, W\), got \(2, 3, 8, 8\)"),
        (torch.zeros(H, W), r"got \(8, 8\)"),
    ],
)
def test_every_method_refuses_a_bad_image(image, message):
    m = conv_model()
    for name in I.ATTRIBUTIONS:
        params = {"layer": "conv1"} if name == "layer_gradient" else {}
        with pytest.raises(ConfigurationError, match=message):
            I.attribute(name, m, image, None if name == "layer_gradient" else 0, **params)
    with pytest.raises(ConfigurationError, match=message):
        I.activation_maps(m, image, "conv1")


@pytest.mark.parametrize("target", [4, -1, 1.0, True, "cat"])
def test_every_method_refuses_a_bad_target(image, target):
    m = conv_model()
    for name in I.ATTRIBUTIONS:
        if name == "layer_gradient":
            continue
        with pytest.raises(ConfigurationError, match=r"is not a class index: the model has 4 classes"):
            I.attribute(name, m, image, target)


def test_reduce_must_be_known(image):
    with pytest.raises(ConfigurationError, match=r"reduce='mean' is not a reduction .* max_abs, sum, none"):
        I.saliency(linear_model(), image, 0, reduce="mean")


def test_model_must_return_logits(image):
    m = nn.Sequential(nn.Conv2d(C, 2, 3))
    with pytest.raises(ConfigurationError, match=r"must return logits of shape \(N, classes\), got \(1, 2, 6, 6\)"):
        I.saliency(m, image, 0)


def test_layer_with_tuple_output_is_refused(image):
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()
            self.fc = nn.Linear(C * H * W, K)

        def forward(self, x):
            return self.fc(self.pair(x)[0].flatten(1))

    with pytest.raises(ConfigurationError, match="The layer's output is a tuple, not a tensor"):
        I.activation_maps(Net(), image, "pair")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_samples": 0}, r"n_samples=0 must be an int >= 1"),
        ({"stdev": -0.1}, r"stdev=-0\.1 must be a number >= 0"),
    ],
)
def test_smoothgrad_refuses_bad_arguments(image, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        I.smoothgrad(linear_model(), image, 0, **kwargs)


# --- registry ----------------------------------------------------------------------


def test_attribute_dispatches_to_the_registry(image):
    m = conv_model()
    np.testing.assert_array_equal(I.attribute("saliency", m, image, 1), I.saliency(m, image, 1))
    np.testing.assert_array_equal(
        I.attribute("occlusion", m, image, 1, size=2, stride=2), I.occlusion(m, image, 1, size=2, stride=2)
    )
    np.testing.assert_array_equal(
        I.attribute("layer_gradient", m, image, layer="conv2", unit=1), I.layer_gradient(m, image, "conv2", 1)
    )
    for name in I.ATTRIBUTIONS:
        params = {"layer": "conv2"} if name == "layer_gradient" else {}
        out = I.attribute(name, m, image, None if name == "layer_gradient" else 0, **params)
        assert out.shape == (H, W) and out.dtype == np.float32


def test_attribute_refuses_unknown_method_params_and_target(image):
    m = conv_model()
    with pytest.raises(NotFoundError, match=r"Unknown attribution method 'lime'\. Available: saliency, smoothgrad, .*occlusion\."):
        I.attribute("lime", m, image, 0)
    with pytest.raises(ConfigurationError, match=r"saliency does not take layer; it takes target, reduce\."):
        I.attribute("saliency", m, image, 0, layer="conv1")
    with pytest.raises(ConfigurationError, match=r"layer_gradient takes no target \(got target=0\)"):
        I.attribute("layer_gradient", m, image, 0, layer="conv1")


# --- model state -------------------------------------------------------------------


def test_model_mode_and_requires_grad_are_restored(image):
    m = conv_model()
    m.train()
    m.drop.eval()  # a mixed state must come back as it was, module by module
    m.conv1.weight.requires_grad_(False)
    modes = {n: mod.training for n, mod in m.named_modules()}
    flags = {n: p.requires_grad for n, p in m.named_parameters()}
    running = m.bn1.running_mean.clone()
    with torch.no_grad():  # gradient methods must still work under a caller's no_grad
        for name in I.ATTRIBUTIONS:
            params = {"layer": "conv2"} if name == "layer_gradient" else {}
            I.attribute(name, m, image, None if name == "layer_gradient" else 0, **params)
        I.activation_maps(m, image, "conv1")
        I.maximize_activation(m, 0, image_shape=(C, H, W), steps=3)
    assert {n: mod.training for n, mod in m.named_modules()} == modes
    assert {n: p.requires_grad for n, p in m.named_parameters()} == flags
    assert all(p.grad is None for p in m.parameters())
    # BatchNorm ran in eval mode: its running statistics did not move
    assert torch.equal(m.bn1.running_mean, running)


def test_mode_is_restored_after_an_error(image):
    m = conv_model().train()
    with pytest.raises(ConfigurationError):
        I.saliency(m, image, 99)
    assert all(mod.training for mod in m.modules())


# --- activation maximisation -------------------------------------------------------


def test_maximize_raises_the_class_score():
    m = conv_model()
    start = torch.zeros(C, H, W)
    m.eval()
    with torch.no_grad():
        start_score = m(start[None])[0, 2].item()
    res = I.maximize_activation(m, 2, image_shape=(C, H, W), steps=30, lr=0.05)
    assert res.image.shape == (C, H, W) and res.image.dtype == np.float32
    assert len(res.history) == 30 and res.history[0] == pytest.approx(start_score, rel=1e-5)
    assert res.score > start_score + 1.0
    assert 0 < res.probability < 1
    with torch.no_grad():
        logits = m(torch.from_numpy(res.image)[None])
    assert res.score == pytest.approx(logits[0, 2].item(), rel=1e-5)
    assert res.probability == pytest.approx(logits.softmax(1)[0, 2].item(), rel=1e-5)


def test_maximize_raises_a_channel_mean():
    m = conv_model()
    res = I.maximize_activation(m, layer="conv2", channel=3, start="noise", image_shape=(C, H, W), steps=30)
    assert res.probability is None
    assert res.score > res.history[0]
    assert res.score == pytest.approx(I.activation_maps(m, torch.from_numpy(res.image), "conv2")[3].mean(), rel=1e-5)


def _maxact(**kwargs):
    # A linear model: unregularised ascent walks along its (noisy) weight
    # pattern, so every regulariser has something visible to undo.
    return I.maximize_activation(linear_model(), 1, image_shape=(C, H, W), steps=40, lr=0.1, **kwargs).image


def test_each_regulariser_moves_the_result_the_expected_way():
    plain = _maxact()
    assert tv_of(_maxact(tv=5.0)) < 0.8 * tv_of(plain)
    assert tv_of(_maxact(blur_every=2, blur_sigma=1.0)) < 0.8 * tv_of(plain)
    assert np.linalg.norm(_maxact(l2=0.1)) < 0.8 * np.linalg.norm(plain)

    def outside(x, lo=-1.0, hi=1.0):
        return float((np.clip(lo - x, 0, None) ** 2 + np.clip(x - hi, 0, None) ** 2).sum())

    assert outside(plain) > 0
    assert outside(_maxact(bound=100.0)) < 0.5 * outside(plain)
    assert outside(_maxact(bound=100.0, value_range=(-3.0, 3.0)), -3, 3) < outside(plain, -3, 3) + 1e-9

    zero_pixels = lambda x: float((np.abs(x).sum(0) == 0).mean())  # noqa: E731
    assert zero_pixels(plain) == 0
    assert zero_pixels(_maxact(clip_norm_pct=30.0)) >= 0.25
    assert zero_pixels(_maxact(clip_contrib_pct=30.0)) >= 0.25


def test_jitter_is_reproducible_from_random_state():
    a = _maxact(jitter=2, random_state=0)
    np.testing.assert_array_equal(a, _maxact(jitter=2, random_state=0))
    assert not np.allclose(a, _maxact(jitter=2, random_state=1))
    assert not np.allclose(a, _maxact())


def test_maximize_takes_the_image_shape_from_the_model_or_start():
    m = conv_model()
    m.example_input_array = torch.zeros(1, C, H, W)
    assert I.maximize_activation(m, 0, steps=2).image.shape == (C, H, W)
    m2 = conv_model()
    m2.input_shape = (C, H, W)
    assert I.maximize_activation(m2, 0, steps=2).image.shape == (C, H, W)
    start = torch.rand(C, H, W)
    res = I.maximize_activation(conv_model(), 0, start=start, steps=1, lr=1e-6)
    np.testing.assert_allclose(res.image, start.numpy(), atol=1e-4)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, r"image_shape was not given and the model has no example_input_array.*pass image_shape=\(C, H, W\)"),
        ((0,), {"image_shape": (8, 8)}, r"image_shape=\(8, 8\) must be three positive ints"),
        ((), {"image_shape": (C, H, W)}, r"got target=None, layer=None: give a target class, or layer and channel"),
        ((0,), {"layer": "conv2", "channel": 1, "image_shape": (C, H, W)}, r"got target=0, layer='conv2'.*not both"),
        ((), {"layer": "conv2", "image_shape": (C, H, W)}, r"got layer='conv2', channel=None: give both"),
        ((), {"layer": "conv2", "channel": 9, "image_shape": (C, H, W)}, r"channel=9 is out of range for layer 'conv2'"),
        ((7,), {"image_shape": (C, H, W)}, r"target=7 is not a class index"),
        ((0,), {"image_shape": (C, H, W), "steps": 0}, r"steps=0 must be an int >= 1"),
        ((0,), {"image_shape": (C, H, W), "lr": 0}, r"lr=0 must be a number > 0\.0"),
        ((0,), {"image_shape": (C, H, W), "l2": 1.0}, r"l2=1\.0 must be a number >= 0\.0 and < 1\.0"),
        ((0,), {"image_shape": (C, H, W), "blur_every": -1}, r"blur_every=-1 must be an int >= 0"),
        ((0,), {"image_shape": (C, H, W), "blur_sigma": 0}, r"blur_sigma=0 must be a number > 0\.0"),
        ((0,), {"image_shape": (C, H, W), "clip_norm_pct": 100}, r"clip_norm_pct=100 must be a number >= 0\.0 and < 100\.0"),
        ((0,), {"image_shape": (C, H, W), "clip_contrib_pct": -5}, r"clip_contrib_pct=-5 must be"),
        ((0,), {"image_shape": (C, H, W), "tv": float("nan")}, r"tv=nan must be a number >= 0\.0"),
        ((0,), {"image_shape": (C, H, W), "bound": -1}, r"bound=-1 must be a number >= 0\.0"),
        ((0,), {"image_shape": (C, H, W), "jitter": 1.5}, r"jitter=1\.5 must be an int >= 0"),
        ((0,), {"image_shape": (C, H, W), "value_range": (1, 1)}, r"value_range=\(1, 1\) must be two numbers \(low, high\) with low < high"),
        ((0,), {"image_shape": (C, H, W), "value_range": "wide"}, r"value_range='wide' must be two numbers"),
        ((0,), {"image_shape": (C, H, W), "start": "gray"}, r"start='gray' must be 'zeros', 'noise' or an image tensor"),
        ((0,), {"image_shape": (C, 4, 4), "start": torch.zeros(C, H, W)}, r"start has shape \(3, 8, 8\), but the image shape is \(3, 4, 4\)"),
    ],
)
def test_maximize_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        I.maximize_activation(conv_model(), *args, **kwargs)


def test_top_k_per_unit_moved_to_analysis_and_is_still_reachable_here():
    from deepviz.analysis import top_k_per_unit

    assert I.top_k_per_unit is top_k_per_unit


def test_importing_introspect_pulls_in_no_lightning_or_storage():
    forbidden = ("lightning", "pytorch_lightning", "duckdb", "pyarrow", "flask")
    code = (
        "import sys, deepviz.introspect; "
        f"print([m for m in {forbidden!r} if m in sys.modules])"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
