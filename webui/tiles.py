"""The mosaic's thumbnails as tiles of a level-of-detail atlas.

    GET /api/runs/<run>/tiles.png?size=&rows=     the thumbnails of ``rows`` at ``size`` px, one PNG grid

A level is a thumbnail size; a tile is the list of rows the browser has on screen and lacks at that
level (``static/js/scatter/mosaic.js``), so a mosaic's first paint of 100,000 images at 4 px is about
0.4 MB and a zoom fetches only the thumbnails in view, where one sheet of every thumbnail at 24 px was
162 MB. The grid is ``deepviz.sprite``'s: ``ceil(sqrt(count))`` columns, the rows ascending. Tiles are
cached by bytes (``AppState.tiles``).
"""

from __future__ import annotations

import hashlib

import numpy as np
from flask import Blueprint, Response

from deepviz.sprite import sprite_cols, sprite_sheet

from .errors import ApiError
from .params import db, get_int, get_str, run_id
from .rowset import MAX_LEN as ROWS_MAX_LEN, decode_rows
from .state import state

bp = Blueprint("tiles", __name__, url_prefix="/api/runs/<run>")

TILE_SIZES = (4, 8, 16, 32, 64)
TILE_PX = 1 << 18  # pixels in one tile (512 x 512), as mosaic.js asks
TILE_ROWS = 4096  # thumbnails in one tile: 4,096 scattered rows still fit the URL's compact form


def tile_capacity(size: int) -> int:
    """How many thumbnails one tile of ``size``-px cells holds."""
    return min(TILE_ROWS, TILE_PX // (size * size))


@bp.get("/tiles.png")
def tile(run: str):
    rid = run_id(run)
    size = get_int("size", required=True, lo=TILE_SIZES[0], hi=TILE_SIZES[-1])
    if size not in TILE_SIZES:
        raise ApiError(f"Parameter 'size' must be one of {', '.join(map(str, TILE_SIZES))}; got {size}.", 400)
    text = get_str("rows", max_len=ROWS_MAX_LEN)
    if not text:
        raise ApiError("Missing parameter 'rows': give the tile's rows in the selection's compact form, like '0-99.120'.", 400)
    ids = db().probes(rid)["probe_id"].to_numpy()
    rows = np.flatnonzero(decode_rows(text, len(ids)))
    if not rows.size:
        raise ApiError(f"Parameter 'rows' names none of the run's {len(ids)} rows (0-{len(ids) - 1}); got {text[:40]!r}.", 400)
    cap = tile_capacity(size)
    if rows.size > cap:
        raise ApiError(f"Parameter 'rows' names {rows.size} rows; a tile of {size}-px thumbnails holds at most {cap}. "
                       "Ask for the rest in further tiles.", 400)

    def draw() -> bytes:
        thumbs = db().thumbnails_of(ids[rows], rid)  # the row groups that hold them, not every thumbnail
        return sprite_sheet([thumbs[int(pid)] for pid in ids[rows]], size)

    key = ("tile", rid, size, hashlib.sha1(rows.astype(np.int64).tobytes()).hexdigest())
    png = state().tiles.get_or_compute(key, draw)[0]
    return Response(png, mimetype="image/png", headers={
        "Cache-Control": "public, max-age=86400, immutable",  # a run's probe images never change
        "X-Tile-Cols": str(sprite_cols(int(rows.size))),
        "X-Tile-Count": str(int(rows.size)),
    })
