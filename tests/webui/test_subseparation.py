"""When the sub-clusters of one class separate: the silhouette of the grouping found at one step, at
every step, from each step's own activations; and, in Chromium, its chart and the colour-by-sub-group."""

from __future__ import annotations


import numpy as np
import pytest

from deepviz import StatsDB
from deepviz.analysis.separation import separation

from .conftest import ARTIFACTS, assert_api_error
from .test_embedding import app_for, decode, fresh_db  # noqa: F401 (fresh_db is a fixture)


def _steps(client, run_id) -> list[int]:
    return [s["step"] for s in client.get(f"/api/runs/{run_id}").get_json()["steps"]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_each_steps_value_is_the_silhouette_of_that_steps_own_activations(client, run_id, webui_db, metric):
    steps = _steps(client, run_id)
    ref = steps[-1]
    sub = decode(client.get(f"/api/runs/{run_id}/steps/{ref}/subclusters?layer=fc1&cls=3&k=2").data)[1]
    body = client.get(f"/api/runs/{run_id}/steps/{ref}/subclusters/separation?layer=fc1&cls=3&k=2&metric={metric}").get_json()
    assert body["steps"] == steps and len(body["values"]) == len(steps) and body["errors"] == {}
    assert (body["measure"], body["metric"], body["range"], body["step"]) == ("silhouette", metric, [-1, 1], ref)
    store = StatsDB(webui_db)
    acts = [store.activations(t, "fc1", run_id)[sub["index"]] for t in steps]
    assert not np.allclose(acts[0], acts[-1])  # the weights, and so the activations, differ between steps
    for t, X, v in zip(steps, acts, body["values"]):
        assert v == pytest.approx(separation(X, sub["labels"], metric), abs=1e-6), t
    assert len({round(v, 6) for v in body["values"]}) == len(steps)


def test_the_grouping_is_the_reference_steps(client, run_id):
    """Another reference step gives another grouping, and so (in general) other values."""
    steps = _steps(client, run_id)
    a = client.get(f"/api/runs/{run_id}/steps/{steps[0]}/subclusters/separation?layer=fc1&cls=3&k=3").get_json()
    b = client.get(f"/api/runs/{run_id}/steps/{steps[-1]}/subclusters/separation?layer=fc1&cls=3&k=3").get_json()
    assert a["step"] == steps[0] and b["step"] == steps[-1] and a["values"] != b["values"]


def test_a_corrupt_step_is_a_gap_in_the_series(fresh_db):
    store = StatsDB(fresh_db)
    rid = store.run_ids()[-1]
    steps = store.steps(rid)
    (fresh_db / "activations" / f"run_id={rid}" / f"step={steps[1]}" / "fc1.parquet").write_bytes(b"not parquet")
    client = app_for(fresh_db).test_client()
    body = client.get(f"/api/runs/{rid}/steps/{steps[-1]}/subclusters/separation?layer=fc1&cls=3&k=2").get_json()
    assert body["values"][1] is None and None not in body["values"][::2]
    assert list(body["errors"]) == [str(steps[1])] and "truncated or corrupt" in body["errors"][str(steps[1])]


def test_separation_errors_name_the_bad_parameter(client, run_id):
    base = f"/api/runs/{run_id}/steps/0/subclusters/separation"
    assert_api_error(client.get(base), 400, "Missing parameter 'cls'")
    assert_api_error(client.get(f"{base}?cls=10"), 400, "'cls' must be between 0 and 9, got 10")
    assert_api_error(client.get(f"{base}?cls=3&k=21"), 400, "'k' must be between 2 and 20, got 21")
    assert_api_error(client.get(f"{base}?cls=3&k=1"), 400, "'k' must be between 2 and 20, got 1")
    assert_api_error(client.get(f"{base}?cls=3&metric=manhattan"), 400, "'metric' must be one of cosine, euclidean")
    assert_api_error(client.get(f"{base}?cls=3&layer=conv9"), 404, "Unknown layer 'conv9'")


# ------------------------------------------------------------------ in Chromium

SHOTS = ARTIFACTS  # screenshots for people to look at (gitignored)


def _legend(page) -> str:
    return page.text_content("[data-testid=emb-legend]") or ""


def test_the_panel_charts_every_step_and_colours_the_scatter_by_the_sub_groups(live_server, page, client, run_id):
    from .test_browser_selection import open_embedding

    steps = _steps(client, run_id)
    ref = steps[-1]
    body = client.get(f"/api/runs/{run_id}/steps/{ref}/subclusters/separation?layer=fc1&cls=3&k=2").get_json()
    open_embedding(page, f"{live_server.url}/runs/{run_id}?view=embedding&method=pca&layer=fc1&step={ref}&subcls=3&subk=2")
    page.wait_for_selector(f"[data-testid=subsep][data-step='{ref}'] [data-testid=subsep-chart]", timeout=60_000)
    dots = page.locator("[data-testid=subsep-chart] .series circle")
    assert dots.count() == len(steps)  # one point per step (the threshold line has none)
    assert page.locator("[data-testid=subsep-chart-marker]").count() == 1
    titles = [dots.nth(i).locator("title").text_content() for i in range(len(steps))]
    assert [t.rsplit(": ", 1)[1] for t in titles] == [f"{v:.2f}" for v in body["values"]]
    reading = page.text_content("[data-testid=subsep-reading]")
    assert reading.startswith(f"The 2 sub-groups of 3 found at step {ref} ") and "cosine silhouette ≥ 0.25" in reading

    page.click("[data-testid=subsep-colour]")
    page.wait_for_function("() => document.querySelector('[data-testid=emb-legend]').textContent.includes('other classes (dimmed)')")
    assert "color=subgroup" in page.url and f"subref={ref}" in page.url
    legend = _legend(page)
    assert f"group 0 of 3 at step {ref}" in legend and f"group 1 of 3 at step {ref}" in legend
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("[data-testid=clusters]").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "subsep_panel.png"), full_page=True)

    page.reload()
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    page.wait_for_function("() => document.querySelector('[data-testid=emb-legend]').textContent.includes('other classes (dimmed)')")
    assert page.input_value("[data-testid=emb-color]") == "subgroup"
    assert f"group 1 of 3 at step {ref}" in _legend(page)

    # Scrubbing keeps the sub-groups of the reference step: the same images, followed to another step.
    page.focus("[data-testid=timeline-slider]")
    page.keyboard.press("Home")
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('step') === '{steps[0]}'")
    page.wait_for_timeout(500)
    assert f"group 1 of 3 at step {ref}" in _legend(page)
    assert not page.js_errors, page.js_errors
