"""The one selection, in Chromium: each way of making it highlights the same probe ids in the
scatter (its data-highlighted attribute) and lists them in the side panel's gallery; it
survives a step change and a reload of the URL. Also the filters, trails and the A | B view."""

from __future__ import annotations

import numpy as np

from .conftest import ARTIFACTS, screenshot
from .polling import settled

SHOTS = ARTIFACTS  # screenshots for people to look at (gitignored)


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


def last_step(client, run_id) -> int:
    return steps_of(client, run_id)[-1]


def click_pick(page, scope: str):
    page.locator(f"{scope} [data-testid=pick-these]").first.click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('pick')")


def test_a_confusion_cell_is_the_selection(live_server, page, client, run_id):
    s = last_step(client, run_id)
    want = client.get(f"/api/runs/{run_id}/steps/{s}/images?true=4&pred=4&limit=300").get_json()["probe_id"]
    page.goto(f"{live_server.url}/runs/{run_id}?view=confusion&method=pca")
    page.click("[data-testid=confusion-heatmap] .cell[data-i='4'][data-j='4']")
    page.wait_for_selector("[data-testid=cell-gallery] figure")
    click_pick(page, "[data-testid=confusion]")
    assert "confusion 4→4" in page.inner_text("[data-testid=pick-source]")
    assert_everywhere(page, client, run_id, want)


def test_a_flow_row_is_the_selection_and_its_steps_are_in_the_url(live_server, page, client, run_id):
    steps = steps_of(client, run_id)
    rows = client.get(f"/api/runs/{run_id}/flows?a={steps[0]}&b={steps[-1]}").get_json()["rows"]
    page.goto(f"{live_server.url}/runs/{run_id}?view=confusion&method=pca")
    page.select_option("[data-testid=flow-from]", str(steps[0]))
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('fa') === '{steps[0]}'")
    page.click("[data-testid=flow-row] >> nth=0")
    click_pick(page, "[data-testid=flow-images]")
    assert f"fb={steps[-1]}" in page.url
    assert_everywhere(page, client, run_id, rows[0]["probe_ids"])
    page.click("[data-testid=tab-confusion]")  # the flow steps came back from the URL
    page.wait_for_function(f"() => document.querySelector('[data-testid=flow-from]').value === '{steps[0]}'")


def test_a_cluster_and_a_sub_cluster_are_the_selection(live_server, page, client, run_id):
    from .test_embedding import decode

    s = last_step(client, run_id)
    ids = np.asarray(client.get(f"/api/runs/{run_id}/probes").get_json()["probe_id"])
    labels = decode(settled(client, f"/api/runs/{run_id}/steps/{s}/clusters?layer=fc1&k=10&seed=0").data)[1]["labels"]
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1")
    click_pick(page, "[data-testid=cluster-list] .cluster-card[data-cluster='0']")
    assert_everywhere(page, client, run_id, ids[labels == 0].tolist())

    sub = decode(client.get(f"/api/runs/{run_id}/steps/{s}/subclusters?layer=fc1&cls=2&k=2&seed=0").data)[1]
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1&subcls=2&subk=2")
    page.wait_for_selector("[data-testid=subcluster-list] .cluster-card[data-cluster='1']")
    assert page.input_value("[data-testid=subcluster-k]") == "2"  # the sub-cluster k came from the URL
    click_pick(page, "[data-testid=subcluster-list] .cluster-card[data-cluster='1']")
    assert_everywhere(page, client, run_id, ids[sub["index"][sub["labels"] == 1]].tolist())


def test_the_neighbours_of_an_image_are_the_selection_and_k_is_in_the_url(live_server, page, client, run_id):
    s = last_step(client, run_id)
    pid = client.get(f"/api/runs/{run_id}/probes").get_json()["probe_id"][7]
    nb = client.get(f"/api/runs/{run_id}/steps/{s}/neighbours?probe={pid}&layer=fc1&metric=cosine&k=4").get_json()
    want = {n["probe_id"] for key in ("among_pred", "among_true", "among_other") for n in nb[key]}
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1&sel={pid}&nk=4")
    page.wait_for_selector("[data-testid=nb-strip] figure >> nth=4")
    assert page.input_value("[data-testid=neighbour-k]") == "4"
    widths = page.eval_on_selector_all("[data-testid=nb-strip] img", "els => els.map(e => e.getBoundingClientRect().width)")
    assert min(widths) >= 96
    click_pick(page, "[data-testid=neighbours]")
    assert_everywhere(page, client, run_id, sorted(want))


