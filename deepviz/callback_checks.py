"""The StatsCallback's argument checks: a bad value fails in ``__init__``, saying what is allowed."""

from __future__ import annotations

from .errors import ConfigurationError
from .store import check_layer_name


def _positive_int(name: str, value, none_means: str | None = None) -> None:
    if value is None and none_means is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = f"a positive integer or None ({none_means})" if none_means else "a positive integer"
        raise ConfigurationError(f"{name} must be {allowed}, got {value!r}.")


def check_arguments(probe, probe_size, layers, every_n_epochs, every_n_train_steps, activation_dtype,
                     save_state, class_names, batch_size) -> None:
    """Misconfiguration fails in ``__init__``, with the bad value and what is allowed."""
    if probe is None:
        raise ConfigurationError(
            "StatsCallback needs a probe set: StatsCallback(db, probe=val_dataset, probe_size=1000), "
            "or probe=(images, labels)."
        )
    if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
        raise ConfigurationError(f"every_n_epochs must be an integer >= 1, got {every_n_epochs!r}.")
    if every_n_train_steps is not None and (
        isinstance(every_n_train_steps, bool) or not isinstance(every_n_train_steps, int) or every_n_train_steps < 1
    ):
        raise ConfigurationError(f"every_n_train_steps must be None or an integer >= 1, got {every_n_train_steps!r}.")
    if activation_dtype not in ("float16", "float32"):
        raise ConfigurationError(f"activation_dtype must be 'float16' or 'float32', got {activation_dtype!r}.")
    if save_state not in (True, False, "auto"):
        raise ConfigurationError(f"save_state must be True, False or 'auto', got {save_state!r}.")
    _positive_int("probe_size", probe_size, none_means="all")
    _positive_int("batch_size", batch_size)
    if class_names is not None and (
        isinstance(class_names, str) or not isinstance(class_names, (list, tuple))
        or not all(isinstance(n, str) for n in class_names)
    ):
        raise ConfigurationError(
            f"class_names must be a list of strings, one per class index, got {class_names!r}; "
            "e.g. class_names=['cat', 'dog'] (a single string is not split into classes)."
        )
    if layers is not None:
        if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
            raise ConfigurationError(f"layers must be a list of module names, got {layers!r}.")
        for name in layers:
            check_layer_name(name)


def check_labels_named(labels, class_names: list[str] | None) -> None:
    """Every probe label must have one of the given class names."""
    top = int(labels.max()) if len(labels) else -1
    if class_names is not None and top >= len(class_names):
        raise ConfigurationError(
            f"The probe has label {top}, but class_names names {len(class_names)} classes "
            f"(labels 0..{len(class_names) - 1}). Give one name per class index, or fix the probe labels."
        )
