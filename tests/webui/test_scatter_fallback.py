"""The scatter draws with WebGL2 where the browser has it (SwiftShader here, as in CI), and on a
2-D canvas with a visible note where it has not (Chromium started with --disable-webgl)."""

from __future__ import annotations

import pytest

from .conftest import CHROMIUM, CHROMIUM_ARGS, screenshot
from .test_embedding import FIND_POINT

BOX = "[data-testid=scatter]"


@pytest.fixture()
def page_without_webgl(browser):
    other = browser.browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--disable-webgl"])
    page = other.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    other.close()


def open_scatter(page, url: str, run_id: str) -> None:
    page.goto(f"{url}/runs/{run_id}?view=embedding&method=pca")
    page.wait_for_selector(f"{BOX}[data-checksum]", timeout=60_000)
    page.wait_for_timeout(500)  # the tween


def hover_shows_the_image(page, point: dict | None = None) -> None:
    """Hover `point` (page coordinates; by default the first point drawn on the canvas): the tooltip shows its image."""
    point = point or page.evaluate(FIND_POINT)
    assert point, "no point drawn on the canvas"
    page.mouse.move(point["x"], point["y"])
    tip = page.locator("[data-testid=emb-tooltip]")
    tip.wait_for(state="visible")
    assert "predicted" in tip.inner_text()


def test_the_scatter_draws_with_webgl2_and_no_note(live_server, page, run_id):
    open_scatter(page, live_server.url, run_id)
    assert page.get_attribute(BOX, "data-renderer") == "webgl2"
    assert page.locator(f"{BOX} .scatter-note").count() == 0
    hover_shows_the_image(page)
    assert not page.js_errors, page.js_errors


def test_without_webgl_the_points_are_drawn_on_a_2d_canvas_and_a_note_says_so(live_server, page_without_webgl, run_id):
    page = page_without_webgl
    open_scatter(page, live_server.url, run_id)
    assert page.get_attribute(BOX, "data-renderer") == "2d"
    note = page.locator(f"{BOX} .scatter-note")
    assert note.is_visible() and "WebGL2 is not available" in note.inner_text()
    hover_shows_the_image(page)
    before = page.get_attribute(BOX, "data-checksum")
    page.keyboard.press("ArrowLeft")  # another step: another layout, drawn the same way
    page.wait_for_function(f"() => document.querySelector('{BOX}').dataset.checksum !== '{before}'")
    page.wait_for_timeout(500)
    assert page.evaluate(FIND_POINT)
    screenshot(page, "scatter_without_webgl")
    assert not page.js_errors, page.js_errors
