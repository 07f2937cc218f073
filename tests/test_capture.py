"""Capture: what a snapshot holds, computed with hooks in eval mode, the model left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepviz.capture import CaptureResult, capture, conv_layers, merge, resolve_layers, softmax, weights_of
from deepviz.errors import ConfigurationError
from trainers.models import SmallNet


class ConvOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 10, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.conv(x)).flatten(1)


class Returns4D(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))[:, :, None, None]


class WithDropout(nn.Module):
    """Dropout makes train and eval mode visibly different."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.drop(self.fc1(x.flatten(1))))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return SmallNet()


def test_default_layers_are_every_pooled_conv_then_every_linear(net):
    assert resolve_layers(net) == ["conv1.gap", "conv2.gap", "fc1", "fc2"]
    assert conv_layers(net) == ["conv1", "conv2"]


def test_named_layers_kept_in_order_without_duplicates(net):
    assert resolve_layers(net, ["relu3", "conv2", "relu3"]) == ["relu3", "conv2"]


def test_unknown_layer_lists_available_names(net):
    with pytest.raises(ConfigurationError, match=r"Unknown layer 'fc9'\. Available: conv1, relu1, conv2, .*fc2, conv1\.gap, conv2\.gap\."):
        resolve_layers(net, ["fc1", "fc9"])


def test_layers_as_a_string_is_refused(net):
    with pytest.raises(ConfigurationError, match=r"got the string 'fc1'; write layers=\['fc1'\]"):
        resolve_layers(net, "fc1")


def test_model_without_linear_captures_its_pooled_convs_and_one_without_either_needs_layers():
    assert resolve_layers(ConvOnly()) == ["conv.gap"]
    assert resolve_layers(ConvOnly(), ["conv"]) == ["conv"]
    with pytest.raises(ConfigurationError, match=r"Sequential has no conv or nn.Linear layer.*layers=\[\.\.\.\].*Available: 0, 1"):
        resolve_layers(nn.Sequential(nn.ReLU(), nn.Flatten()))


