"""HTML pages: the runs list and a run's timeline. All data comes from the JSON API."""

from __future__ import annotations

from flask import Blueprint, render_template

from deepviz.errors import NotFoundError

from .params import run_id

bp = Blueprint("pages", __name__)


@bp.get("/")
def runs_page():
    return render_template("runs.html")


@bp.get("/runs/<run>")
def run_page(run: str):
    # A person follows this link: answer with a page that links back, not JSON.
    try:
        rid = run_id(run)
    except NotFoundError as exc:
        return render_template("missing.html", message=str(exc)), 404
    return render_template("run.html", run_id=rid)
