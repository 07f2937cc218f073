"""The exploration views in Chromium: a confusion cell over the steps, the pairs that changed most, the
misclassified gallery's "more", dead filters, cluster palette and HDBSCAN parameters, unit-history borders,
actmax's out-of-distribution warning and the colour-vs-class chart's one scale."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz import analysis as A

from .conftest import LiveServer, screenshot, train_run

SHOTS = Path("/work/wt/shots/expl")


def shot(page, name):
    path = screenshot(page, name)
    if SHOTS.exists():
        shutil.copy(path, SHOTS / path.name)


def test_a_confusion_cell_over_the_steps_follows_the_timeline(live_server, page, run_id, webui_db):
    db = StatsDB(webui_db)
    steps = db.steps(run_id)
    n = len(db.run_info(run_id)["class_names"])
    series = A.confusion_series(db.predictions(steps[0], run_id)["label"], np.stack([db.predictions(s, run_id)["pred"] for s in steps]), n)
    i, j = np.argwhere((series.max(0) != series.min(0)) & ~np.eye(n, dtype=bool))[0]
    page.goto(f"{live_server.url}/runs/{run_id}?view=confusion&step={steps[-1]}")
    page.wait_for_selector("[data-testid=confusion-heatmap]")
    page.click(f"[data-testid=confusion-heatmap] .cell[data-i='{i}'][data-j='{j}']")
    page.wait_for_selector("[data-testid=pair-history-chart]")
    # one point per step, the count at each step its own step's count
    titles = page.eval_on_selector_all("[data-testid=pair-history-chart] circle title", "els => els.map((e) => e.textContent)")
    assert len(titles) == len(steps)
    assert [int(t.rsplit(": ", 1)[1]) for t in titles] == series[:, i, j].tolist()
    assert f"{series[-1, i, j]} at step {steps[-1]}" in page.inner_text("[data-testid=pair-history]")
    page.wait_for_selector("[data-testid=cell-gallery], [data-testid=cell-images] p")
    shot(page, "confusion-pair-over-time")
    # a step back: the same cell, now with that step's count and images
    page.focus("[data-testid=timeline-slider]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('[data-testid=pair-history]').textContent.includes('{series[-2, i, j]} at step {steps[-2]}')")
    page.wait_for_function(f"() => document.querySelector('[data-testid=cell-images]').textContent.includes('{series[-2, i, j]} image')"
                           if series[-2, i, j] else "() => document.querySelector('[data-testid=cell-images]').textContent.includes('No images')")
    # the pairs that changed most since the step before; a row picks its cell
    page.wait_for_selector("[data-testid=pair-change-row]")
    row = page.locator("[data-testid=pair-change-row]").first
    t, p = int(row.get_attribute("data-true")), int(row.get_attribute("data-pred"))
    delta = series[-2] - series[-3]
    assert abs(delta[t, p]) == np.abs(delta * ~np.eye(n, dtype=bool)).max()
    row.click()
    page.wait_for_function(f"() => document.querySelector('[data-testid=pair-history]').textContent.includes('{series[-2, t, p]} at step {steps[-2]}')")
    assert "change in a pair's count" in page.inner_text("[data-testid=confusion-pairs]")
    assert page.js_errors == []


@pytest.fixture(scope="module")
def big_probe_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("bigprobe") / "stats_db"
    train_run(db, epochs=1, probe_size=397)  # the whole validation split: over 200 mistakes at step 0
    return db


def test_the_misclassified_gallery_shows_more_on_request(big_probe_db, page):
    from webui import create_app

    app = create_app(big_probe_db, test_config={"TESTING": True})
    db = app.extensions["deepviz_db"]
    rid = db.run_ids()[-1]
    step = db.steps(rid)[0]
    wrong = int((~db.predictions(step, rid)["correct"].astype(bool)).sum())
    assert wrong > 200
    server = LiveServer(app)
    try:
        page.goto(f"{server.url}/runs/{rid}?view=confusion&step={step}")
        page.wait_for_selector("[data-testid=misclassified-gallery]")
        count = "() => document.querySelectorAll('[data-testid=misclassified-gallery] figure').length"
        assert page.evaluate(count) == 200
        assert f"· {wrong} (showing 200)" in page.inner_text("[data-testid=misclassified-panel] h2")
        more = page.locator("[data-testid=misclassified-more]")
        assert more.is_visible() and f"({wrong - 200} not shown)" in more.inner_text()
        more.click()
        page.wait_for_function(f"() => ({count})() === {min(wrong, 400)}")
        assert more.is_visible() == (wrong > 400)
    finally:
        server.stop()
    assert page.js_errors == []


def _dead_filter_db(root: Path) -> tuple[Path, str]:
    """A run whose conv filter 1 dies at step 1 and revives at step 2 (the 127013150 % case)."""
    path = root / "stats_db"
    writer = StatsWriter(path)
    writer.write_run({"run_id": "dead", "name": "dead", "model_class": "trainers.models:SmallNet", "hparams": "{}",
                      "class_names": ["c0", "c1", "c2"], "input_shape": [1, 2, 2], "layers": ["fc"], "conv_layers": ["conv"]})
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    n = 6
    for step, scale in ((0, 1.0), (1, 1e-7), (2, 1.0)):
        ws = w + 0.01 * step
        ws[1] = w[1] * scale
        probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
        writer.write_snapshot("dead", step, epoch=step, trigger="epoch", metrics={}, probe_ids=np.arange(n),
                              labels=np.arange(n) % 3, probs=probs, loss=rng.random(n).astype(np.float32),
                              activations={"fc": rng.normal(size=(n, 4)).astype(np.float32)}, weights={"conv": ws})
    writer.close()
    return path, "dead"


def test_a_filter_that_died_and_revived_reads_bounded_and_dead(tmp_path, page):
    from webui import create_app

    path, rid = _dead_filter_db(tmp_path)
    app = create_app(path, test_config={"TESTING": True})
    client = app.test_client()
    died = client.get(f"/api/runs/{rid}/steps/1/filters").get_json()
    revived = client.get(f"/api/runs/{rid}/steps/2/filters").get_json()
    assert died["dead"] == [False, True, False, False] and revived["dead"] == [False] * 4
    assert died["change"][1] == pytest.approx(1.0, abs=1e-4) and revived["change"][1] == pytest.approx(1.0, abs=1e-3)
    assert max(revived["change"]) <= 1
    server = LiveServer(app)
    try:
        page.goto(f"{server.url}/runs/{rid}?view=metrics&step=1")
        page.wait_for_selector("[data-testid=filters-grid] .filter")
        assert page.locator("[data-testid=filters-grid] .filter.dead").count() == 1
        assert page.locator("[data-testid=filters-grid] .filter >> nth=1").get_attribute("data-dead") == "true"
        info = page.inner_text("[data-testid=filters]")
        assert "1 dead" in info and "one scale for the whole layer" in info and "%" not in page.inner_text("[data-testid=filters-grid]")
        shot(page, "filters-dead")
    finally:
        server.stop()
    assert page.js_errors == []
