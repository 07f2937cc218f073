"""The panels in real Chromium: confusion cells, a selected image's trajectory and
neighbours, metric charts, the filter grid, the SQL console, and a corrupt step."""

from __future__ import annotations

import shutil

import pytest

from deepviz import StatsDB

from .conftest import LiveServer, screenshot


def open_view(page, server, run_id, view, **params):
    query = "&".join([f"view={view}"] + [f"{k}={v}" for k, v in params.items()])
    page.goto(f"{server.url}/runs/{run_id}?{query}")


def url_param(page, name):
    return page.evaluate(f"() => new URLSearchParams(location.search).get('{name}')")


def test_click_a_confusion_cell_lists_its_images(live_server, page, run_id):
    open_view(page, live_server, run_id, "confusion")
    page.wait_for_selector("[data-testid=confusion-heatmap] .cell")
    # the off-diagonal cell with the most images
    i, j, count = page.evaluate(
        """() => {
          let best = [0, 0, 0];
          for (const g of document.querySelectorAll('[data-testid=confusion-heatmap] .cell')) {
            const i = +g.dataset.i, j = +g.dataset.j, n = +(g.querySelector('text')?.textContent || 0);
            if (i !== j && n > best[2]) best = [i, j, n];
          }
          return best;
        }"""
    )
    assert count > 0
    page.click(f"[data-testid=confusion-heatmap] .cell[data-i='{i}'][data-j='{j}']")
    page.wait_for_selector("[data-testid=cell-gallery] figure")
    assert page.locator("[data-testid=cell-gallery] figure").count() == count
    page.click("[data-testid=confusion-mode-delta]")
    page.wait_for_selector("[data-testid=confusion-mode-delta][aria-pressed=true]")
    # flows: rows sorted by count; clicking one shows its images
    page.wait_for_selector("[data-testid=flow-row]")
    page.click("[data-testid=flow-row] >> nth=0")
    page.wait_for_selector("[data-testid=flow-gallery] figure")
    first = page.inner_text("[data-testid=flow-row] >> nth=0 >> td >> nth=1")
    assert page.locator("[data-testid=flow-gallery] figure").count() == int(first)
    page.wait_for_selector("[data-testid=misclassified-gallery] figure")
    screenshot(page, "panels_confusion")
    assert not page.js_errors, page.js_errors


def test_select_a_misclassified_image_shows_trajectory_and_neighbours(live_server, page, run_id, webui_db):
    steps = StatsDB(webui_db).steps(run_id)
    open_view(page, live_server, run_id, "confusion")
    page.wait_for_selector("[data-testid=selection-hint]", state="visible")  # nothing selected yet
    page.wait_for_selector("[data-testid=misclassified-gallery] figure")
    figure = page.locator("[data-testid=misclassified-gallery] figure").first
    probe = int(figure.get_attribute("data-probe"))
    figure.click()
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('sel') === '{probe}'")
    page.wait_for_selector("[data-testid=trajectory-chart] path")
    assert page.locator("[data-testid=trajectory-chart] [data-testid=trajectory-chart-marker]").count() == 1
    assert "wrong" in page.inner_text("[data-testid=selection-pred]")
    page.wait_for_selector("[data-testid=nb-pred] figure")
    for group in ("nb-pred", "nb-true", "nb-pixel"):
        figures = page.locator(f"[data-testid={group}] figure")
        assert 1 <= figures.count() <= 6
        assert str(probe) not in [figures.nth(k).get_attribute("data-probe") for k in range(figures.count())]
    # a distance choice reloads the neighbours; Minkowski shows its p
    page.select_option("[data-testid=neighbour-metric]", "minkowski")
    page.wait_for_function("() => new URLSearchParams(location.search).get('metric') === 'minkowski'")
    page.wait_for_selector("input[aria-label='Minkowski p']", state="visible")
    page.wait_for_selector("[data-testid=nb-pred] figure")
    screenshot(page, "panels_selection")
    # clicking a point of the trajectory jumps to that step
    page.locator("[data-testid=trajectory-chart] .hit rect").first.click()
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('step') === '{steps[0]}'")
    assert not page.js_errors, page.js_errors


