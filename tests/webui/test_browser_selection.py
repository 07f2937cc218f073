"""The one selection, in Chromium: each way of making it highlights the same probe ids in the
scatter (its data-highlighted attribute) and lists them in the side panel's gallery; it
survives a step change and a reload of the URL. Also the filters, trails and the A | B view."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import screenshot

SHOTS = "/work/wt/shots/sel"


def open_embedding(page, url: str):
    page.goto(url)
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    page.wait_for_selector("[data-testid=emb-progress]", state="hidden", timeout=90_000)
    page.wait_for_timeout(350)  # the tween


def highlighted(page) -> list[int]:
    text = page.get_attribute("[data-testid=scatter]", "data-highlighted") or ""
    return sorted(int(v) for v in text.split(",") if v)


def gallery(page) -> list[int]:
    page.wait_for_selector("[data-testid=pick] figure")
    while page.is_visible("[data-testid=pick-more]"):
        page.click("[data-testid=pick-more]")
    return sorted(int(v) for v in page.eval_on_selector_all("[data-testid=pick] figure", "els => els.map(e => e.dataset.probe)"))


def wait_highlight(page, ids: list[int], step: int | None = None):
    want = ",".join(map(str, sorted(ids)))
    cond = f"b.dataset.highlighted === '{want}'" + ("" if step is None else f" && b.dataset.highlightStep === '{step}'")
    page.wait_for_function(f"() => {{ const b = document.querySelector('[data-testid=scatter]'); return b && {cond}; }}", timeout=30_000)


def steps_of(client, run_id) -> list[int]:
    return [s["step"] for s in client.get(f"/api/runs/{run_id}").get_json()["steps"]]


def assert_everywhere(page, client, run_id, ids: list[int]):
    """Highlighted in the scatter and listed in the gallery; the same after a step change and a reload."""
    ids = sorted(ids)
    assert ids, "the selection is empty"
    if page.get_attribute("[data-testid=tab-embedding]", "aria-selected") != "true":
        page.click("[data-testid=tab-embedding]")
        page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    wait_highlight(page, ids)
    assert highlighted(page) == ids
    page.wait_for_function(f"() => document.querySelector('[data-testid=pick]').dataset.count === '{len(ids)}'")
    assert gallery(page) == ids
    steps = steps_of(client, run_id)
    page.focus("[data-testid=timeline-slider]")
    page.keyboard.press("Home")
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('step') === '{steps[0]}'")
    wait_highlight(page, ids, steps[0])  # the same images, followed to another step
    page.wait_for_function(f"() => document.querySelector('[data-testid=pick]').dataset.step === '{steps[0]}'")
    assert gallery(page) == ids
    page.reload()
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    wait_highlight(page, ids, steps[0])
    assert gallery(page) == ids
    assert not page.js_errors, page.js_errors


def probes(client, run_id) -> tuple[np.ndarray, np.ndarray]:
    p = client.get(f"/api/runs/{run_id}/probes").get_json()
    return np.asarray(p["probe_id"]), np.asarray(p["label"])


def test_a_box_drawn_on_the_scatter_is_the_selection(live_server, page, client, run_id):
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.select_option("[data-testid=emb-drag]", "box")
    box = page.locator("[data-testid=scatter]").bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25
    page.mouse.move(x0, y0)
    page.mouse.down()
    for f in (0.4, 0.6, 0.75):
        page.mouse.move(box["x"] + box["width"] * f, box["y"] + box["height"] * f)
    page.mouse.up()
    page.wait_for_function("() => new URLSearchParams(location.search).get('pick')")
    ids = highlighted(page)
    assert 0 < len(ids) < len(probes(client, run_id)[0])
    assert "box" in page.inner_text("[data-testid=pick-source]")
    page.wait_for_timeout(300)
    screenshot(page, "selection_box")
    page.screenshot(path=f"{SHOTS}/box_selection.png")
    assert_everywhere(page, client, run_id, ids)


def test_a_lasso_selects_the_points_inside_its_path(live_server, page, client, run_id):
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.select_option("[data-testid=emb-drag]", "lasso")
    b = page.locator("[data-testid=scatter]").bounding_box()
    cx, cy, r = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, min(b["width"], b["height"]) * 0.3
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    for t in np.linspace(0, 2 * np.pi, 24):
        page.mouse.move(cx + r * np.cos(t), cy + r * np.sin(t))
    page.mouse.up()
    page.wait_for_function("() => new URLSearchParams(location.search).get('pick')")
    assert_everywhere(page, client, run_id, highlighted(page))


def test_legend_click_isolates_a_class_and_shift_click_hides_it(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.click("[data-testid=emb-legend] [data-group='3']")
    wait_highlight(page, ids[labels == 3].tolist())
    page.click("[data-testid=emb-legend] [data-group='3']", modifiers=["Shift"])  # hide 3 from (only 3): nothing left
    page.wait_for_function("() => !new URLSearchParams(location.search).get('pick')")
    page.click("[data-testid=emb-legend] [data-group='5']", modifiers=["Shift"])
    assert_everywhere(page, client, run_id, ids[labels != 5].tolist())
