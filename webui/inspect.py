"""The Inspect view's API: attributions, occlusion, activation maps, filters,
activation maximisation and top units of a run at one step.

Everything is computed on demand on the server's CPU with ``deepviz.introspect``
and cached on the app (``webui.state``): results by (run, step, image, method,
normalised parameters), rebuilt models by (run, step) (``webui.models``).
Every response says whether it came from the cache (``cached``), how long the
computation took (``seconds``), so the UI can show it and tests can check it
without timing, and, when a model computed it, which weights it used
(``weights``: ``{"source", "step", "path", "note"}``).

Heatmaps and image grids go out as PNG data URLs (``webui.render``), next to
the numbers the UI prints (min, max, score, probability); top-unit tables go
out as binary arrays.

Long computations are bounded by validated parameters (``MAX_STEPS``,
``MAX_SAMPLES``) so no request ties the server up for minutes; the Python
API has no such limits.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from flask import Blueprint, jsonify

from deepviz import introspect
from deepviz.derived.units import correct_at
from deepviz.introspect.maximize import OOD_SATURATION, SATURATION_MARGIN

from .errors import ApiError
from .models import Loaded, model_at
from .params import STEP_ERRORS, binary, db, derived, get_choice, get_float, get_int, get_str, class_count, layer_of, run_id, step_of
from .render import colorize, png_data_url, to_display
from .state import state

bp = Blueprint("inspect", __name__, url_prefix="/api/runs/<run>")


@bp.record_once
def _torch_threads(setup) -> None:
    # One image at a time is far too small for intra-op parallelism: on a busy
    # 2-core machine OpenMP's spinning threads made an 8x8 conv 250x slower
    # (38 ms vs 0.15 ms).  Requests already run in parallel threads.  Set
    # INSPECT_TORCH_THREADS=0 to leave torch's setting alone.
    threads = setup.app.config["INSPECT_TORCH_THREADS"]
    if threads:
        import torch

        torch.set_num_threads(int(threads))


METHODS = tuple(introspect.ATTRIBUTIONS)
MAX_STEPS = 500  # activation maximisation: ~1-3 s on the small CIFAR nets
MAX_SAMPLES = 100  # smoothgrad noisy copies
MAX_K = 50


def _cached(key: tuple, compute: Callable[[], dict], loaded: Loaded | None = None) -> dict:
    """``compute()`` once per key (under the model's lock when it runs a model); the answer says
    whether it came from the cache, and which weights it used."""

    def timed() -> dict:
        start = time.perf_counter()
        if loaded is None:
            out = compute()
        else:
            with loaded.lock:
                out = compute()
        out["seconds"] = round(time.perf_counter() - start, 4)
        return out

    value, hit = state().results.get_or_compute(key, timed)
    return value | {"cached": hit} | ({"weights": loaded.weights} if loaded is not None else {})


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------


def _probe(rid: str, required: bool = True) -> tuple[int, int] | None:
    """The ``probe`` parameter: (probe_id, row in probe order), 404 when unknown."""
    pid = get_int("probe", required=required)
    if pid is None:
        return None
    ids = np.asarray(db().probes(rid)["probe_id"])
    row = int(np.searchsorted(ids, pid))
    if row >= len(ids) or ids[row] != pid:
        raise ApiError(f"Unknown probe image {pid}; the run has {len(ids)} probe images (ids {ids.min()}..{ids.max()}).", 404)
    return pid, row


def _target(rid: str, step: int, row: int) -> int:
    """``target`` (a class index), defaulting to the model's prediction for the image at this step."""
    target = get_int("target", lo=0, hi=class_count(rid) - 1)
    if target is None:
        target = int(db().predictions(step, rid)["pred"][row])
    return target


def _model_layer(loaded: Loaded, name: str = "layer", *, spatial: bool, default: str | None = None) -> str:
    """A module of the model at this step (404 listing the allowed ones)."""
    allowed = [n for n, s in loaded.shapes.items() if len(s) == 4] if spatial else list(loaded.shapes)
    value = get_str(name) or default
    if value is None:
        raise ApiError(f"Missing parameter '{name}'. Available: {', '.join(allowed)}.", 400)
    if value not in allowed:
        kind = "layers with a spatial output" if spatial else "layers"
        raise ApiError(f"Unknown layer {value[:50]!r} for '{name}'. Available {kind}: {', '.join(allowed) or '(none)'}.", 404)
    return value


def _unit(loaded: Loaded, layer: str, name: str = "unit", required: bool = False) -> int | None:
    unit = get_int(name, required=required)
    if unit is None:
        return None
    n = loaded.shapes[layer][1]
    if not 0 <= unit < n:
        word = "channels" if len(loaded.shapes[layer]) == 4 else "units"
        raise ApiError(f"Unknown {name} {unit} of layer {layer!r}: it has {n} {word} (0..{n - 1}).", 404)
    return unit


def _bounded_int(name: str, default: int, limit: int, why: str) -> int:
    value = get_int(name, default, lo=1)
    if value > limit:
        raise ApiError(
            f"Parameter '{name}' is {value}; the web UI allows at most {limit} {why} so a request cannot tie up "
            f"the server. Use deepviz.introspect from Python for longer runs.",
            400,
        )
    return value


def _image(rid: str, row: int):
    import torch

    return torch.as_tensor(db().stored_inputs(rid).rows(row))


def _probe_range(rid: str) -> tuple[np.ndarray, np.ndarray]:
    stats = db().stored_inputs(rid).channel_stats()
    return stats["min"], stats["max"]


# ---------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------


@bp.get("/steps/<step>/inspect/layers")
def layers(run: str, step: str):
    """The model's modules at this step with their output shapes (for the layer pickers)."""
    rid = run_id(run)
    s = step_of(rid, step)
    loaded = model_at(rid, s)
    out = [{"name": n, "type": loaded.types[n], "shape": list(shape[1:]), "spatial": len(shape) == 4} for n, shape in loaded.shapes.items()]
    return jsonify({"step": s, "layers": out, "conv_layers": loaded.convs, "weights": loaded.weights,
                    "n_classes": class_count(rid), "input_shape": list(db().stored_inputs(rid).shape[1:])})


def _attribution_params(method: str, loaded: Loaded, image_hw: tuple[int, int]) -> tuple[dict, bool]:
    """The method's keyword arguments from the query string, and whether it explains a class (takes a target)."""
    h, w = image_hw
    params: dict[str, Any] = {}
    takes_target = True
    if method == "smoothgrad":
        params["n_samples"] = _bounded_int("samples", 25, MAX_SAMPLES, "noisy samples")
        params["stdev"] = get_float("stdev", 0.15, lo=0.0, hi=1.0)
    elif method == "grad_cam":
        convs = loaded.convs
        params["layer"] = _model_layer(loaded, spatial=True, default=convs[-1] if convs else None)
    elif method == "layer_gradient":
        params["layer"] = _model_layer(loaded, spatial=False)
        params["unit"] = _unit(loaded, params["layer"])
        takes_target = False
    elif method == "occlusion":
        size_default = max(1, min(h, w) // 4)
        params["size"] = get_int("size", size_default, lo=1, hi=min(h, w))
        params["stride"] = get_int("stride", max(1, params["size"] // 2), lo=1, hi=params["size"])
        params["baseline"] = get_float("baseline", 0.0, lo=-1e6, hi=1e6)
        if get_str("layer") is not None or get_str("unit") is not None:
            params["layer"] = _model_layer(loaded, spatial=False)
            params["unit"] = _unit(loaded, params["layer"], required=True)
            takes_target = False
    return params, takes_target


@bp.get("/steps/<step>/inspect/attribution")
def attribution(run: str, step: str):
    """One attribution map for one probe image: ``method`` is a key of
    ``introspect.ATTRIBUTIONS``; ``target`` defaults to the prediction."""
    rid = run_id(run)
    s = step_of(rid, step)
    method = get_choice("method", METHODS)
    pid, row = _probe(rid)
    target = _target(rid, s, row)
    loaded = model_at(rid, s)
    image_hw = tuple(db().stored_inputs(rid).shape[-2:])
    params, takes_target = _attribution_params(method, loaded, image_hw)
    if not takes_target:
        target = None
    key = ("attribution", rid, s, pid, method, target, tuple(sorted(params.items())))

    notes = []
    if method in ("guided_backprop", "deconvnet") and "ReLU" not in loaded.types.values():
        notes.append(f"The model has no nn.ReLU modules, so {method} shows the plain gradient.")

    def compute() -> dict:
        values = introspect.attribute(method, loaded.model, _image(rid, row), target, **params)
        rgb, rgba, scale = colorize(values)
        return {"png": png_data_url(rgb), "overlay": png_data_url(rgba), "shape": list(values.shape), **scale}

    result = _cached(key, compute, loaded)
    return jsonify({"ok": True, "method": method, "probe": pid, "step": s, "target": target, "params": params, "notes": notes} | result)


@bp.get("/steps/<step>/inspect/activation_maps")
def activation_maps(run: str, step: str):
    """Every channel of a spatial layer for one image, as one grid PNG."""
    rid = run_id(run)
    s = step_of(rid, step)
    pid, row = _probe(rid)
    loaded = model_at(rid, s)
    convs = loaded.convs
    layer = _model_layer(loaded, spatial=True, default=convs[0] if convs else None)
    norm = get_choice("norm", ("layer", "channel"), "layer")
    key = ("activation_maps", rid, s, pid, layer, norm)

    def compute() -> dict:
        maps = introspect.activation_maps(loaded.model, _image(rid, row), layer)
        peak = maps.reshape(len(maps), -1).max(1)
        shown = maps
        if norm == "channel":
            # Each channel stretched to its own range: shows structure in weak channels.
            low = maps.reshape(len(maps), -1).min(1)
            shown = (maps - low[:, None, None]) / np.maximum(peak - low, 1e-12)[:, None, None]
        ncols = int(np.ceil(np.sqrt(len(maps))))
        tiled = introspect.grid(shown, ncols=ncols, pad=1, pad_value=np.nan)
        rgb, _, scale = colorize(tiled)
        return {"png": png_data_url(rgb), "n": int(len(maps)), "map_shape": list(maps.shape[1:]), "ncols": ncols, "pad": 1,
                "channel_max": [round(float(v), 4) for v in peak], **scale}

    result = _cached(key, compute, loaded)
    return jsonify({"ok": True, "layer": layer, "probe": pid, "step": s, "norm": norm} | result)


@bp.get("/steps/<step>/inspect/filters")
def filters(run: str, step: str):
    """The weights of a conv layer as small images (first layer RGB, deeper ones channel means)."""
    rid = run_id(run)
    s = step_of(rid, step)
    loaded = model_at(rid, s)
    convs = loaded.convs
    layer = get_str("layer") or (convs[0] if convs else None)
    if layer not in convs:
        raise ApiError(f"Unknown conv layer {str(layer)[:50]!r} for 'layer'. Available: {', '.join(convs) or '(none)'}.", 404)
    key = ("filters", rid, s, layer)

    def compute() -> dict:
        tiles = introspect.filters(loaded.model, layer)
        ncols = int(np.ceil(np.sqrt(len(tiles))))
        tiled = introspect.grid(tiles, ncols=ncols, pad=1, pad_value=1.0)
        return {"png": png_data_url((tiled * 255).round().astype(np.uint8)), "n": int(len(tiles)),
                "filter_shape": list(tiles.shape[1:3]), "rgb": bool(tiles.shape[-1] == 3), "ncols": ncols, "pad": 1}

    result = _cached(key, compute, loaded)
    return jsonify({"ok": True, "layer": layer, "step": s} | result)


@bp.get("/steps/<step>/inspect/maximize")
def maximize(run: str, step: str):
    """Activation maximisation of a class (``target``) or a unit (``layer`` + ``unit``)."""
    import torch

    rid = run_id(run)
    s = step_of(rid, step)
    start = get_choice("start", ("zeros", "noise", "probe"), "zeros")
    probe = _probe(rid, required=start == "probe")
    loaded = model_at(rid, s)
    layer = get_str("layer")
    if layer is None:
        target = get_int("target", lo=0, hi=class_count(rid) - 1, required=True)
        unit = None
    else:
        if get_str("target") is not None:
            raise ApiError("Give 'target' (a class) or 'layer' and 'unit' (a unit), not both.", 400)
        target = None
        layer = _model_layer(loaded, spatial=False)
        unit = _unit(loaded, layer, required=True)
    lo, hi = _probe_range(rid)
    opts = {
        "steps": _bounded_int("steps", 200, MAX_STEPS, "optimisation steps"),
        "lr": get_float("lr", 0.05, lo=1e-6, hi=10.0),
        "l2": get_float("l2", 0.0, lo=0.0, hi=0.99),
        "blur_every": get_int("blur_every", 0, lo=0, hi=MAX_STEPS),
        "blur_sigma": get_float("blur_sigma", 0.5, lo=0.05, hi=10.0),
        "clip_norm_pct": get_float("clip_norm_pct", 0.0, lo=0.0, hi=99.0),
        "clip_contrib_pct": get_float("clip_contrib_pct", 0.0, lo=0.0, hi=99.0),
        "tv": get_float("tv", 0.0, lo=0.0, hi=1e6),
        "bound": get_float("bound", 0.0, lo=0.0, hi=1e6),
        "jitter": get_int("jitter", 0, lo=0, hi=16),
        "random_state": get_int("seed", 0, lo=0, hi=2**31 - 1),
    }
    value_range = (float(lo.min()), float(hi.max()))
    key = ("maximize", rid, s, start, probe[0] if probe else None, target, layer, unit, tuple(sorted(opts.items())))

    def compute() -> dict:
        start_arg = _image(rid, probe[1]) if start == "probe" else start
        res = introspect.maximize_activation(
            loaded.model, target, layer=layer, channel=unit, start=start_arg, value_range=value_range,
            image_shape=tuple(db().stored_inputs(rid).shape[1:]), **opts,
        )
        with torch.no_grad():
            probs = loaded.model(torch.as_tensor(res.image)[None]).softmax(1)[0]
        top = int(probs.argmax())
        history = np.asarray(res.history, dtype=np.float64)
        if len(history) > 100:  # enough points for a sparkline
            history = history[np.linspace(0, len(history) - 1, 100).round().astype(int)]
        return {"png": png_data_url(to_display(res.image, lo, hi)), "score": res.score, "probability": res.probability,
                "start_score": float(res.history[0]), "history": [round(float(v), 5) for v in history],
                "top_class": top, "top_probability": float(probs[top]), "saturation": res.saturation,
                "out_of_distribution": res.out_of_distribution, "saturation_limit": OOD_SATURATION,
                "saturation_margin": SATURATION_MARGIN}

    result = _cached(key, compute, loaded)
    return jsonify({"ok": True, "step": s, "target": target, "layer": layer, "unit": unit, "start": start,
                    "probe": probe[0] if probe else None, "params": opts, "value_range": list(value_range)} | result)


@bp.get("/steps/<step>/inspect/top_units")
def top_units(run: str, step: str):
    """The top-``k`` probe images of every unit of a captured layer (no model needed)."""
    rid = run_id(run)
    s = step_of(rid, step)
    layer = layer_of(rid, s)
    k = get_int("k", 9, lo=1, hi=MAX_K)
    key = ("top_units", rid, s, layer, k)

    def compute() -> dict:
        frame = derived().top_units(s, layer, k, rid)
        d = int(frame["unit"].max()) + 1
        kk = len(frame) // d
        return {"probe_id": frame["probe_id"].to_numpy().reshape(d, kk), "activation": frame["activation"].to_numpy().reshape(d, kk)}

    result = _cached(key, compute)
    arrays = {"probe_id": result.pop("probe_id"), "activation": result.pop("activation")}
    n_units, kk = arrays["probe_id"].shape
    return binary(arrays, {"step": s, "layer": layer, "n_units": n_units, "k": kk} | result)


def _unit_tops(rid: str, steps: list[int], layer: str, k: int) -> tuple[dict[int, Any], list[dict]]:
    """Every unit's top-k frame per readable step; an unreadable step is listed, not fatal."""
    frames, errors = {}, []
    for s in steps:
        try:
            frames[s] = derived().top_units(s, layer, k, rid)
        except STEP_ERRORS as exc:
            errors.append({"step": s, "error": str(exc)})
    return frames, errors


@bp.get("/inspect/unit_history")
def unit_history(run: str):
    """The top-``k`` probe images of one unit at every step; unreadable steps are listed under ``errors``."""
    rid = run_id(run)
    layer = layer_of(rid)
    steps = db().steps(rid)
    if not steps:
        raise ApiError(f"Run {rid!r} has no steps yet.", 404)
    unit = get_int("unit", required=True)
    k = get_int("k", 9, lo=1, hi=MAX_K)

    def compute() -> dict:
        frames, errors = _unit_tops(rid, steps, layer, k)
        if not frames:
            raise ApiError(f"No step of run {rid!r} has readable activations of layer {layer!r}: {errors[0]['error']}", 500)
        n_units = int(next(iter(frames.values()))["unit"].max()) + 1
        if not 0 <= unit < n_units:
            raise ApiError(f"Unknown unit {unit} of layer {layer!r}: it has {n_units} units (0..{n_units - 1}).", 404)
        rows = [f[f["unit"] == unit] for f in frames.values()]
        probe_ids = np.stack([r["probe_id"].to_numpy() for r in rows])
        return {"steps": np.asarray(list(frames), dtype=np.int64), "probe_id": probe_ids,
                "activation": np.stack([r["activation"].to_numpy() for r in rows]),
                "correct": correct_at(db(), rid, list(frames), probe_ids), "n_units": n_units, "errors": errors}

    result = _cached(("unit_history", rid, tuple(steps), layer, unit, k), compute)
    arrays = {name: result.pop(name) for name in ("steps", "probe_id", "activation", "correct")}
    return binary(arrays, {"layer": layer, "unit": unit, "k": arrays["probe_id"].shape[1]} | result)