def test_metrics_charts_and_filter_grid(live_server, page, run_id, webui_db):
    steps = StatsDB(webui_db).steps(run_id)
    open_view(page, live_server, run_id, "metrics")
    page.wait_for_selector("[data-testid=loss-chart] path")
    page.wait_for_selector("[data-testid=accuracy-chart] path")
    page.wait_for_selector("[data-testid=per-class-heatmap] .cell")
    assert page.locator("[data-testid=accuracy-chart-marker]").count() == 1
    page.wait_for_selector("[data-testid=filters-grid] .filter")
    loaded = page.evaluate("() => { const i = document.querySelector('[data-testid=filters-image]'); return i.complete && i.naturalWidth > 0; }")
    assert loaded
    assert page.locator("[data-testid=filters-grid] .filter").count() == 16
    assert page.locator("[data-testid=filters-grid] .bar").count() == 16  # change since the previous step
    page.select_option("[data-testid=filters-layer]", "conv2")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=filters-grid] .filter').length === 32")
    screenshot(page, "panels_metrics")
    # a click on the accuracy chart jumps to the first step
    page.locator("[data-testid=accuracy-chart] .hit rect").first.click()
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('step') === '{steps[0]}'")
    page.wait_for_selector("[data-testid=filters-grid] .filter")
    assert page.locator("[data-testid=filters-grid] .bar").count() == 0  # nothing before the first step
    assert not page.js_errors, page.js_errors


def test_run_a_sql_query(live_server, page, run_id, webui_db):
    open_view(page, live_server, run_id, "sql")
    page.wait_for_selector("[data-testid=sql-query]")
    page.fill("[data-testid=sql-query]", f"SELECT step, probe_acc FROM steps WHERE run_id = '{run_id}' ORDER BY step")
    page.click("[data-testid=sql-run]")
    page.wait_for_selector("[data-testid=sql-table] tbody tr")
    steps = StatsDB(webui_db).steps(run_id)
    assert page.locator("[data-testid=sql-table] tbody tr").count() == len(steps)
    assert page.inner_text("[data-testid=sql-table] tbody tr >> nth=0 >> td >> nth=0") == str(steps[0])
    assert f"{len(steps)} rows" in page.inner_text("[data-testid=sql-status]")
    screenshot(page, "panels_sql")
    page.fill("[data-testid=sql-query]", "COPY (SELECT 1) TO '/tmp/x.csv'")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-testid=sql-result] .error")
    assert "read-only" in page.inner_text("[data-testid=sql-result] .error")
    page.locator("[data-testid=sql-example]").nth(1).click()  # most confident mistakes
    page.wait_for_selector("[data-testid=sql-table] th:has-text('confidence')")
    assert not page.js_errors, page.js_errors


@pytest.fixture()
def corrupt_server(webui_db, tmp_path):
    """A live server on a copy of the db whose middle step's predictions are truncated."""
    from webui import create_app

    db = tmp_path / "stats_db"
    shutil.copytree(webui_db, db, ignore=shutil.ignore_patterns(".*.tmp"))  # (another app may be writing a derived table)
    store = StatsDB(db)
    run = store.run_ids()[-1]
    steps = store.steps(run)
    path = db / "predictions" / f"run_id={run}" / f"step={steps[1]}" / "predictions.parquet"
    path.write_bytes(path.read_bytes()[:100])
    server = LiveServer(create_app(db, test_config={"TESTING": True}))
    yield server, run, steps
    server.stop()


def test_a_corrupt_step_shows_an_error_and_the_timeline_goes_on(corrupt_server, page):
    server, run, steps = corrupt_server
    bad = steps[1]
    page.goto(f"{server.url}/runs/{run}?view=confusion&step={bad}&sel=2")
    page.wait_for_selector("[data-testid=confusion-matrix] .error")
    assert f"Step {bad}: predictions.parquet cannot be read" in page.inner_text("[data-testid=confusion-matrix] .error")
    page.wait_for_selector("[data-testid=misclassified] .error")
    # the side panel still draws the trajectory from the readable steps and says which one it left out
    page.wait_for_selector("[data-testid=trajectory] .error")
    assert f"Step {bad} cannot be read" in page.inner_text("[data-testid=trajectory] .error")
    assert page.locator("[data-testid=trajectory-chart] path").count() > 0
    screenshot(page, "panels_corrupt_step")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('step') === '{steps[2]}'")
    page.wait_for_selector("[data-testid=confusion-heatmap] .cell")
    assert page.locator("[data-testid=confusion-matrix] .error").count() == 0
    assert not page.js_errors, page.js_errors
