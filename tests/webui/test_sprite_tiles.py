"""The mosaic's thumbnail tiles (webui/tiles.py): one PNG grid of the rows asked for, at one
level's size, cached by bytes; every bound has its refusal."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from webui.state import TILE_CACHE_BYTES
from webui.tiles import TILE_ROWS, TILE_SIZES, tile_capacity

from .conftest import assert_api_error


def cell(image: Image.Image, k: int, cols: int, size: int) -> np.ndarray:
    x, y = (k % cols) * size, (k // cols) * size
    return np.asarray(image)[y : y + size, x : x + size]


def test_a_tile_holds_the_thumbnails_of_its_rows_in_order(app, client, run_id):
    db = app.extensions["deepviz_db"]
    ids = db.probes(run_id)["probe_id"].to_numpy()
    thumbs = db.thumbnails(run_id)
    rows = [3, 4, 5, 9, 40, len(ids) - 1]
    res = client.get(f"/api/runs/{run_id}/tiles.png?size=16&rows=3-5.9.40.{len(ids) - 1}")
    assert res.status_code == 200 and res.mimetype == "image/png"
    cols = int(res.headers["X-Tile-Cols"])
    assert cols == 3 and res.headers["X-Tile-Count"] == "6"
    tile = Image.open(io.BytesIO(res.data)).convert("RGB")
    assert tile.size == (3 * 16, 2 * 16)
    for k, row in enumerate(rows):  # cell k is row k's own image, at the level's size
        with Image.open(io.BytesIO(thumbs[int(ids[row])])) as img:
            expected = np.asarray(img.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(cell(tile, k, cols, 16), expected)
    other = Image.open(io.BytesIO(client.get(f"/api/runs/{run_id}/tiles.png?size=16&rows=0-5").data)).convert("RGB")
    assert not np.array_equal(cell(other, 0, 3, 16), cell(tile, 0, 3, 16))  # other rows, other images


def test_tiles_are_cached_by_bytes(app, client, run_id):
    cache = app.extensions["deepviz"].tiles
    assert cache.max_bytes == TILE_CACHE_BYTES
    first = client.get(f"/api/runs/{run_id}/tiles.png?size=8&rows=0-99")
    assert len(cache) == 1 and len(first.data) <= cache.nbytes <= len(first.data) + 64  # the PNG, and its bytes object's header
    assert first.headers["Cache-Control"] == "public, max-age=86400, immutable"
    again = client.get(f"/api/runs/{run_id}/tiles.png?size=8&rows=b" + "_" * 16 + "P")  # the same rows 0-99, as a bitset
    assert again.data == first.data and len(cache) == 1
    client.get(f"/api/runs/{run_id}/tiles.png?size=4&rows=0-99")
    assert len(cache) == 2 and cache.nbytes > len(first.data)


def test_a_tile_holds_at_most_its_levels_capacity():
    assert [tile_capacity(s) for s in TILE_SIZES] == [TILE_ROWS, TILE_ROWS, 1024, 256, 64]
    assert all(tile_capacity(s) * s * s <= 1 << 18 for s in TILE_SIZES)


def test_bad_tile_requests_say_what_is_allowed(client, run_id):
    base = f"/api/runs/{run_id}/tiles.png"
    assert_api_error(client.get(f"{base}?size=24&rows=0"), 400, r"'size' must be one of 4, 8, 16, 32, 64; got 24")
    assert_api_error(client.get(f"{base}?size=128&rows=0"), 400, r"'size' must be between 4 and 64, got 128")
    assert_api_error(client.get(f"{base}?rows=0"), 400, r"Missing parameter 'size'")
    assert_api_error(client.get(f"{base}?size=8"), 400, r"Missing parameter 'rows'")
    assert_api_error(client.get(f"{base}?size=8&rows=900000"), 400, r"names none of the run's 150 rows \(0-149\); got '900000'")
    assert_api_error(client.get(f"{base}?size=8&rows=x"), 400, r"row ranges like '0-9.15'")
    assert_api_error(client.get(f"{base}?size=64&rows=0-149"), 400, r"names 150 rows; a tile of 64-px thumbnails holds at most 64")
    assert_api_error(client.get(f"{base}?size=8&rows=" + "0" * 40_001), 400, r"'rows' is too long")
    assert_api_error(client.get("/api/runs/nope/tiles.png?size=8&rows=0"), 404, "nope")
