"""The conv filters of a step: the grid's layout, each filter's change since the previous step, and the PNG.

The weights become images through ``deepviz.introspect.filter_images``, the one
filter-to-image function the Inspect tab uses too.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from deepviz import analysis as A
from deepviz.errors import NotFoundError
from deepviz.introspect import filter_images

from .params import STEP_ERRORS, db, finite, previous_step, run_id, step_of
from .render import filter_grid, filter_layout, png_bytes

bp = Blueprint("filters", __name__, url_prefix="/api/runs/<run>")


def _conv_param(rid: str) -> str:
    convs = list(db().run_info(rid)["conv_layers"] or [])
    name = request.args.get("conv") or None
    if not convs:
        raise NotFoundError(f"Run {rid!r} stored no conv layer weights, so there are no filters to show.")
    if name is None:
        return convs[0]
    if name not in convs:
        raise NotFoundError(f"Unknown conv layer {name[:50]!r}. Available: {', '.join(convs)}.")
    return name


@bp.get("/steps/<step>/filters")
def filters(run: str, step: str):
    """The layout of the filter grid, each filter's change since the previous step and which filters are dead.

    ``change`` is :func:`deepviz.analysis.filter_change`, bounded in [0, 1]
    (``change_measure`` names it); ``dead`` flags filters whose norm is below
    ``dead_fraction`` of the layer's median filter norm.
    """
    rid = run_id(run)
    s = step_of(rid, step)
    conv = _conv_param(rid)
    w = db().weights(s, conv, rid)
    prev = previous_step(rid, s)
    change, prev_error = None, None
    if prev is not None:
        try:
            before = db().weights(prev, conv, rid)
        except STEP_ERRORS as exc:
            prev_error = str(exc)
        else:
            if before.shape == w.shape:
                change = finite(A.filter_change(before, w))
    return jsonify(
        {
            "step": s,
            "conv": conv,
            "conv_layers": list(db().run_info(rid)["conv_layers"] or []),
            "shape": list(w.shape),
            "rgb": bool(filter_images(w[:1]).shape[-1] == 3),
            "prev_step": prev,
            "prev_error": prev_error,
            "change": change,
            "change_measure": "|w - w_prev| / (|w| + |w_prev|)",
            "norm": finite(A.filter_norms(w)),
            "dead": A.dead_filters(w).tolist(),
            "dead_fraction": A.DEAD_FRACTION,
            **filter_layout(w.shape),
        }
    )


@bp.get("/steps/<step>/filters.png")
def filters_png(run: str, step: str):
    """The filters of a conv layer at a step as one PNG grid (row-major, layout as in ``filters``)."""
    rid = run_id(run)
    s = step_of(rid, step)
    w = db().weights(s, _conv_param(rid), rid)
    png = png_bytes(filter_grid(filter_images(w), filter_layout(w.shape)), optimize=True)
    # Weights of a committed step never change.
    return Response(png, mimetype="image/png", headers={"Cache-Control": "public, max-age=86400, immutable"})