def test_capture_matches_a_plain_forward_pass(net, digits_tensors):
    x, y = digits_tensors[0][:50], digits_tensors[1][:50]
    r = capture(net, x, y, ["fc1", "conv1"], batch_size=16)
    net.eval()
    with torch.no_grad():
        logits = net(x)
        fc1 = net.fc1(net.pool(net.relu2(net.conv2(net.relu1(net.conv1(x))))).flatten(1))
        conv1 = net.conv1(x).flatten(1)
    np.testing.assert_allclose(r.logits, logits.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.probs, torch.softmax(logits, 1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.loss, F.cross_entropy(logits, y, reduction="none").numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.activations["fc1"], fc1.numpy(), rtol=1e-5, atol=1e-6)
    assert r.activations["conv1"].shape == (50, 16 * 8 * 8)
    np.testing.assert_allclose(r.activations["conv1"], conv1.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.probs.sum(1), 1.0, rtol=1e-5)
    assert r.nonfinite == []


def test_capture_does_not_depend_on_batch_size(net, digits_tensors):
    x, y = digits_tensors[0][:37], digits_tensors[1][:37]
    a = capture(net, x, y, ["fc1"], batch_size=5)
    b = capture(net, x, y, ["fc1"], batch_size=256)
    np.testing.assert_allclose(a.activations["fc1"], b.activations["fc1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_mode_restored_and_hooks_removed(digits_tensors, training):
    torch.manual_seed(0)
    net = WithDropout().train(training)
    x, y = digits_tensors[0][:20], digits_tensors[1][:20]
    a = capture(net, x, y, ["fc1", "fc2"])
    b = capture(net, x, y, ["fc1", "fc2"])
    # eval mode: dropout off, so two captures agree exactly
    np.testing.assert_array_equal(a.activations["fc2"], b.activations["fc2"])
    assert net.training is training and all(m.training is training for m in net.modules())
    assert all(not m._forward_hooks for m in net.modules())
    assert torch.is_grad_enabled()


def test_bad_forward_output_is_refused_and_model_restored(digits_tensors):
    net = Returns4D().train()
    with pytest.raises(ConfigurationError, match=r"Returns4D.forward must return logits of shape \(batch, classes\).*\(4, 10, 1, 1\)"):
        capture(net, digits_tensors[0][:4], digits_tensors[1][:4], ["fc"])
    assert net.training and not net.fc._forward_hooks


def test_nonfinite_layers_are_reported(net, digits_tensors):
    with torch.no_grad():
        net.fc1.weight[0, 0] = float("nan")
    r = capture(net, digits_tensors[0][:8], digits_tensors[1][:8], ["conv1", "fc1"])
    assert r.nonfinite == ["fc1", "logits"]


def test_softmax_rows_sum_to_one():
    logits = np.random.default_rng(0).normal(scale=30, size=(20, 7)).astype(np.float32)
    p = softmax(logits)
    assert p.dtype == np.float32 and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_merge_puts_shards_in_probe_order(net, digits_tensors):
    x, y = digits_tensors[0][:11], digits_tensors[1][:11]
    whole = capture(net, x, y, ["fc1"])
    parts = []
    for rank in range(3):
        rows = np.arange(rank, 11, 3)
        parts.append((rows, capture(net, x[rows], y[rows], ["fc1"])))
    merged = merge(parts, 11)
    np.testing.assert_allclose(merged.activations["fc1"], whole.activations["fc1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(merged.probs, whole.probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(merged.loss, whole.loss, rtol=1e-5, atol=1e-6)


def test_weights_are_copies_of_the_conv_weights(net):
    w = weights_of(net, ["conv1"])
    assert isinstance(w["conv1"], np.ndarray) and w["conv1"].shape == (16, 1, 3, 3)
    np.testing.assert_array_equal(w["conv1"], net.conv1.weight.detach().numpy())
    w["conv1"][:] = 0  # the stored copy is not a view of the live parameter
    assert net.conv1.weight.abs().sum() > 0


def test_capture_result_defaults():
    r = CaptureResult(logits=np.zeros((0, 3)), probs=np.zeros((0, 3)), loss=np.zeros(0))
    assert r.activations == {} and r.nonfinite == []


class InplaceRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


def test_inplace_op_after_a_layer_does_not_change_its_stored_output(digits_tensors):
    torch.manual_seed(0)
    net = InplaceRelu()
    x, y = digits_tensors[0][:16], digits_tensors[1][:16]
    r = capture(net, x, y, ["fc1"])
    with torch.no_grad():
        expected = net.fc1(x.flatten(1)).numpy()
    assert (expected < 0).any(), "the check needs negative pre-activations"
    np.testing.assert_allclose(r.activations["fc1"], expected, rtol=1e-5, atol=1e-6)


class Flat(nn.Module):
    """A first layer that is Linear: it takes C*H*W features."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class WithExample(Flat):
    example_input_array = torch.zeros(1, 1, 8, 8)


@pytest.mark.parametrize(
    ("model", "inputs", "match"),
    [
        (SmallNet(), torch.zeros(4, 3, 8, 8),
         r"SmallNet\.forward failed on the probe images, of shape \(3, 8, 8\) each \(batch \(4, 3, 8, 8\)\): .*"
         r"Its first layer, conv1 \(Conv2d\), takes 1 input channel\(s\)\. Give probe images shaped"),
        (Flat(), torch.zeros(4, 1, 16, 16),
         r"Flat\.forward failed on the probe images, of shape \(1, 16, 16\) each.*"
         r"Its first layer, fc \(Linear\), takes 64 features; one probe image has 256 values\."),
        (WithExample(), torch.zeros(4, 1, 16, 16), r"Its example_input_array has shape \(1, 8, 8\) per image\."),
    ],
)
def test_probe_of_the_wrong_shape_names_both_shapes(model, inputs, match):
    model.train()
    with pytest.raises(ConfigurationError, match=match):
        capture(model, inputs, torch.zeros(len(inputs), dtype=torch.long), [])
    assert model.training  # restored even so


@pytest.mark.parametrize("bad", [99, -1, 10])
def test_probe_label_outside_the_models_classes(net, digits_tensors, bad):
    x, y = digits_tensors
    labels = y[:20].clone()
    labels[7] = bad
    with pytest.raises(ConfigurationError, match=rf"Probe label {bad} is outside \[0, 10\): SmallNet gives 10 class "
                       r"scores per image, so labels must be class indices 0\.\.9"):
        capture(net, x[:20], labels, ["fc1"], batch_size=8)
