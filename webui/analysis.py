"""The Analysis tab: layer quality over training, CKA, the data map (similarity search is ``webui.search``).

The numbers come from ``deepviz.analysis`` (pure functions) and
``deepviz.derived`` (the cached derived tables); this module reads
through the store, checks parameters, queues the one background job per run
that fills the ``layer_quality`` table (on the app's job runner), and shapes
the answers.

Routes, under ``/api/runs/<run>/analysis``:

- ``GET quality``: every cached ``layer_quality`` value, per metric and layer,
  aligned with the run's steps, plus the baselines and the job's progress.
- ``POST compute``: queue the background job computing what is missing.
- ``GET progress``: that job's progress.
- ``GET cka?mode=steps&layer=`` or ``cka?mode=layers&step=``: linear CKA matrices.
- ``GET datamap``: the data map, as binary arrays.
- ``GET colour_stats``: each probe image's mean colour, brightness and saturation, as binary arrays
  (the scatter's "colour by" for the colour-versus-meaning question).
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify

from deepviz.analysis import colour_stats
from deepviz.analysis.cartography import AMBIGUOUS_VARIABILITY, EASY_CONFIDENCE, data_map_region
from deepviz.derived import AGREEMENT_K, CKA_ROWS, QUALITY_METRICS

from .errors import ApiError
from .params import binary, db, derived, get_choice, get_int, layer_of, run_id, step_of
from .state import Job, state

bp = Blueprint("analysis", __name__, url_prefix="/api/runs/<run>/analysis")


def _start(rid: str) -> Job:
    """Queue the run's compute job unless one is queued or running; returns it."""
    service = derived()
    return state().jobs.submit(("quality", rid), lambda job: service.compute_all(rid, progress=job.report))


def _progress(rid: str, missing: int) -> dict:
    job = state().jobs.get(("quality", rid))
    if job is None:
        return {"running": False, "done": 0, "total": missing, "message": "not started", "error": None, "missing": missing}
    return job.as_dict() | {"missing": missing}


@bp.post("/compute")
def compute(run: str):
    rid = run_id(run)
    missing = len(derived().missing_quality(rid))
    if missing:
        _start(rid)
    return jsonify(_progress(rid, missing))


@bp.get("/progress")
def progress(run: str):
    rid = run_id(run)
    return jsonify(_progress(rid, len(derived().missing_quality(rid))))


# --------------------------------------------------------------------------- quality


def _num(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


@bp.get("/quality")
def quality(run: str):
    """Every cached layer_quality value: values[metric][layer] is aligned with steps (null = not yet)."""
    rid = run_id(run)
    steps = db().steps(rid)
    if not steps:
        raise ApiError(f"Run {rid!r} has no committed steps yet.", 404)
    layers = db().layers(None, rid)
    table = derived().quality_table(rid)
    pos = {s: i for i, s in enumerate(steps)}
    values = {m: {layer: [None] * len(steps) for layer in layers} for m in QUALITY_METRICS}
    base = {m: {} for m in QUALITY_METRICS}
    for row in table.itertuples(index=False):
        if row.layer == "pixels" and row.metric in base:
            base[row.metric]["pixels"] = _num(row.value)
        elif row.layer == "mean_image":
            for m in ("knn_accuracy", "linear_probe_accuracy"):  # a classifier's accuracy: comparable to these two
                base[m]["mean_image"] = _num(row.value)
        elif row.metric in values and row.layer in values[row.metric] and row.step in pos:
            values[row.metric][row.layer][pos[row.step]] = _num(row.value)
    labels = db().probes(rid)["label"].to_numpy()
    shares = np.bincount(labels) / max(1, labels.size)
    n = labels.size
    chance = {
        "class_agreement": float((shares**2).sum()),
        "colour_agreement": min(AGREEMENT_K, n - 1) / max(1, n - 1),
        "knn_accuracy": float(shares.max()) if n else None,
        "linear_probe_accuracy": float(shares.max()) if n else None,
    }
    missing = len(derived().missing_quality(rid))
    return jsonify({"steps": steps, "layers": layers, "metrics": list(QUALITY_METRICS), "values": values,
                    "baselines": base, "chance": chance, "progress": _progress(rid, missing)})


# --------------------------------------------------------------------------- CKA


@bp.get("/cka")
def cka(run: str):
    """Linear CKA: steps x steps of one layer (mode=steps) or layers x layers at one step (mode=layers)."""
    rid = run_id(run)
    mode = get_choice("mode", ("steps", "layers"), "steps")
    if mode == "steps":
        layer = layer_of(rid)
        labels, matrix = derived().cka_steps(layer, rid)
        extra = {"layer": layer}
    else:
        s = get_int("step", None, required=True)
        s = step_of(rid, s)
        labels, matrix = derived().cka_layers(s, rid)
        extra = {"step": s}
    return jsonify({"mode": mode, "labels": labels, "matrix": [[_num(v) for v in row] for row in matrix],
                    "rows": min(len(db().probes(rid)), CKA_ROWS)} | extra)


# --------------------------------------------------------------------------- data map


@bp.get("/datamap")
def datamap_route(run: str):
    """The data map as binary arrays (probe order) with the region thresholds and counts."""
    rid = run_id(run)
    frame = derived().data_map(rid)
    labels = db().probes(rid).set_index("probe_id")["label"]
    conf = frame["confidence"].to_numpy()
    var = frame["variability"].to_numpy()
    regions = data_map_region(conf, var) if len(frame) else np.array([], dtype=object)
    counts = {r: int((regions == r).sum()) for r in ("easy", "ambiguous", "hard")}
    return binary(
        {
            "probe_id": frame["probe_id"].to_numpy().astype(np.int32),
            "label": labels.reindex(frame["probe_id"]).to_numpy().astype(np.int32),
            "confidence": conf.astype(np.float32),
            "variability": var.astype(np.float32),
            "correctness": frame["correctness"].to_numpy().astype(np.float32),
            "forgetting_events": frame["forgetting_events"].to_numpy().astype(np.int32),
        },
        {"ambiguous_variability": AMBIGUOUS_VARIABILITY, "easy_confidence": EASY_CONFIDENCE, "counts": counts,
         "n_steps": len(db().steps(rid))},
    )


# --------------------------------------------------------------------------- colour statistics


@bp.get("/colour_stats")
def colour_stats_route(run: str):
    """Per probe image (probe order): ``mean_rgb`` (N, 3), ``brightness`` and ``saturation`` (N,), in [0, 1].

    From the stored probe inputs, scaled as :func:`deepviz.analysis.colour_stats` says (relative to the
    whole probe set when the inputs are normalised), so the values rank images within the run.
    """
    rid = run_id(run)

    def compute() -> dict:
        stats = colour_stats(db().probe_inputs(rid), channels_last=False)
        return {"probe_id": db().probes(rid)["probe_id"].to_numpy().astype(np.int32), **stats}

    arrays, _ = state().results.get_or_compute(("colour_stats", rid), compute)
    return binary(dict(arrays), {"n": int(len(arrays["probe_id"])), "luma": "Rec. 601: 0.299 R + 0.587 G + 0.114 B",
                                 "saturation": "mean HSV saturation (max - min) / max"})