def test_a_data_map_region_is_the_selection(live_server, page, client, run_id):
    from deepviz.analysis import data_map_region

    from .test_embedding import decode

    meta, a = decode(client.get(f"/api/runs/{run_id}/analysis/datamap").data)
    regions = data_map_region(a["confidence"], a["variability"])
    region = max(("easy", "ambiguous", "hard"), key=lambda r: (regions == r).sum())
    page.goto(f"{live_server.url}/runs/{run_id}?view=analysis&method=pca")
    page.wait_for_selector(f"[data-testid=datamap] [data-region={region}] [data-testid=pick-these]", timeout=60_000)
    click_pick(page, f"[data-testid=datamap] [data-region={region}]")
    assert f"data map: {region}" in page.inner_text("[data-testid=pick-source]")
    assert_everywhere(page, client, run_id, a["probe_id"][regions == region].tolist())


def test_a_similarity_search_result_is_the_selection(live_server, page, client, run_id):
    s = last_step(client, run_id)
    pid = client.get(f"/api/runs/{run_id}/probes").get_json()["probe_id"][3]
    res = client.get(f"/api/runs/{run_id}/analysis/search?probe={pid}&step={s}&layer=fc1&metric=cosine&k=12&space=layer").get_json()
    page.goto(f"{live_server.url}/runs/{run_id}?view=analysis&method=pca&layer=fc1&sel={pid}")
    page.wait_for_selector("[data-testid=search-results] li", timeout=60_000)
    click_pick(page, "[data-testid=search] .search-col:first-child")
    assert_everywhere(page, client, run_id, [r["probe_id"] for r in res["results"]])


