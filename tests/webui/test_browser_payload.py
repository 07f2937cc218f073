"""The Embedding view in Chromium on lean payloads: what its first paint fetches (bytes per
image, no thumbnail), one thumbnail per hover, and the views that read the same columns
(Confusion, the selection gallery) at two steps."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.payload import first_paint, predictions_bytes, synthetic_db

from .conftest import LiveServer, screenshot
from .test_embedding import FIND_POINT, decode

N = 5000
HEADER = 1024  # bytes of a binary answer's JSON header, at most


def shot(page, name: str) -> None:
    screenshot(page, f"payload_{name}")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("payload") / "db"
    synthetic_db(db, N)
    return db


def body_of(paint: dict[str, int], pattern: str) -> int:
    (size,) = [v for k, v in paint.items() if re.search(pattern, k)]
    return size


def test_the_first_paint_fetches_a_few_bytes_an_image_and_no_thumbnail(synthetic, tmp_path, browser):
    db = tmp_path / "db"
    shutil.copytree(synthetic, db)
    paint = first_paint(db, step=20, browser=browser)
    assert not [u for u in paint if "thumbnail" in u or "sprite" in u], paint
    assert body_of(paint, r"/probes\?format=lean$") <= 5 * N + HEADER  # int32 id, uint8 label
    assert body_of(paint, r"/steps/20/predictions\?format=lean$") <= 3.125 * N + HEADER  # uint8, uint16, 1 bit
    assert body_of(paint, r"/steps/20/projection\?.*format=lean$") <= 4 * N + HEADER  # 2 x uint16
    assert not [u for u in paint if "/steps/10/" in u], "another step's data was fetched before the step on screen was drawn"
    assert predictions_bytes(db, step=20) == body_of(paint, r"/steps/20/predictions\?format=lean$")


@pytest.mark.slow
def test_at_100000_images_the_predictions_and_the_first_paint_keep_their_budgets(tmp_path, browser):
    db = tmp_path / "db"
    synthetic_db(db, 100_000)
    assert predictions_bytes(db) <= 400_000
    assert sum(first_paint(db, browser=browser).values()) <= 2_000_000


def test_hover_fetches_one_thumbnail_and_shows_the_steps_own_confidence(synthetic, browser):
    from webui import create_app

    app = create_app(synthetic, test_config={"TESTING": True})
    client = app.test_client()
    client.post("/api/runs/synthetic/projection?method=pca")
    server = LiveServer(app)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    try:
        for step in (10, 20):
            page.goto(f"{server.url}/runs/synthetic?view=embedding&method=pca&step={step}")
            page.wait_for_selector(f"[data-testid=scatter][data-step='{step}']", timeout=60_000)
            page.wait_for_load_state("networkidle")  # the clusters panel's own thumbnails are in
            before = len([u for u in asked if "thumbnail.png" in u])
            point = page.evaluate(FIND_POINT)
            assert point, "no point drawn on the canvas"
            page.mouse.move(point["x"], point["y"])
            tip = page.locator("[data-testid=emb-tooltip]")
            tip.wait_for(state="visible")
            page.wait_for_timeout(300)
            pid = int(re.search(r"#(\d+)", tip.inner_text()).group(1))
            mine = f"{server.url}/api/runs/synthetic/probes/{pid}/thumbnail.png"
            # The hovered image's thumbnail, once (none if a gallery already had it: it is cached), and no other.
            assert [u for u in asked if "thumbnail.png" in u][before:] in ([mine], []) and mine in asked
            assert not [u for u in asked if "sprite" in u]
            _, full = decode(client.get(f"/api/runs/synthetic/steps/{step}/predictions").data)
            assert f"confidence {100 * full['confidence'][pid]:.1f}%" in tip.inner_text()  # probe ids are rows here
            shot(page, f"hover_step{step}")
    finally:
        page.close()
        server.stop()


def test_confusion_and_the_selection_gallery_read_the_lean_columns(synthetic, browser):
    from webui import create_app

    app = create_app(synthetic, test_config={"TESTING": True})
    client = app.test_client()
    server = LiveServer(app)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        for step in (10, 20):
            _, full = decode(client.get(f"/api/runs/synthetic/steps/{step}/predictions").data)
            labels = client.get("/api/runs/synthetic/probes").get_json()["label"]
            wrong = int((full["pred"] != np.asarray(labels)).sum())
            page.goto(f"{server.url}/runs/synthetic?view=confusion&step={step}&fc=wrong")
            page.wait_for_selector("[data-testid=misclassified-gallery] figure", timeout=60_000)
            page.wait_for_function(f"() => document.body.textContent.includes('Misclassified at step {step} · {wrong}')")
            # The selection gallery (side panel) filters this step's wrong images from the lean predictions.
            pick = page.locator(f"[data-testid=pick][data-step='{step}'][data-count='{wrong}']")
            pick.wait_for(timeout=30_000)
            mean = full["confidence"][full["pred"] != np.asarray(labels)].mean()
            assert f"0 right (0.0%), mean confidence {100 * mean:.1f}%" in pick.locator("[data-testid=pick-stats]").inner_text()
            page.wait_for_load_state("networkidle")  # the galleries' thumbnails, one request each
            # Every thumbnail on screen loads (the galleries' images are lazy: those below the fold wait for a scroll).
            page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=misclassified-gallery] img')]
                .filter((i) => { const r = i.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })
                .every((i) => i.complete && i.naturalWidth > 0)""", timeout=30_000)
            shot(page, f"confusion_step{step}")
    finally:
        page.close()
        server.stop()
    assert not errors, errors
