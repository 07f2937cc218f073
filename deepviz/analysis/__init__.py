"""Pure analysis functions behind the web UI and the derived tables.

Arrays in, arrays or small tables out; no I/O; randomness only through an
explicit ``random_state``.  Bad arguments raise
:class:`deepviz.errors.ConfigurationError` (a ``ValueError``).

Modules: ``projection`` (PCA / t-SNE / UMAP layouts, aligned over steps),
``clusters``, ``neighbours`` (similarity search), ``confusion``,
``trajectory``, ``quality`` (per-layer representation quality), ``cka``,
``cartography`` (the data map: dataset cartography, forgetting), ``colour``
(colour vs class), ``measures`` (the metrics of the ``layer_quality`` table),
``units`` (the probe images that excite each unit), ``weights`` (filter change, dead filters),
``reduce`` (PCA before neighbour searches and k-means), ``knn_graph`` (t-SNE's neighbour lists, seeded
from the previous step's), ``fidelity`` (a layout's k-NN accuracy and 10-NN preservation).

The tables derived from a stats db (read, computed, cached) are
:mod:`deepviz.derived`'s job, not this package's.
"""

from .cartography import data_map, data_map_region
from .cka import cka_matrix, cka_matrix_or_nan, linear_cka
from .clusters import hdbscan, kmeans, purity, subclusters
from .colour import colour_features, colour_stats, neighbourhood_agreement
from .confusion import confusion, confusion_delta, confusion_series, flows, pair_changes, per_class_accuracy
from .measures import QUALITY_METRICS, layer_measures, mean_image_measures, subsample_rows
from .neighbours import METRICS, distances, nearest, similarity_percent
from .projection import METHODS, align_to, aligned_layouts, procrustes_disparity, project
from .quality import (
    class_purity,
    knn_accuracy,
    layer_quality,
    linear_probe_accuracy,
    mean_image_accuracy,
    silhouette,
)
from .trajectory import first_stable_correct, flip_steps, predictions, trajectory
from .units import top_k_per_unit
from .weights import DEAD_FRACTION, dead_filters, filter_change, filter_norms

__all__ = [
    "METHODS", "METRICS",
    "project", "aligned_layouts", "align_to", "procrustes_disparity",
    "kmeans", "hdbscan", "purity", "subclusters",
    "distances", "nearest", "similarity_percent",
    "confusion", "confusion_delta", "confusion_series", "flows", "pair_changes", "per_class_accuracy",
    "predictions", "flip_steps", "first_stable_correct", "trajectory",
    "knn_accuracy", "linear_probe_accuracy", "silhouette", "class_purity",
    "mean_image_accuracy", "layer_quality",
    "QUALITY_METRICS", "layer_measures", "mean_image_measures", "subsample_rows",
    "linear_cka", "cka_matrix", "cka_matrix_or_nan",
    "data_map", "data_map_region",
    "top_k_per_unit",
    "DEAD_FRACTION", "dead_filters", "filter_change", "filter_norms",
    "colour_features", "colour_stats", "neighbourhood_agreement",
]
