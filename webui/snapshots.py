"""Per-step data of a run: probes, thumbnails, predictions."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .params import binary, db, run_id, step_of

bp = Blueprint("snapshots", __name__, url_prefix="/api/runs/<run>")


@bp.get("/probes")
def probes(run: str):
    rid = run_id(run)
    frame = db().probes(rid)
    return jsonify({"probe_id": frame["probe_id"].tolist(), "label": frame["label"].tolist()})


@bp.get("/probes/<int:probe_id>/thumbnail.png")
def thumbnail(run: str, probe_id: int):
    png = db().thumbnail(probe_id, run_id(run))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "public, max-age=86400, immutable"})


@bp.get("/steps/<step>/predictions")
def predictions(run: str, step: str):
    rid = run_id(run)
    s = step_of(rid, step)
    p = db().predictions(s, rid)
    return binary(
        {"pred": p["pred"], "probs": p["probs"], "loss": p["loss"], "correct": p["correct"], "confidence": p["confidence"]},
        {"step": s, "n": int(len(p["pred"]))},
    )
