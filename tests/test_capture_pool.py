"""Pooled conv outputs as captured layers: named <conv>.gap, hooked like a module, the model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepviz.capture_pool import PooledConv, gap_layers, gap_name, global_average_pool, hook_targets
from deepviz.errors import ConfigurationError
from trainers.models import SmallNet


def test_gap_names_every_conv_of_the_model():
    model = SmallNet()
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs and gap_layers(model) == [f"{c}.gap" for c in convs] == [gap_name(c) for c in convs]
    targets = hook_targets(model)
    assert all(isinstance(targets[gap_name(c)], PooledConv) for c in convs)
    assert all(targets[n] is m for n, m in model.named_modules() if n)  # the modules themselves are there too


def test_a_hook_on_a_pooled_conv_sees_the_channel_means_and_the_output_is_unchanged():
    torch.manual_seed(0)
    model = SmallNet().eval()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = model(x)
    conv = gap_layers(model)[0][: -len(".gap")]
    seen, raw = [], []
    module = dict(model.named_modules())[conv]
    handles = [hook_targets(model)[gap_name(conv)].register_forward_hook(lambda m, i, o: seen.append(o)),
               module.register_forward_hook(lambda m, i, o: raw.append(o))]
    with torch.no_grad():
        out = model(x)
    for h in handles:
        h.remove()
    assert torch.equal(out, expected)
    assert seen[0].shape == (5, raw[0].shape[1])
    torch.testing.assert_close(seen[0], raw[0].mean(dim=(2, 3)))
    with torch.no_grad():
        model(x)
    assert len(seen) == 1  # removed with its handle


def test_global_average_pool_refuses_outputs_without_positions():
    torch.testing.assert_close(global_average_pool(torch.ones(2, 3, 4)), torch.ones(2, 3))
    with pytest.raises(ConfigurationError, match=r"needs a conv output \(N, C, \*spatial\); got shape \(2, 3\)"):
        global_average_pool(torch.ones(2, 3))
