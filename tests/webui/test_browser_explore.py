"""The exploration views in Chromium: a confusion cell over the steps, the pairs that changed most, the
misclassified gallery's "more", dead filters, cluster palette and HDBSCAN parameters, unit-history borders,
actmax's out-of-distribution warning and the colour-vs-class chart's one scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz import analysis as A

from .conftest import LiveServer, screenshot, train_run


def shot(page, name):
    screenshot(page, name)


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
    # the clicked cell is in the URL: a reload shows the same cell, its history and its images
    assert page.evaluate("() => new URLSearchParams(location.search).get('cell')") == f"{t}-{p}"
    page.reload()
    page.wait_for_function(f"() => document.querySelector('[data-testid=pair-history]').textContent.includes('{series[-2, t, p]} at step {steps[-2]}')")
    page.wait_for_selector("[data-testid=cell-gallery], [data-testid=cell-images] p")
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


# class colours (dom.js PALETTE) the clusters must not reuse
CLASS_COLOURS = {"rgb(78, 121, 167)", "rgb(242, 142, 43)", "rgb(225, 87, 89)", "rgb(118, 183, 178)", "rgb(89, 161, 79)",
                 "rgb(237, 201, 72)", "rgb(176, 122, 161)", "rgb(255, 157, 167)", "rgb(156, 117, 95)", "rgb(23, 190, 207)"}


def test_clusters_have_their_own_palette_and_hdbscan_its_parameters(live_server, page, run_id, webui_db):
    db = StatsDB(webui_db)
    step = db.steps(run_id)[-1]
    page.goto(f"{live_server.url}/runs/{run_id}?view=embedding&step={step}&color=cluster")
    page.wait_for_selector("[data-testid=cluster-list] .cluster-card")
    swatches = page.eval_on_selector_all("[data-testid=cluster-list] .cluster-head .swatch", "els => els.map((e) => getComputedStyle(e).backgroundColor)")
    assert swatches and not set(swatches) & CLASS_COLOURS
    page.wait_for_function("() => document.querySelector('[data-testid=emb-legend]').textContent.includes('cluster 0')", timeout=60_000)
    legend = page.eval_on_selector_all("[data-testid=emb-legend] .swatch", "els => els.map((e) => getComputedStyle(e).backgroundColor)")
    assert legend and not set(legend) & CLASS_COLOURS
    assert not page.locator("[data-testid=cluster-mcs]").is_visible()
    page.select_option("[data-testid=cluster-method]", "hdbscan")
    page.wait_for_selector("[data-testid=cluster-mcs]", state="visible")
    assert page.locator("[data-testid=cluster-mcs]").input_value() == "10" and page.locator("[data-testid=cluster-ms]").input_value() == "3"
    X = db.activations(step, db.layers(step, run_id)[-2], run_id)  # the UI's default layer (params.layer_of)
    for mcs, ms in ((10, 3), (4, 2)):
        if (mcs, ms) != (10, 3):
            with page.expect_request(lambda r: "min_cluster_size=4" in r.url and "min_samples=2" in r.url and "/clusters" in r.url):
                page.fill("[data-testid=cluster-mcs]", str(mcs))
                page.dispatch_event("[data-testid=cluster-mcs]", "change")
                page.fill("[data-testid=cluster-ms]", str(ms))
                page.dispatch_event("[data-testid=cluster-ms]", "change")
        labels = A.hdbscan(X, mcs, ms)
        n = len(set(labels[labels >= 0].tolist()))
        page.wait_for_function(f"() => document.querySelector('[data-testid=cluster-summary]').textContent.startsWith('{n} clusters')")
    assert page.evaluate("() => new URLSearchParams(location.search).get('mcs')") in (None, "4")  # in the URL once state.js lists it
    assert page.js_errors == []


def test_unit_history_borders_are_each_steps_own_predictions(live_server, page, run_id, webui_db):
    db = StatsDB(webui_db)
    steps = db.steps(run_id)
    probe = int(db.probes(run_id)["probe_id"][3])
    page.goto(f"{live_server.url}/runs/{run_id}?view=inspect&sel={probe}&step={steps[-1]}")
    page.wait_for_selector("[data-testid=top-units] .insp-unit")
    page.click("[data-testid=top-units] .insp-unit-btn >> nth=0")
    page.wait_for_selector("[data-testid=unit-history] .insp-hist-row")
    rows = page.eval_on_selector_all("[data-testid=unit-history] .insp-hist-row", """rows => rows.map((r) => ({
        step: Number(r.dataset.step),
        imgs: Array.from(r.querySelectorAll('img')).map((i) => ({pid: Number(i.alt.split(' ')[1]), wrong: i.classList.contains('wrong')}))}))""")
    last = db.predictions(steps[-1], run_id)
    differs = 0
    for row in rows:
        p = db.predictions(row["step"], run_id)
        for img in row["imgs"]:
            own = not bool(p["correct"][np.searchsorted(p["probe_id"], img["pid"])])
            now = not bool(last["correct"][np.searchsorted(last["probe_id"], img["pid"])])
            assert img["wrong"] == own, (row["step"], img)
            differs += own != now
    assert differs > 0  # step 0's row has mistakes the last step does not
    assert page.js_errors == []


def test_activation_maximisation_warns_when_its_image_is_out_of_distribution(live_server, page, run_id, webui_db):
    probe = int(StatsDB(webui_db).probes(run_id)["probe_id"][3])
    page.goto(f"{live_server.url}/runs/{run_id}?view=inspect&sel={probe}")
    page.wait_for_selector("[data-testid=maxact-run]")
    page.fill("[aria-label='step size']", "0.5")
    page.uncheck("[aria-label='Bounded range']")
    page.uncheck("[aria-label='L2 decay']")
    page.click("[data-testid=maxact-run]")
    page.wait_for_selector("[data-testid=maxact-img]", timeout=60_000)
    warning = page.locator("[data-testid=maxact-ood]")
    assert warning.is_visible() and "Out of distribution" in warning.inner_text()
    assert "beyond the probe images' range" in warning.inner_text()
    shot(page, "actmax-ood")
    # strong range regularisation: the score still rises, no warning
    page.fill("[aria-label='step size']", "0.01")
    page.check("[aria-label='Bounded range']")
    page.fill("[aria-label='Bounded range weight']", "10000")
    page.click("[data-testid=maxact-run]")
    page.wait_for_function("() => document.querySelector('[data-testid=maxact-saturation]') && !document.querySelector('[data-testid=maxact-ood]')", timeout=60_000)
    assert page.js_errors == []


def test_the_colour_versus_class_charts_share_one_scale(live_server, page, run_id, client):
    import time

    client.post(f"/api/runs/{run_id}/analysis/compute")
    t0 = time.time()
    while client.get(f"/api/runs/{run_id}/analysis/progress").get_json()["running"]:
        assert time.time() - t0 < 180, "the quality job is still running"
        time.sleep(0.3)
    page.goto(f"{live_server.url}/runs/{run_id}?view=analysis")
    page.wait_for_selector("[data-testid=colour-class] svg.chart", timeout=60_000)
    layers = StatsDB(client.application.config["DB_PATH"]).layers(None, run_id)
    ticks = [page.eval_on_selector_all(f"[data-testid='colour-{layer}'] .grid text[text-anchor=end]", "els => els.map((e) => e.textContent)")
             for layer in layers]
    assert len(layers) >= 2 and all(t == ticks[0] for t in ticks), ticks  # one scale: the same axis on every chart
    values = [float(t) for t in ticks[0]]
    assert "0.00" in ticks[0] and 0 < max(values) <= 1.0  # from chance up to the highest value shown, not always to 1
    how = page.inner_text("[data-testid=colour-how]")
    assert "same vertical scale" in how and "orange (colour)" in how and "blue (class)" in how
    shot(page, "colour-vs-class")
    assert page.js_errors == []


def test_the_colour_helper_gives_each_probe_its_own_colour(live_server, page, run_id, client):
    from .test_embedding import decode

    _, arrays = decode(client.get(f"/api/runs/{run_id}/analysis/colour_stats").data)
    page.goto(f"{live_server.url}/runs/{run_id}?view=sql")
    page.wait_for_selector("[data-testid=sql]")
    out = page.evaluate("""async (run) => {
        const {colourStats, colourBy, COLOUR_BY} = await import('/static/js/colourstats.js');
        const stats = await colourStats(run);
        const again = await colourStats(run);
        const pick = (by) => [0, 1, 2].map((i) => colourBy(stats, by)(i));
        let error = null;
        try { colourBy(stats, 'hue'); } catch (e) { error = e.message; }
        return {same: stats === again, n: stats.probe_id.length, kinds: COLOUR_BY.map((c) => c[0]),
                mean: pick('mean_colour'), bright: pick('brightness'), sat: pick('saturation'), error};
    }""", run_id)
    assert out["same"] and out["n"] == len(arrays["probe_id"]) and out["kinds"] == ["mean_colour", "brightness", "saturation"]
    for i in range(3):
        v = int(255 * float(arrays["brightness"][i]) + 0.5)  # Math.round
        assert out["bright"][i] == f"rgb({v},{v},{v})"
        r, g, b = (int(255 * float(x) + 0.5) for x in arrays["mean_rgb"][i])
        assert out["mean"][i] == f"rgb({r},{g},{b})"
    assert out["error"] == "Unknown colouring 'hue'. Available: mean_colour, brightness, saturation."
    assert page.js_errors == []
