"""The Embedding scatter at 100,000 points in Chromium (WebGL2 on SwiftShader): a synthetic db
written with StatsWriter, two steps whose activations differ. The points draw; a step change is
drawn soon after its data arrives, and between the data and that frame the scatter does no work
over every point beyond uploading the positions (no hover grid, no colours, states or draw order:
the scatter's User Timing measures say what it did); hover is right at once after a step change
(the grid is built by that first hit test); a box selection works; and the mosaic's first paint
and zoom fetch only small tiles. The time is recorded and checked loosely (2 shared cores);
bench/scatter.py gives the figure."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from .conftest import ARTIFACTS, Waitress, screenshot
from .test_scatter_fallback import hover_shows_the_image

N = 100_000
STEPS = (10, 20)


def write_db(root, n: int = N) -> None:
    from PIL import Image

    from deepviz.store import StatsWriter

    rng = np.random.default_rng(0)
    ids = np.arange(n)
    labels = rng.integers(0, 10, n)
    thumbs = []
    for level in rng.integers(0, 255, (n, 3), dtype=np.uint8):  # a flat colour each: small PNGs, fast to write
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), tuple(int(v) for v in level)).save(buf, format="PNG")
        thumbs.append(buf.getvalue())
    writer = StatsWriter(root)
    now = datetime.now(timezone.utc)
    writer.write_run({
        "run_id": "big", "name": "big", "started_at": now, "ended_at": now, "deepviz_version": "test",
        "model_class": "tests:Synthetic", "model_summary": "", "n_params": 0, "hparams": "{}", "dataset": "synthetic",
        "class_names": [f"c{k}" for k in range(10)], "input_shape": [1, 2, 2], "layers": ["fc1"], "conv_layers": [],
        "n_probe": n, "probe_seed": 0, "world_size": 1, "activation_dtype": "float16",
    })
    writer.write_probes("big", ids, labels, [f"c{k}" for k in range(10)], thumbs, rng.random((n, 1, 2, 2), dtype=np.float32))
    for k, step in enumerate(STEPS):
        centres = rng.normal(scale=2.0 + 3.0 * k, size=(10, 8))  # the classes drift apart: a different layout
        probs = rng.dirichlet(np.ones(10), size=n)
        writer.write_snapshot("big", step, epoch=k, trigger="step", probe_ids=ids, labels=labels, probs=probs,
                              loss=-np.log(probs[ids, labels]), activations={"fc1": (centres[labels] + rng.normal(size=(n, 8))).astype(np.float32)},
                              weights={}, metrics={})
    writer.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    from webui import create_app

    root = tmp_path_factory.mktemp("big") / "db"
    write_db(root)
    app = create_app(root, test_config={"TESTING": True})
    with Waitress(app) as server:
        yield server, app


# The scatter's canvas: how many pixels are drawn and how many distinct colours (to 4 bits) they have.
DRAWN = """() => {
  const c = document.querySelector('[data-testid=scatter] canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let drawn = 0; const colours = new Set(); let at = null;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 150) continue;
    drawn++; colours.add((d[i] >> 4) * 256 + (d[i + 1] >> 4) * 16 + (d[i + 2] >> 4));
    if (!at && d[i + 3] > 200) { const p = i / 4; at = [p % c.width, Math.floor(p / c.width)]; }
  }
  const r = c.getBoundingClientRect(); const s = c.width / r.width;
  return {drawn, total: d.length / 4, colours: colours.size, at: at && {x: r.left + at[0] / s, y: r.top + at[1] / s}};
}"""

TARGET_MS = 150  # issue 13: a step change is drawn <= 150 ms after its data arrives
SLACK = 3  # on 2 cores shared with other work (load averages of 2 to 9) the median of 3 changes stays under 3x

# From the key press to the first frame drawn at the new step, and from the step's data's arrival
# (the last response that ended before the scatter took the step) to that frame; what the scatter
# measured meanwhile (work: the names of its User Timing measures over every point, in order) and
# how long that frame's drawing took (the last scatter:draw, begun after the step was taken).
# Kept on window.
WATCH_STEP_CHANGE = """() => { window.stepChange = new Promise((resolve) => {
  const box = document.querySelector('[data-testid=scatter]');
  const before = box.dataset.step; let pressed = performance.now();
  window.addEventListener('keydown', () => { pressed = performance.now(); }, {capture: true, once: true});
  const seen = new MutationObserver(() => {
    if (box.dataset.step === before) return;
    seen.disconnect();
    const taken = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => {
      const drawn = performance.now();
      const ends = performance.getEntriesByType('resource').map((e) => e.responseEnd).filter((t) => t > pressed && t <= taken);
      const arrived = Math.max(pressed, ...ends);
      const work = performance.getEntriesByType('measure').filter((e) => e.name.startsWith('scatter:') && e.name !== 'scatter:draw' && e.startTime >= pressed).map((e) => e.name);
      const draw = performance.getEntriesByName('scatter:draw').at(-1);
      resolve({step: box.dataset.step, after_press_ms: drawn - pressed, after_data_ms: drawn - arrived, fetched: ends.length,
        work, draw_ms: draw && draw.startTime >= taken ? draw.duration : null});
    }));
  });
  seen.observe(box, {attributes: true});
}); }"""


# Keep the canvas's pixels (before a step change), then find a point drawn now with nothing drawn
# within 12 px of it before: a hit test on the old layout's grid finds nothing there (reach: 7 px).
KEEP_PIXELS = """() => { const c = document.querySelector('[data-testid=scatter] canvas'); window.before = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; }"""
NEW_POINT = """() => {
  const c = document.querySelector('[data-testid=scatter] canvas'); const w = c.width; const h = c.height; const R = 12;
  const a = window.before; const b = c.getContext('2d').getImageData(0, 0, w, h).data;
  const emptyBefore = (x, y) => { for (let dy = -R; dy <= R; dy++) for (let dx = -R; dx <= R; dx++) if (a[4 * ((y + dy) * w + x + dx) + 3] > 20) return false; return true; };
  for (let y = R; y < h - R; y += 2) for (let x = R; x < w - R; x += 2) {
    if (b[4 * (y * w + x) + 3] > 200 && emptyBefore(x, y)) { const r = c.getBoundingClientRect(); const s = w / r.width; return {x: r.left + x / s, y: r.top + y / s}; }
  }
  return null;
}"""
MEASURES = "(name) => performance.getEntriesByName(name).length"


def change_step(page, key: str) -> dict:
    page.evaluate(WATCH_STEP_CHANGE)
    page.keyboard.press(key)
    return page.evaluate("() => window.stepChange")


# The tiles the page fetched, in order: [url, bytes of the body].
TILES = "() => performance.getEntriesByType('resource').filter((e) => e.name.includes('/tiles.png')).map((e) => [e.name, e.encodedBodySize])"
# Every tile asked for has come, and has its resource timing entry (added after the image's load event).
TILES_IN = f"""() => {{ const t = (document.querySelector('[data-testid=scatter]').dataset.tiles || '').split('/');
  return t.length === 2 && t[0] === t[1] && ({TILES})().length === Number(t[1]); }}"""


def layout_of(app, step: int) -> np.ndarray:
    from .test_embedding import decode

    body = app.test_client().get(f"/api/runs/big/steps/{step}/projection?layer=fc1&method=pca").data
    return decode(body)[1]["xy"]


def test_a_step_change_of_the_small_run_is_drawn_before_any_work_over_every_point(live_server, page, run_id):
    """The same mechanism on the session's small run, outside the slow step: a tweened step change."""
    page.goto(f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    page.wait_for_timeout(500)  # the tween
    change = change_step(page, "ArrowLeft")
    assert change["work"] == [] and change["draw_ms"] is not None, change
    page.wait_for_timeout(500)
    grids = page.evaluate(MEASURES, "scatter:grid")
    hover_shows_the_image(page)
    assert page.evaluate(MEASURES, "scatter:grid") == grids + 1, grids
    assert not page.js_errors, page.js_errors


def test_the_scatter_keeps_at_most_keep_measures_of_one_name(live_server, page):
    page.goto(f"{live_server.url}/")
    out = page.evaluate("""async () => {
      const {timed, KEEP} = await import('/static/js/scatter/looks.js');
      for (let k = 0; k < 2.5 * KEEP; k++) timed('test', () => k);
      const kept = performance.getEntriesByName('scatter:test');
      return {KEEP, kept: kept.length, last: timed('test', () => 'done'), now: performance.getEntriesByName('scatter:test').length};
    }""")
    assert out["kept"] == out["KEEP"] // 2 and out["now"] == out["kept"] + 1 and out["last"] == "done", out


@pytest.mark.slow
def test_a_hundred_thousand_points_draw_move_hover_select_and_tile(big, page):
    from webui.rowset import decode_rows

    server, app = big
    page.add_init_script("performance.setResourceTimingBufferSize(100000)")
    page.goto(f"{server.url}/runs/big?view=embedding&method=pca&layer=fc1")
    box = "[data-testid=scatter]"
    page.wait_for_function(f"() => document.querySelector('{box}')?.dataset.n === '{N}'", timeout=120_000)
    page.wait_for_selector("[data-testid=emb-progress]", state="hidden", timeout=120_000)
    page.wait_for_timeout(500)
    assert page.get_attribute(box, "data-renderer") == "webgl2"
    drawn = page.evaluate(DRAWN)
    assert drawn["drawn"] > 0.05 * drawn["total"] and drawn["colours"] >= 8, drawn  # the classes, in their colours
    screenshot(page, "scatter_100k")

    # Three step changes, 20 -> 10 -> 20 -> 10, each drawn from data already fetched (the view prefetches
    # the steps beside the one shown). The last one's first hover comes at once, at a point of the new
    # layout where the old one had none.
    changes = []
    for key, step in (("ArrowLeft", STEPS[0]), ("ArrowRight", STEPS[1]), ("ArrowLeft", STEPS[0])):
        page.wait_for_timeout(300)
        if len(changes) == 2:
            page.evaluate(KEEP_PIXELS)
        changes.append(change_step(page, key))
        assert changes[-1]["step"] == str(step) and page.get_attribute(box, "data-step") == str(step), changes
    median = sorted(c["after_data_ms"] for c in changes)[1]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "scatter_100k_step_change.json").write_text(json.dumps({"median_after_data_ms": median, "changes": changes}))
    # Only the upload of the positions: the same groups again, no highlight, and no hover grid before a hit test.
    assert all(c["work"] == [] and c["draw_ms"] is not None for c in changes), changes
    assert median <= TARGET_MS * SLACK, changes
    grids = page.evaluate(MEASURES, "scatter:grid")
    spot = page.evaluate(NEW_POINT)
    assert spot, "no point of step 10 lies where step 20 had none"
    hover_shows_the_image(page, spot)
    assert page.evaluate(MEASURES, "scatter:grid") == grids + 1  # built by that hover, for the new layout
    page.mouse.move(spot["x"] + 1, spot["y"])
    assert page.evaluate(MEASURES, "scatter:grid") == grids + 1  # and kept
    page.mouse.move(0, 0)
    page.wait_for_timeout(500)
    moved = page.evaluate(DRAWN)
    assert moved["drawn"] > 0.05 * moved["total"]
    screenshot(page, "scatter_100k_step")

    # Coloured by the predicted class, which differs between the steps: one pass each for the colours
    # and the draw order, however many setters the view calls.
    page.select_option("[data-testid=emb-color]", "pred")
    page.wait_for_function("() => new URLSearchParams(location.search).get('color') === 'pred'")
    page.wait_for_timeout(500)
    recoloured = change_step(page, "ArrowRight")
    assert recoloured["step"] == str(STEPS[1]) and recoloured["work"] == ["scatter:colours", "scatter:order"], recoloured
    page.select_option("[data-testid=emb-color]", "label")
    page.wait_for_timeout(500)
    assert change_step(page, "ArrowLeft")["step"] == str(STEPS[0])
    page.wait_for_timeout(300)

    page.select_option("[data-testid=emb-drag]", "box")
    b = page.locator(box).bounding_box()
    page.mouse.move(b["x"] + b["width"] * 0.3, b["y"] + b["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] * 0.5, b["y"] + b["height"] * 0.5)
    page.mouse.move(b["x"] + b["width"] * 0.7, b["y"] + b["height"] * 0.7)
    page.mouse.up()
    page.wait_for_function("() => new URLSearchParams(location.search).get('pick')", timeout=30_000)
    picked = decode_rows(parse_qs(urlparse(page.url).query)["pick"][0], N)
    assert 0 < picked.sum() < N
    page.wait_for_function(f"() => document.querySelector('{box}').dataset.highlighted.split(',').length === {int(picked.sum())}", timeout=30_000)
    screenshot(page, "scatter_100k_box")
    page.click("[data-testid=filter-clear]")
    page.select_option("[data-testid=emb-drag]", "pan")

    page.check("[data-testid=emb-mosaic]")
    page.wait_for_function(TILES_IN, timeout=60_000)
    first = page.evaluate(TILES)
    rows_first = sum(decode_rows(parse_qs(urlparse(u).query)["rows"][0], N).sum() for u, _ in first)
    assert rows_first == N and sum(size for _, size in first) <= 2_000_000, first  # every point at 4 px, in under 2 MB
    screenshot(page, "scatter_100k_mosaic")

    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    for _ in range(12):
        page.mouse.wheel(0, -300)  # zoom in about the centre
    # A tile larger than 4 px asked for, and every tile in. (Not the level alone: a view of no points
    # mid-zoom sets the level and asks for nothing.)
    page.wait_for_function(f"() => ({TILES})().some(([url]) => !url.includes('size=4&'))", timeout=30_000)
    page.wait_for_function(TILES_IN, timeout=60_000)
    zoomed = page.evaluate(TILES)[len(first):]
    assert zoomed and all(int(parse_qs(urlparse(u).query)["size"][0]) > 4 for u, _ in zoomed)
    rows = np.flatnonzero(sum(decode_rows(parse_qs(urlparse(u).query)["rows"][0], N) for u, _ in zoomed))
    assert 0 < rows.size < N / 10  # only what is in view
    xy = layout_of(app, STEPS[0])
    full, part = np.ptp(xy, axis=0), np.ptp(xy[rows], axis=0)
    assert (part < 0.5 * full).all(), (part, full)  # the rows fetched lie together: the view's window, not all over
    screenshot(page, "scatter_100k_mosaic_zoom")
    assert not page.js_errors, page.js_errors
