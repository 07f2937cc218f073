"""The confusion matrix of a step and its change, one cell's count over the steps, the pairs that changed
most, the probe images of a cell, and flows between two steps."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify

from deepviz import analysis as A
from deepviz.errors import CorruptDataError, NotFoundError

from .params import STEP_ERRORS, class_count, db, finite, get_choice, get_int, previous_step, run_id, step_of, step_param

bp = Blueprint("confusion", __name__, url_prefix="/api/runs/<run>")


def _steps(run: str, step: str) -> tuple[str, int, int | None]:
    """(run id, step, the step to compare with: ``prev``, by default the one before; None for the first)."""
    rid = run_id(run)
    s = step_of(rid, step)
    prev = step_param(rid, "prev", default=-1)
    return rid, s, previous_step(rid, s) if prev == -1 else prev


def _matrix(rid: str, step: int) -> np.ndarray:
    p = db().predictions(step, rid)
    return A.confusion(p["label"], p["pred"], class_count(rid))


def _prev_matrix(rid: str, prev: int | None) -> tuple[np.ndarray | None, str | None]:
    """The confusion matrix at ``prev`` and None, or None and why it cannot be read (None, None: no step)."""
    if prev is None:
        return None, None
    try:
        return _matrix(rid, prev), None
    except STEP_ERRORS as exc:
        return None, str(exc)


@bp.get("/steps/<step>/confusion")
def confusion(run: str, step: str):
    """The confusion matrix at a step (rows = true class) and its change from ``prev``."""
    rid, s, prev = _steps(run, step)
    matrix = _matrix(rid, s)
    out = {
        "step": s,
        "prev_step": prev,
        "n": int(matrix.sum()),
        "correct": int(np.trace(matrix)),
        "matrix": matrix.tolist(),
        "prev": None,
        "delta": None,
    }
    before, out["prev_error"] = _prev_matrix(rid, prev)
    if before is not None:
        out["prev"] = before.tolist()
        out["delta"] = A.confusion_delta(before, matrix).tolist()
    return jsonify(out)


@bp.get("/confusion/pair")
def pair_history(run: str):
    """One cell (``true`` -> ``pred``) of the confusion matrix at every step; an unreadable step is null
    and listed under ``errors``."""
    rid = run_id(run)
    classes = class_count(rid)
    true = get_int("true", lo=0, hi=classes - 1, required=True)
    pred = get_int("pred", lo=0, hi=classes - 1, required=True)
    steps, counts, totals, errors = db().steps(rid), [], [], []
    for s in steps:
        try:
            p = db().predictions(s, rid)
        except STEP_ERRORS as exc:
            errors.append({"step": s, "error": str(exc)})
            counts.append(None)
            totals.append(None)
            continue
        row = p["label"] == true
        counts.append(int((row & (p["pred"] == pred)).sum()))
        totals.append(int(row.sum()))
    return jsonify({"true": true, "pred": pred, "steps": steps, "counts": counts, "class_total": totals, "errors": errors})


CHANGE_MEASURE = "change in count (images of the true class predicted as the other) from step prev_step to step"


@bp.get("/steps/<step>/confusion/changes")
def pair_changes(run: str, step: str):
    """The confusion pairs (off-diagonal cells) that rose or fell most since ``prev`` (default: the step before)."""
    rid, s, prev = _steps(run, step)
    limit = get_int("limit", 10, lo=1, hi=100)
    now = _matrix(rid, s)
    before, error = _prev_matrix(rid, prev)
    rows = [] if before is None else A.pair_changes(before, now, limit).to_dict("records")
    return jsonify({"step": s, "prev_step": prev, "measure": CHANGE_MEASURE, "prev_error": error,
                    "rows": [{k: int(v) for k, v in row.items()} for row in rows]})


SORTS = ("confidence", "loss", "probe_id")


@bp.get("/steps/<step>/images")
def images(run: str, step: str):
    """The probe images at a step, filtered by true class, predicted class and correctness.

    ``sort`` (confidence | loss | probe_id) and ``order`` (desc | asc) order
    them; ``limit`` caps the list (``total`` says how many matched).
    """
    rid = run_id(run)
    s = step_of(rid, step)
    classes = class_count(rid)
    true = get_int("true", lo=0, hi=classes - 1)
    pred = get_int("pred", lo=0, hi=classes - 1)
    correct = get_choice("correct", ("0", "1", "any"), "any")
    sort = get_choice("sort", SORTS, "confidence")
    order = get_choice("order", ("desc", "asc"), "desc")
    limit = get_int("limit", 500, lo=1, hi=10_000)
    p = db().predictions(s, rid)
    keep = np.ones(len(p["pred"]), dtype=bool)
    if true is not None:
        keep &= p["label"] == true
    if pred is not None:
        keep &= p["pred"] == pred
    if correct != "any":
        keep &= p["correct"] == (correct == "1")
    rows = np.flatnonzero(keep)
    key = p[sort][rows] if sort != "probe_id" else p["probe_id"][rows]
    rows = rows[np.argsort(-key if order == "desc" else key, kind="stable")][:limit]
    return jsonify(
        {
            "step": s,
            "total": int(keep.sum()),
            "probe_id": p["probe_id"][rows].tolist(),
            "label": p["label"][rows].tolist(),
            "pred": p["pred"][rows].tolist(),
            "confidence": finite(p["confidence"][rows]),
            "loss": finite(p["loss"][rows]),
        }
    )


@bp.get("/flows")
def flows(run: str):
    """Which images changed predicted class between steps ``a`` and ``b`` (default: the last two)."""
    rid = run_id(run)
    steps = db().steps(rid)
    if not steps:
        raise NotFoundError(f"Run {rid!r} has no steps yet.")
    b = step_param(rid, "b", default=steps[-1])
    before_b = previous_step(rid, b)
    a = step_param(rid, "a", default=b if before_b is None else before_b)
    pa, pb = db().predictions(a, rid), db().predictions(b, rid)
    if not np.array_equal(pa["probe_id"], pb["probe_id"]):
        raise CorruptDataError(f"Steps {a} and {b} of run {rid!r} hold different probe images; their predictions cannot be compared.")
    table = A.flows(pa["pred"], pb["pred"], pa["label"], pa["probe_id"])
    counts = {(int(r.from_pred), int(r.to_pred)): int(r.count) for r in table.itertuples()}
    rows = [
        {
            "from_pred": int(r.from_pred),
            "to_pred": int(r.to_pred),
            "count": int(r.count),
            "fixed": int(r.fixed),
            "broken": int(r.broken),
            "back": counts.get((int(r.to_pred), int(r.from_pred)), 0),
            "probe_ids": [int(i) for i in r.probe_ids],
        }
        for r in table.itertuples()
    ]
    return jsonify(
        {
            "a": a,
            "b": b,
            "n": int(len(pa["pred"])),
            "changed": int(sum(r["count"] for r in rows)),
            "fixed": int(sum(r["fixed"] for r in rows)),
            "broken": int(sum(r["broken"] for r in rows)),
            "rows": rows,
        }
    )
