"""The Embedding view's fixes from a user test, in Chromium: "what moved most" within the
highlighted set, the cluster method in the URL, the legend's hide toggle, the confidence filter
in percent, "clear filters", the neighbour strip and trajectory legend in view, trails inside
the canvas, readable dimmed points, no empty A | B boxes, no "Select these 0"."""

from __future__ import annotations


import numpy as np

from .conftest import ARTIFACTS
from .test_browser_selection import click_pick, highlighted, open_embedding, predictions, probes, steps_of, wait_highlight

SHOTS = ARTIFACTS  # screenshots for people to look at (gitignored)

CANVAS_ALPHA = """(sel) => {
  const c = document.querySelector(sel + ' canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const out = [];
  for (let i = 3; i < d.length; i += 4) out.push(d[i]);
  return {w: c.width, h: c.height, alpha: out};
}"""


def shot(page, name: str, **kw):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"), **kw)


def rows_text(rows) -> str:
    return ".".join(map(str, rows))


def test_what_moved_most_ranks_within_the_selection_and_filters_and_picks_them_all(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    steps = steps_of(client, run_id)
    last = predictions(client, run_id, steps[-1])
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1")
    assert not page.is_visible("[data-testid=ab-scatter-a]") and not page.is_visible("[data-testid=ab-scatter-b]")  # B off: no boxes
    page.click("[data-testid=emb-legend] [data-group='1']")
    page.select_option("[data-testid=filter-correct]", "right")
    lit = np.flatnonzero((labels == 1) & (last["correct"] == 1))
    wait_highlight(page, ids[lit].tolist(), steps[-1])
    page.select_option("[data-testid=ab-step]", str(steps[0]))
    assert page.is_visible("[data-testid=ab-scatter-a]")
    want = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={steps[-1]}&b={steps[0]}&top=24&rows={rows_text(lit)}").get_json()
    page.wait_for_selector("[data-testid=moved] figure")
    shown = [int(v) for v in page.eval_on_selector_all("[data-testid=moved] figure", "els => els.map(e => e.dataset.probe)")]
    assert shown == want["probe_id"] and set(shown) <= set(ids[lit].tolist())
    text = page.inner_text("[data-testid=moved-measure]")
    assert f"Ranked among the {len(lit)} highlighted images" in text and "ties ordered by drift" in text
    shot(page, "moved_within_selection", full_page=True)
    click_pick(page, "[data-testid=moved-measure]")  # the filter stays on: every one of them is still highlighted
    page.wait_for_function(f"() => document.querySelector('[data-testid=scatter]').dataset.highlighted.split(',').length === {len(shown)}")
    assert highlighted(page) == sorted(shown)
    assert not page.js_errors, page.js_errors


def test_the_cluster_method_survives_a_reload(live_server, page, run_id):
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.select_option("[data-testid=cluster-method]", "hdbscan")
    page.wait_for_function("() => new URLSearchParams(location.search).get('cmethod') === 'hdbscan'")
    page.reload()
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    assert page.input_value("[data-testid=cluster-method]") == "hdbscan"
    page.select_option("[data-testid=cluster-method]", "kmeans")
    page.wait_for_function("() => !new URLSearchParams(location.search).get('cmethod')")
    page.go_back()
    page.wait_for_function("() => document.querySelector('[data-testid=cluster-method]').value === 'hdbscan'")
    assert not page.js_errors, page.js_errors


def test_legend_shift_click_toggles_each_hidden_class_and_names_them_all(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    legend = "[data-testid=emb-legend]"
    names = client.get(f"/api/runs/{run_id}").get_json()["class_names"]
    page.click(f"{legend} [data-group='3']", modifiers=["Shift"])
    wait_highlight(page, ids[labels != 3].tolist())
    page.click(f"{legend} [data-group='5']", modifiers=["Shift"])
    wait_highlight(page, ids[(labels != 3) & (labels != 5)].tolist())
    assert page.get_attribute("[data-testid=scatter]", "data-hidden-groups") == "3,5"  # left out of the drawing
    source = page.inner_text("[data-testid=pick-source]")
    assert names[3] in source and names[5] in source
    marked = page.eval_on_selector_all(f"{legend} button.off", "els => els.map(e => e.dataset.group)")
    assert marked == ["3", "5"]
    assert page.eval_on_selector(f"{legend} [data-group='3']", "e => getComputedStyle(e).textDecorationLine") == "line-through"
    shot(page, "legend_hidden_two")
    page.click(f"{legend} [data-group='3']", modifiers=["Shift"])  # again: 3 comes back
    wait_highlight(page, ids[labels != 5].tolist())
    assert page.eval_on_selector_all(f"{legend} button.off", "els => els.map(e => e.dataset.group)") == ["5"]
    assert names[3] not in page.inner_text("[data-testid=pick-source]").replace(f"without true class {names[5]}", "")
    page.click(f"{legend} [data-group='5']", modifiers=["Shift"])  # and 5: nothing hidden, no selection
    page.wait_for_function("() => !new URLSearchParams(location.search).get('pick')")
    assert page.get_attribute("[data-testid=scatter]", "data-hidden-groups") == ""
    assert page.locator(f"{legend} button.off").count() == 0
    assert not page.js_errors, page.js_errors


def test_the_confidence_filter_takes_percent_and_refuses_what_is_not(live_server, page, client, run_id):
    ids, _ = probes(client, run_id)
    steps = steps_of(client, run_id)
    last = predictions(client, run_id, steps[-1])
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.fill("[data-testid=filter-conf-lo]", "30")
    page.press("[data-testid=filter-conf-lo]", "Enter")
    page.wait_for_function("() => new URLSearchParams(location.search).get('fconf') === '0.3-1'")
    wait_highlight(page, ids[last["confidence"] >= 0.3 - 1e-6].tolist(), steps[-1])
    assert "%" in page.inner_text("[data-testid=emb-filters]")
    page.fill("[data-testid=filter-conf-hi]", "130")
    page.press("[data-testid=filter-conf-hi]", "Enter")
    msg = page.locator("[data-testid=filter-conf-msg]")
    msg.wait_for(state="visible")
    assert "percentage from 0 to 100; got 130" in msg.inner_text()
    assert "fconf=0.3-1" in page.url  # the bad value is not applied
    shot(page, "confidence_message")
    page.goto(f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&fconf=0.9-1")  # an old link, in fractions
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    assert page.input_value("[data-testid=filter-conf-lo]") == "90" and page.input_value("[data-testid=filter-conf-hi]") == "100"
    wait_highlight(page, ids[last["confidence"] >= 0.9 - 1e-6].tolist(), steps[-1])
    assert not page.js_errors, page.js_errors


def test_clear_filters_resets_the_flip_steps(live_server, page, client, run_id):
    steps = steps_of(client, run_id)
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.check("[data-testid=filter-flip]")
    page.select_option("[data-testid=filter-flip-a]", str(steps[-1]))
    page.select_option("[data-testid=filter-flip-b]", str(steps[0]))
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('fflip') === '{steps[-1]}-{steps[0]}'")
    page.click("[data-testid=filter-clear]")
    page.wait_for_function("() => !new URLSearchParams(location.search).get('fflip')")
    assert not page.is_checked("[data-testid=filter-flip]")
    assert page.input_value("[data-testid=filter-flip-a]") == str(steps[0])
    assert page.input_value("[data-testid=filter-flip-b]") == str(steps[-1])


def test_the_neighbour_strip_and_the_trajectory_legend_are_whole_in_the_side_panel(live_server, page, client, run_id):
    pid = client.get(f"/api/runs/{run_id}/probes").get_json()["probe_id"][7]
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1&sel={pid}&nk=6")
    page.wait_for_selector("[data-testid=nb-strip] figure >> nth=6")
    page.wait_for_selector("[data-testid=trajectory-chart] .legend text")
    out = page.evaluate("""() => {
      const strip = document.querySelector('[data-testid=nb-strip]').getBoundingClientRect();
      const figs = [...document.querySelectorAll('[data-testid=nb-strip] figure')].map((f) => f.getBoundingClientRect());
      const svg = document.querySelector('[data-testid=trajectory-chart]');
      const texts = [...svg.querySelectorAll('.legend text')].map((t) => t.getBBox());
      return {strip: [strip.left, strip.right], figs: figs.map((r) => [r.left, r.right]), width: svg.viewBox.baseVal.width, texts: texts.map((b) => b.x + b.width)};
    }""")
    assert len(out["figs"]) >= 7
    assert all(out["strip"][0] - 0.5 <= l and r <= out["strip"][1] + 0.5 for l, r in out["figs"]), out
    assert max(out["texts"]) <= out["width"], out
    shot(page, "side_panel", full_page=True)


def test_trails_stay_inside_the_canvas_at_every_step(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    steps = steps_of(client, run_id)
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1&trail=1")
    page.click("[data-testid=emb-legend] [data-group='0']")
    box = "[data-testid=scatter]"
    page.wait_for_function(f"() => document.querySelector('{box}').dataset.trails === '{int((labels == 0).sum())}'")
    page.focus("[data-testid=timeline-slider]")
    for i, step in enumerate(steps):
        page.keyboard.press("Home" if i == 0 else "ArrowRight")
        page.wait_for_function(f"() => document.querySelector('{box}').dataset.highlightStep === '{step}'")
        page.wait_for_timeout(400)  # the tween
        c = page.evaluate(CANVAS_ALPHA, box)
        alpha = np.asarray(c["alpha"]).reshape(c["h"], c["w"])
        edge = 3 * (c["w"] // page.locator(box).bounding_box()["width"] or 1)
        assert alpha[:, -int(edge):].max() == 0 and alpha[:, :int(edge)].max() == 0, f"drawn at the canvas's edge at step {step}"
        assert alpha[-int(edge):, :].max() == 0 and alpha[:int(edge), :].max() == 0, f"drawn at the canvas's edge at step {step}"
    shot(page, "trails_inside")
    assert not page.js_errors, page.js_errors


def test_dimmed_points_stay_readable(live_server, page, client, run_id):
    ids, _ = probes(client, run_id)
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&fid={int(ids.max()) + 1}")  # nothing passes: all dimmed
    page.wait_for_function("() => document.querySelector('[data-testid=scatter]').dataset.highlightStep !== undefined")
    page.wait_for_timeout(400)
    alpha = np.asarray(page.evaluate(CANVAS_ALPHA, "[data-testid=scatter]")["alpha"])
    drawn = alpha[alpha > 0]
    assert np.median(drawn) >= 0.25 * 255, np.median(drawn)  # a lone dimmed point is at least 25 % opaque
    page.goto(f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&ft=2")
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    wait_highlight(page, ids[probes(client, run_id)[1] == 2].tolist())
    shot(page, "dimmed_context")


def test_a_data_map_region_without_images_offers_no_button(live_server, page, client, run_id):
    from deepviz.analysis import data_map_region

    from .test_embedding import decode

    _, a = decode(client.get(f"/api/runs/{run_id}/analysis/datamap").data)
    regions = data_map_region(a["confidence"], a["variability"])
    counts = {r: int((regions == r).sum()) for r in ("easy", "ambiguous", "hard")}
    assert 0 in counts.values(), f"every region has images in this run: {counts}"
    page.goto(f"{live_server.url}/runs/{run_id}?view=analysis&method=pca")
    page.wait_for_selector("[data-testid=datamap] [data-region=easy]", timeout=60_000)
    for region, count in counts.items():
        scope = f"[data-testid=datamap] [data-region={region}]"
        buttons = page.locator(f"{scope} [data-testid=pick-these]")
        if count:
            assert buttons.inner_text() == f"Select these {count}"
        else:
            assert buttons.count() == 0 and "no images" in page.inner_text(scope)


LONG_LEGEND = """async () => {
  const {lineChart} = await import('/static/js/charts.js');
  const names = ['airplane', 'automobile', 'dog', 'horse'];
  const series = names.map((name, i) => ({name, values: [0.1 * i, 0.2, 0.3], color: '#333'}));
  const chart = lineChart(series, {xs: [0, 1, 2], width: 312, height: 150, yLabel: 'probability'});
  document.body.append(chart);
  const ends = [...chart.querySelectorAll('.legend text')].map((t) => { const b = t.getBBox(); return [t.textContent, b.x + b.width, b.y]; });
  const plotTop = Math.min(...[...chart.querySelectorAll('.grid line')].map((l) => l.y2.baseVal.value));
  chart.remove();
  return {ends, plotTop};
}"""


def test_a_chart_legend_of_long_class_names_wraps_inside_the_chart(live_server, page, run_id):
    page.goto(f"{live_server.url}/runs/{run_id}?view=sql")
    page.wait_for_selector("[data-testid=sql-query]", timeout=60_000)
    out = page.evaluate(LONG_LEGEND)
    assert [name for name, _, _ in out["ends"]] == ["airplane", "automobile", "dog", "horse"]
    assert all(end <= 312 for _, end, _ in out["ends"]), out  # the trajectory's legend read "dog -" at the edge
    assert max(y for _, _, y in out["ends"]) + 12 <= out["plotTop"], out  # the rows stay above the plot
