"""Request-parameter parsing shared by every blueprint, so no handler repeats the checks.

Each getter raises ``ApiError`` (400) naming the parameter, what was given and
what is allowed; run/step/layer lookups raise 404s that name the missing thing.
"""

from __future__ import annotations

import math

import numpy as np
from flask import current_app, request

from deepviz import StatsDB
from deepviz.derived import Derived
from deepviz.errors import CorruptDataError, NotFoundError

from .errors import ApiError
from .framing import binary  # noqa: F401  (the one framing; every blueprint imports it from here)

#: Errors of one step's files that must not take the other steps down.
STEP_ERRORS = (CorruptDataError, NotFoundError)


def db() -> StatsDB:
    return current_app.extensions["deepviz_db"]


def derived() -> Derived:
    """The app's derived-table service: its caches are per db."""
    return current_app.extensions["deepviz_derived"]


def _raw(name: str):
    value = request.args.get(name)
    return None if value is None or value == "" else value


def get_int(name: str, default: int | None = None, *, lo: int | None = None, hi: int | None = None, required: bool = False) -> int | None:
    value = _raw(name)
    if value is None:
        if required:
            raise ApiError(f"Missing parameter '{name}': give an integer.", 400)
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(f"Parameter '{name}' must be an integer, got {value[:50]!r}.", 400) from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ApiError(f"Parameter '{name}' must be between {lo} and {hi}, got {number}.", 400)
    return number


def get_float(name: str, default: float | None = None, *, lo: float | None = None, hi: float | None = None) -> float | None:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ApiError(f"Parameter '{name}' must be a number, got {value[:50]!r}.", 400) from None
    if not np.isfinite(number) or (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ApiError(f"Parameter '{name}' must be a finite number between {lo} and {hi}, got {value[:50]!r}.", 400)
    return number


SEED_MAX = 2**31 - 1


def get_seed() -> int:
    """The ``seed`` parameter of the seeded methods (projections, clustering), 0 by default."""
    return get_int("seed", 0, lo=0, hi=SEED_MAX)


def get_choice(name: str, choices, default: str | None = None) -> str:
    value = _raw(name)
    if value is None:
        if default is None:
            raise ApiError(f"Missing parameter '{name}'. Allowed: {', '.join(choices)}.", 400)
        return default
    if value not in choices:
        raise ApiError(f"Parameter '{name}' must be one of {', '.join(choices)}; got {value[:50]!r}.", 400)
    return value


def get_format(*choices: str) -> str:
    """The ``format`` parameter of a route that answers in several (the first choice by default):
    ``lean`` is the compact binary columns the browser reads (webui/framing.py)."""
    return get_choice("format", choices, default=choices[0])


def get_str(name: str, default: str | None = None, *, max_len: int = 200) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    if len(value) > max_len:
        raise ApiError(f"Parameter '{name}' is too long ({len(value)} characters; at most {max_len}).", 400)
    return value


def run_id(run: str) -> str:
    """Resolve the run in the URL (404 naming it when unknown)."""
    return db().resolve_run(run)


def step_of(run: str, step) -> int:
    """Check that ``step`` is a committed step of ``run`` (404 naming it when not)."""
    try:
        number = int(step)
    except (TypeError, ValueError):
        raise ApiError(f"Step must be an integer, got {str(step)[:50]!r}.", 400) from None
    return db().require_step(run, number)


def step_param(rid: str, name: str, default: int | None = None) -> int:
    """A step given in the query string as ``name`` (``default`` when absent)."""
    raw = _raw(name)
    if raw is None:
        if default is None:
            raise ApiError(f"Missing parameter '{name}': give a step of the run.", 400)
        return default
    try:
        int(raw)
    except ValueError:
        raise ApiError(f"Parameter '{name}' must be a step (an integer), got {raw[:50]!r}.", 400) from None
    return step_of(rid, raw)


def previous_step(rid: str, step: int) -> int | None:
    steps = db().steps(rid)
    i = steps.index(step)
    return steps[i - 1] if i > 0 else None


def class_count(rid: str) -> int:
    return len(db().run_info(rid)["class_names"])


def probe_row(rid: str, probe) -> tuple[int, int]:
    """(probe id, row in probe order) of a probe id given in a URL or the query string (404 when unknown)."""
    try:
        pid = int(probe)
    except (TypeError, ValueError):
        raise ApiError(f"Parameter 'probe' must be a probe image id (an integer), got {str(probe)[:50]!r}.", 400) from None
    ids = db().probes(rid)["probe_id"].to_numpy()
    row = int(np.searchsorted(ids, pid))
    if row >= len(ids) or ids[row] != pid:
        raise NotFoundError(f"Unknown probe image {pid} in run {rid!r}; it has {len(ids)} probe images (ids {ids[0]}..{ids[-1]}).")
    return pid, row


def finite(values) -> list:
    """Floats as JSON numbers, NaN/Inf as null."""
    return [None if v is None or not math.isfinite(float(v)) else float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def layer_of(run: str, step: int | None = None, name: str = "layer", required: bool = True) -> str | None:
    """The ``layer`` parameter, checked against the run's captured layers."""
    layers = db().layers(step, run) if step is not None else db().layers(None, run)
    value = _raw(name)
    if value is None:
        if not required:
            return None
        if not layers:
            raise ApiError("This run captured no layers.", 404)
        return layers[-2] if len(layers) > 1 else layers[0]
    if value not in layers:
        raise ApiError(f"Unknown layer {value[:50]!r}. Available: {', '.join(layers)}.", 404)
    return value
