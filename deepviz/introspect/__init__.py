"""Look inside a trained CNN: filters, activation maps, attributions,
occlusion and activation maximisation.

One calling shape throughout: ``fn(model, image, target, **params)`` where
``image`` is a float tensor ``(C, H, W)`` or a batch of one ``(1, C, H, W)``,
``target`` is a class index and ``layer`` is a module name as
``model.named_modules()`` reports it.  Results are numpy ``float32`` arrays.

Every function that runs the model puts it in eval mode for the computation
and afterwards restores each module's previous mode and each parameter's
``requires_grad``; parameters' ``.grad`` are never written (gradients are taken
with respect to the image only).

Modules: ``common`` (finding layers, one image, the model's state kept),
``maps`` (activation maps, grids and Captum's gradient attributions:
``Saliency``, ``NoiseTunnel``, ``InputXGradient``, ``GuidedBackprop``,
``Deconvolution``, ``LayerGradCam``, ``NeuronGradient``), ``occlusion``,
``registry`` (:func:`attribute` by method name), ``maximize`` (activation
maximisation, written here because Captum has no released equivalent) and
``filters``.

Importing this package loads torch, captum and numpy only: no Lightning, no
storage.  The probe images that excite a unit most are read from the stored
activations, not from a model: :meth:`deepviz.derived.Derived.top_units` and
``unit_history``, over :func:`deepviz.analysis.top_k_per_unit`.
"""

from .filters import filter_images, filters
from .maps import (
    activation_maps,
    deconvnet,
    grad_cam,
    gradient_x_input,
    grid,
    guided_backprop,
    layer_gradient,
    saliency,
    smoothgrad,
)
from .maximize import MaxActResult, maximize_activation
from .occlusion import occlusion
from .registry import ATTRIBUTIONS, attribute

__all__ = [
    "ATTRIBUTIONS",
    "MaxActResult",
    "activation_maps",
    "attribute",
    "deconvnet",
    "filter_images",
    "filters",
    "grad_cam",
    "gradient_x_input",
    "grid",
    "guided_backprop",
    "layer_gradient",
    "maximize_activation",
    "occlusion",
    "saliency",
    "smoothgrad",
    "top_k_per_unit",
]


def __getattr__(name):
    # Moved to deepviz.analysis (pure numpy over stored activations); loaded on
    # first use so that importing this package pulls in no pandas or pyarrow.
    if name == "top_k_per_unit":
        from deepviz.analysis.units import top_k_per_unit

        return top_k_per_unit
    raise AttributeError(f"module 'deepviz.introspect' has no attribute {name!r}")
