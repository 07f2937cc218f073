"""The StatsCallback's argument checks: a bad value fails in ``__init__``, saying what is allowed."""

from __future__ import annotations

from .background import MAX_QUEUE
from .errors import ConfigurationError
from .store import check_layer_name


def _positive_int(name: str, value, none_means: str | None = None) -> None:
    if value is None and none_means is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = f"a positive integer or None ({none_means})" if none_means else "a positive integer"
        raise ConfigurationError(f"{name} must be {allowed}, got {value!r}.")


#: What ``StatsCallback(probe=...)`` takes by name: a dataset of the trainer's own data.
PROBE_SPLITS = ("val", "train")
SCHEDULES = (None, "log")


def check_recording(owner: str, probe, probe_size, layers, activation_dtype, save_state, class_names, batch_size,
                    write_queue, probe_splits: tuple[str, ...] = ()) -> None:
    """Misconfiguration of what is recorded fails at once, with the bad value and what is allowed."""
    if probe is None:
        named = f", probe={' or '.join(repr(s) for s in probe_splits)} (the trainer's own dataset)," if probe_splits else ""
        raise ConfigurationError(
            f"{owner} needs a probe set: probe=val_dataset (probe_size=1000 picks 1000 of it){named} "
            "or probe=(images, labels)."
        )
    if isinstance(probe, str) and probe not in probe_splits:
        allowed = f"{' or '.join(repr(s) for s in probe_splits)}, " if probe_splits else ""
        raise ConfigurationError(
            f"{owner}'s probe must be {allowed}a Dataset of (image, label) pairs or a pair (images, labels); "
            f"got the string {probe!r}."
            + ("" if probe_splits else " probe='val' or 'train' is StatsCallback's: it takes them from the trainer.")
        )
    if activation_dtype not in ("float16", "float32"):
        raise ConfigurationError(f"activation_dtype must be 'float16' or 'float32', got {activation_dtype!r}.")
    if save_state not in (True, False, "auto"):
        raise ConfigurationError(f"save_state must be True, False or 'auto', got {save_state!r}.")
    _positive_int("probe_size", probe_size, none_means="all")
    _positive_int("batch_size", batch_size)
    if isinstance(write_queue, bool) or not isinstance(write_queue, int) or not 1 <= write_queue <= MAX_QUEUE:
        raise ConfigurationError(
            f"write_queue must be an integer from 1 to {MAX_QUEUE} (snapshots waiting for the background writer, "
            f"each held in memory), got {write_queue!r}."
        )
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


def check_schedule(every_n_epochs, every_n_train_steps, schedule) -> None:
    """When the callback snapshots: each setting valid, and no two that contradict each other."""
    if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
        raise ConfigurationError(f"every_n_epochs must be an integer >= 1, got {every_n_epochs!r}.")
    if every_n_train_steps is not None and (
        isinstance(every_n_train_steps, bool) or not isinstance(every_n_train_steps, int) or every_n_train_steps < 1
    ):
        raise ConfigurationError(f"every_n_train_steps must be None or an integer >= 1, got {every_n_train_steps!r}.")
    if every_n_train_steps is not None and every_n_epochs != 1:
        raise ConfigurationError(
            f"every_n_epochs={every_n_epochs} and every_n_train_steps={every_n_train_steps} were both given; "
            "snapshots follow one of them. Give every_n_train_steps for a step schedule, or every_n_epochs alone."
        )
    if schedule not in SCHEDULES:
        raise ConfigurationError(
            f"schedule must be None or 'log' (steps 0, 1, 2, 4, 8, ... before the first regular snapshot), "
            f"got {schedule!r}."
        )
    if schedule == "log" and every_n_train_steps == 1:
        raise ConfigurationError(
            "schedule='log' adds steps 1, 2, 4, 8, ... but every_n_train_steps=1 snapshots every step already. "
            "Drop schedule='log', or give every_n_train_steps > 1."
        )


def check_labels_named(labels, class_names: list[str] | None) -> None:
    """Every probe label must have one of the given class names."""
    top = int(labels.max()) if len(labels) else -1
    if class_names is not None and top >= len(class_names):
        raise ConfigurationError(
            f"The probe has label {top}, but class_names names {len(class_names)} classes "
            f"(labels 0..{len(class_names) - 1}). Give one name per class index, or fix the probe labels."
        )
