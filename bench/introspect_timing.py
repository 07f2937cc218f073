"""Time every deepviz.introspect method on one 32x32 RGB image.

The model is a small AlexNet-like CIFAR CNN (conv5x5-96, maxpool3,
conv3x3-96, maxpool3, fc384, fc192, fc10, nn.ReLU modules) with random
weights: the cost of these methods does not depend on what the weights are.

    python bench/introspect_timing.py [--repeats 5] [--threads N] [--device cpu|cuda]

Prints one line per method (median of the repeats, after one warm-up call)
and a final summary line ``method_ms name=x ...``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from deepviz import introspect as I


def alexnet_cifar(num_classes: int = 10) -> nn.Sequential:
    m = nn.Sequential()
    m.add_module("conv1", nn.Conv2d(3, 96, 5, padding=2))
    m.add_module("relu1", nn.ReLU())
    m.add_module("pool1", nn.MaxPool2d(3, stride=2))  # 32 -> 15
    m.add_module("conv2", nn.Conv2d(96, 96, 3, padding=1))
    m.add_module("relu2", nn.ReLU())
    m.add_module("pool2", nn.MaxPool2d(3, stride=2))  # 15 -> 7
    m.add_module("flatten", nn.Flatten())
    m.add_module("fc1", nn.Linear(96 * 7 * 7, 384))
    m.add_module("relu3", nn.ReLU())
    m.add_module("fc2", nn.Linear(384, 192))
    m.add_module("relu4", nn.ReLU())
    m.add_module("fc3", nn.Linear(192, num_classes))
    return m


def median_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up: first-call allocation and kernel selection
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    torch.manual_seed(0)
    model = alexnet_cifar().to(device)
    image = torch.randn(3, 32, 32, device=device)
    acts = np.random.default_rng(0).normal(size=(1000, 384)).astype(np.float32)
    target = 3

    methods: dict[str, Callable[[], object]] = {
        "filters": lambda: I.filters(model),
        "activation_maps": lambda: I.activation_maps(model, image, "conv2"),
        "grid": lambda: I.grid(I.activation_maps(model, image, "conv1")),
        "saliency": lambda: I.saliency(model, image, target),
        "smoothgrad": lambda: I.smoothgrad(model, image, target),  # 25 noisy copies
        "gradient_x_input": lambda: I.gradient_x_input(model, image, target),
        "guided_backprop": lambda: I.guided_backprop(model, image, target),
        "deconvnet": lambda: I.deconvnet(model, image, target),
        "grad_cam": lambda: I.grad_cam(model, image, target, "conv2"),
        "layer_gradient": lambda: I.layer_gradient(model, image, "conv2", unit=5),
        "occlusion": lambda: I.occlusion(model, image, target),  # 4x4, stride 2: 225 windows
        "occlusion_unit": lambda: I.occlusion(model, image, None, layer="conv2", unit=5),
        "maximize_activation": lambda: I.maximize_activation(model, target, image_shape=(3, 32, 32)),  # 200 steps
        "maximize_regularised": lambda: I.maximize_activation(
            model, target, image_shape=(3, 32, 32), l2=0.01, blur_every=4, clip_norm_pct=10, clip_contrib_pct=10,
            tv=0.1, bound=1.0, jitter=2,
        ),
        "top_k_per_unit": lambda: I.top_k_per_unit(acts, 9),  # 1000 probes x 384 units
    }
    print(f"# device={device} threads={torch.get_num_threads()} torch={torch.__version__} repeats={args.repeats}")
    results = {}
    for name, fn in methods.items():
        results[name] = median_ms(fn, args.repeats, sync)
        print(f"{name:22s} {results[name]:9.2f} ms")
    print("method_ms " + " ".join(f"{name}={ms:.2f}" for name, ms in results.items()))


if __name__ == "__main__":
    main()
