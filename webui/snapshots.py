"""Per-step data of a run: probes, thumbnails, predictions, and the metric series.

The panels built on them have their own modules: ``confusion`` (the matrix,
the images of a cell, flows between steps), ``trajectory`` (one image over the
steps and its neighbours) and ``filters``. A step whose snapshot file is
corrupt or missing answers with an error for that step only; the routes that
span all steps (metrics, trajectory) skip it and list it under ``errors``, so
the rest of the timeline keeps working.
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, jsonify

from deepviz import analysis as A

from . import framing
from .params import STEP_ERRORS, binary, class_count, db, finite, get_format, probe_row, run_id, step_of

bp = Blueprint("snapshots", __name__, url_prefix="/api/runs/<run>")


@bp.get("/probes")
def probes(run: str):
    """The probe images in probe order: JSON, or ``format=lean`` (int32 ids, uint8/uint16 labels)."""
    rid = run_id(run)
    fmt = get_format("json", "lean")
    frame = db().probes(rid)
    if fmt == "lean":
        ids, labels = frame["probe_id"].to_numpy(), frame["label"].to_numpy()
        return binary({"probe_id": framing.ids(ids), "label": framing.classes(labels, class_count(rid))}, {"n": int(len(ids)), "format": fmt})
    return jsonify({"probe_id": frame["probe_id"].tolist(), "label": frame["label"].tolist()})


@bp.get("/probes/<int:probe_id>/thumbnail.png")
def thumbnail(run: str, probe_id: int):
    """One image's PNG, read with its row group of the probes file (never every thumbnail)."""
    png = db().thumbnail(probe_id, run_id(run))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "public, max-age=86400, immutable"})


@bp.get("/steps/<step>/predictions")
def predictions(run: str, step: str):
    """A step's predictions in probe order. ``format=binary`` (the default): pred, probs (N, C),
    loss, correct, confidence as int32/float32/uint8; ``format=lean``, what the browser reads
    (3.1 bytes an image): pred as uint8 (uint16 past 256 classes), confidence as uint16 over
    [0, 1], correct as bits (webui/framing.py)."""
    rid = run_id(run)
    s = step_of(rid, step)
    fmt = get_format("binary", "lean")
    if fmt == "lean":  # the three columns only: the probabilities are most of the file
        p = db().prediction_columns(s, ("pred", "correct", "confidence"), rid)
        return binary({"pred": framing.classes(p["pred"], class_count(rid)), "confidence": framing.unit_interval(p["confidence"]),
                       "correct": framing.bits(p["correct"])}, {"step": s, "n": int(len(p["pred"])), "format": fmt})
    p = db().predictions(s, rid)
    meta = {"step": s, "n": int(len(p["pred"])), "format": fmt}
    return binary({"pred": p["pred"], "probs": p["probs"], "loss": p["loss"], "correct": p["correct"], "confidence": p["confidence"]}, meta)


@bp.get("/steps/<step>/predictions/<int:probe_id>")
def prediction_of(run: str, step: str, probe_id: int):
    """One image's prediction at a step, with its class probabilities: what Inspect shows of the selected
    image, without the (N, C) probabilities of every image."""
    rid = run_id(run)
    s = step_of(rid, step)
    pid, row = probe_row(rid, str(probe_id))
    p = db().predictions(s, rid)
    return jsonify({"step": s, "probe_id": pid, "label": int(p["label"][row]), "pred": int(p["pred"][row]),
                    "correct": bool(p["correct"][row]), "confidence": finite(p["confidence"][row:row + 1])[0],
                    "loss": finite(p["loss"][row:row + 1])[0], "probs": finite(p["probs"][row])})


_NOT_SERIES = {"run_id", "step", "epoch", "wall_time", "trigger", "n_probe", "layers", "nonfinite_layers", "has_state", "checkpoint", "error"}


@bp.get("/metrics")
def metrics(run: str):
    """Every logged metric per step, and per-class accuracy on the probe set (classes x steps)."""
    rid = run_id(run)
    table = db().step_table(rid)
    steps = [int(s) for s in table["step"]] if len(table) else []
    series = {}
    for name in table.columns if len(table) else []:
        if name in _NOT_SERIES:
            continue
        values = np.asarray(table[name].to_numpy(dtype=np.float64, na_value=np.nan))
        series[name] = finite(values)
    classes = class_count(rid)
    per_class, errors = [], []
    for s in steps:
        try:  # two columns: at 100,000 images the full read is about 115 ms and 5.5 MB a step
            p = db().prediction_columns(s, ("label", "pred"), rid)
        except STEP_ERRORS as exc:
            errors.append({"step": s, "error": str(exc)})
            per_class.append([None] * classes)
            continue
        per_class.append(finite(A.per_class_accuracy(p["label"], p["pred"], classes)))
    return jsonify(
        {
            "steps": steps,
            "epochs": [int(e) for e in table["epoch"]] if len(table) else [],
            "series": series,
            # classes x steps, like the heatmap draws it
            "per_class_acc": [list(col) for col in zip(*per_class)] if per_class else [[] for _ in range(classes)],
            "errors": errors,
        }
    )
