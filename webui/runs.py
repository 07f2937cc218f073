"""Runs and their steps."""

from __future__ import annotations

import math

from flask import Blueprint, jsonify

from .params import db, run_id

bp = Blueprint("runs", __name__, url_prefix="/api")


def _missing(value) -> bool:
    """NaN, and pandas' NaT (a missing ``ended_at``: a run still training), are not equal to themselves."""
    try:
        return bool(value != value)
    except (TypeError, ValueError):  # an array: not one missing value
        return False


def _clean(value):
    if _missing(value) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def _entry(row: dict) -> dict:
    entry = {k: _clean(v) for k, v in row.items()}
    # an unreadable run carries an error message (NaN in the frame for the others)
    readable = not isinstance(row.get("error"), str)
    entry["steps"] = db().steps(row["run_id"]) if readable else []
    entry["hparams"] = db().run_info(row["run_id"])["hparams"] if readable else {}
    entry["running"] = entry.get("ended_at") is None
    return entry


def run_entry(rid: str) -> dict:
    """One run as the runs list shows it: summary, steps, hparams."""
    return _entry(next(r for r in db().runs().to_dict("records") if r["run_id"] == rid))


@bp.get("/runs")
def list_runs():
    return jsonify([_entry(row) for row in db().runs().to_dict("records")])


@bp.get("/runs/<run>")
def run_detail(run: str):
    rid = run_id(run)
    info = db().run_info(rid)
    table = db().step_table(rid)
    steps = [{k: _clean(v) for k, v in row.items() if k not in ("run_id", "layers", "nonfinite_layers")} | {"nonfinite_layers": list(row.get("nonfinite_layers") or [])} for row in table.to_dict("records")] if len(table) else []
    return jsonify(
        {
            "run_id": rid,
            "name": info["name"],
            "model_class": info["model_class"],
            "model_summary": info["model_summary"],
            "n_params": info["n_params"],
            "hparams": info["hparams"],
            "dataset": info["dataset"],
            "class_names": info["class_names"],
            "input_shape": info["input_shape"],
            "layers": info["layers"],
            "conv_layers": info["conv_layers"],
            "n_probe": info["n_probe"],
            "started_at": _clean(info["started_at"]),
            "ended_at": _clean(info["ended_at"]),
            "steps": steps,
        }
    )