def test_a_sql_result_with_a_probe_id_column_is_the_selection(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    page.goto(f"{live_server.url}/runs/{run_id}?view=sql&method=pca")
    page.fill("[data-testid=sql-query]", f"SELECT probe_id, label FROM probes WHERE run_id = '{run_id}' AND label = 6")
    page.click("[data-testid=sql-run]")
    page.wait_for_selector("[data-testid=sql-table]")
    click_pick(page, "[data-testid=sql-result]")
    assert_everywhere(page, client, run_id, ids[labels == 6].tolist())


def predictions(client, run_id, step):
    from .test_embedding import decode

    return decode(client.get(f"/api/runs/{run_id}/steps/{step}/predictions").data)[1]


def test_filters_follow_each_step_and_compose_with_the_selection(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    steps = steps_of(client, run_id)
    first, last = predictions(client, run_id, steps[0]), predictions(client, run_id, steps[-1])
    wrong_last, wrong_first = ids[last["correct"] == 0], ids[first["correct"] == 0]
    assert set(wrong_last) != set(wrong_first)  # the steps' predictions differ, so the filter must follow them
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    page.select_option("[data-testid=filter-correct]", "wrong")
    wait_highlight(page, wrong_last.tolist(), steps[-1])
    page.focus("[data-testid=timeline-slider]")
    page.keyboard.press("Home")
    wait_highlight(page, wrong_first.tolist(), steps[0])
    page.keyboard.press("End")
    page.select_option("[data-testid=filter-correct]", "")

    page.select_option("[data-testid=filter-true]", "2")
    page.select_option("[data-testid=filter-pred]", "2")
    wait_highlight(page, ids[(labels == 2) & (last["pred"] == 2)].tolist(), steps[-1])
    page.click("[data-testid=filter-clear]")
    page.fill("[data-testid=filter-conf-lo]", "90")  # percent, as the UI shows confidence everywhere
    page.press("[data-testid=filter-conf-lo]", "Enter")
    page.fill("[data-testid=filter-conf-hi]", "100")
    page.press("[data-testid=filter-conf-hi]", "Enter")
    wait_highlight(page, ids[last["confidence"] >= 0.9 - 1e-6].tolist(), steps[-1])
    page.click("[data-testid=filter-clear]")
    page.check("[data-testid=filter-flip]")
    page.select_option("[data-testid=filter-flip-a]", str(steps[0]))
    page.select_option("[data-testid=filter-flip-b]", str(steps[-1]))
    flipped = ids[first["pred"] != last["pred"]]
    wait_highlight(page, flipped.tolist())
    assert f"fflip={steps[0]}-{steps[-1]}" in page.url
    page.click("[data-testid=filter-clear]")
    page.fill("[data-testid=filter-ids]", f"{ids[0]}, {ids[2]}-{ids[2] + 2}")
    page.press("[data-testid=filter-ids]", "Enter")
    wait_highlight(page, [i for i in ids if i == ids[0] or ids[2] <= i <= ids[2] + 2])

    # Composed with a selection: class 5 (legend) ∩ wrong at the shown step; the gallery says so.
    page.click("[data-testid=filter-clear]")
    page.click("[data-testid=emb-legend] [data-group='5']")
    page.select_option("[data-testid=filter-correct]", "right")
    both = ids[(labels == 5) & (last["correct"] == 1)].tolist()
    wait_highlight(page, both, steps[-1])
    assert gallery(page) == sorted(both) and "filtered" in page.inner_text("[data-testid=pick-source]")
    page.reload()
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    wait_highlight(page, both, steps[-1])
    assert page.input_value("[data-testid=filter-correct]") == "right"
    page.screenshot(path=f"{SHOTS}/filters.png")
    assert not page.js_errors, page.js_errors


def test_trails_draw_one_path_per_highlighted_image_across_steps(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&sel={ids[0]}")
    box = "[data-testid=scatter]"
    before = page.evaluate("() => document.querySelector('[data-testid=scatter] canvas').toDataURL()")
    page.check("[data-testid=emb-trails]")
    page.wait_for_function(f"() => document.querySelector('{box}').dataset.trails === '1'")  # the one selected image
    after = page.evaluate("() => document.querySelector('[data-testid=scatter] canvas').toDataURL()")
    assert after != before and "trail=1" in page.url
    page.click("[data-testid=emb-legend] [data-group='7']")
    n7 = int((labels == 7).sum())
    page.wait_for_function(f"() => document.querySelector('{box}').dataset.trails === '{n7}'")
    page.wait_for_timeout(400)
    page.screenshot(path=f"{SHOTS}/trails.png")
    page.focus("[data-testid=timeline-slider]")
    page.keyboard.press("Home")
    page.wait_for_function(f"() => document.querySelector('{box}').dataset.highlightStep === '{steps_of(client, run_id)[0]}'")
    assert page.get_attribute(box, "data-trails") == str(n7)
    page.uncheck("[data-testid=emb-trails]")
    page.wait_for_function(f"() => document.querySelector('{box}').dataset.trails === '0'")
    assert not page.js_errors, page.js_errors


def test_two_steps_side_by_side_share_the_selection_and_list_what_moved_most(live_server, page, client, run_id):
    ids, labels = probes(client, run_id)
    steps = steps_of(client, run_id)
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1")
    page.click("[data-testid=emb-legend] [data-group='1']")
    page.select_option("[data-testid=ab-step]", str(steps[0]))
    a, b = "[data-testid=ab-scatter-a]", "[data-testid=ab-scatter-b]"
    page.wait_for_function(f"() => document.querySelector('{a}').dataset.step === '{steps[-1]}' && document.querySelector('{b}').dataset.step === '{steps[0]}'")
    assert page.get_attribute(a, "data-checksum") != page.get_attribute(b, "data-checksum")  # different weights, different layouts
    ones = ",".join(map(str, ids[labels == 1]))
    page.wait_for_function(f"() => document.querySelector('{a}').dataset.highlighted === '{ones}' && document.querySelector('{b}').dataset.highlighted === '{ones}'")
    rows = ".".join(map(str, np.flatnonzero(labels == 1)))  # ranked within the selection
    moved = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={steps[-1]}&b={steps[0]}&top=24&rows={rows}").get_json()
    page.wait_for_selector("[data-testid=moved] figure")
    shown = [int(v) for v in page.eval_on_selector_all("[data-testid=moved] figure", "els => els.map(e => e.dataset.probe)")]
    assert shown == moved["probe_id"]
    assert "Jaccard of the 10 nearest neighbours" in page.inner_text("[data-testid=moved-measure]")
    page.wait_for_timeout(300)
    page.screenshot(path=f"{SHOTS}/ab.png", full_page=True)
    click_pick(page, "[data-testid=moved-measure]")
    assert f"ab={steps[0]}" in page.url
    assert_everywhere(page, client, run_id, moved["probe_id"])
    page.wait_for_function(f"() => document.querySelector('{b}').dataset.highlighted === '{','.join(map(str, sorted(moved['probe_id'])))}'")


def test_double_click_resets_the_zoom_without_selecting_and_previews_are_big(live_server, page, run_id):
    from .test_embedding import FIND_POINT

    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
    point = page.evaluate(FIND_POINT)
    page.mouse.move(point["x"], point["y"])
    tip = page.locator("[data-testid=emb-tooltip] img")
    tip.wait_for(state="visible")
    size = tip.bounding_box()
    assert size["width"] >= 128 and size["height"] >= 128
    assert tip.evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
    page.mouse.dblclick(point["x"], point["y"])
    page.wait_for_timeout(600)  # longer than a click waits for a double-click
    assert "sel=" not in page.url
    page.mouse.click(point["x"], point["y"])  # a single click still selects
    page.wait_for_function("() => new URLSearchParams(location.search).get('sel') !== null")

    page.click("[data-testid=emb-legend] [data-group='0']")
    page.hover("[data-testid=pick] figure >> nth=0")
    preview = page.locator("[data-testid=preview] img")
    preview.wait_for(state="visible")
    assert preview.bounding_box()["width"] >= 128
    assert preview.evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
    page.screenshot(path=f"{SHOTS}/preview.png")
    assert not page.js_errors, page.js_errors


def test_the_cluster_legend_is_not_cut_off(live_server, page, run_id):
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&color=cluster")
    page.wait_for_function("() => document.querySelector('[data-testid=emb-legend]').textContent.includes('cluster 0')")
    cut = page.eval_on_selector_all("[data-testid=emb-legend] .legend-item", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length")
    assert cut == 0
    page.screenshot(path=f"{SHOTS}/cluster_legend.png")


ROUND_TRIP = """async () => {
  const {encodeRows, decodeRows, rowsOf} = await import('/static/js/pick.js');
  const out = [];
  let seed = 1;
  const rand = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
  for (const [n, p] of [[10, 0.5], [932, 0.02], [932, 0.5], [10000, 0.3], [10000, 0.001]]) {
    const rows = [];
    for (let i = 0; i < n; i++) if (rand() < p) rows.push(i);
    const text = encodeRows(rows);
    out.push({n, rows: rows.length, same: rowsOf(decodeRows(text, n)).join() === rows.join(), len: text.length, form: text[0] === 'b' ? 'bits' : 'ranges'});
  }
  out.push({ranges: encodeRows([107, 100, 101, 102, 103, 107]), garbage: rowsOf(decodeRows('3.x.5-2.8-9.999', 10)).join()});
  return out;
}"""


def test_the_selection_url_form_round_trips_and_is_the_shorter_of_ranges_and_a_bitset(live_server, page, run_id):
    page.goto(f"{live_server.url}/runs/{run_id}?view=sql")
    page.wait_for_selector("[data-testid=sql]")
    *cases, small = page.evaluate(ROUND_TRIP)
    for c in cases:
        assert c["same"], c
        assert c["len"] <= -(-c["n"] // 6) + 1, c  # never longer than the bitset (6 rows a character)
    assert [c["form"] for c in cases] == ["bits", "ranges", "bits", "bits", "ranges"]
    assert small == {"ranges": "100-103.107", "garbage": "3,8,9"}
