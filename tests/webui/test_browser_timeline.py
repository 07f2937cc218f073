"""The timeline spaces its slider and ticks by step and says when snapshots are unevenly spaced
(schedule="log": 0, 1, 2, 4, 8, then every epoch)."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import numpy as np
import pytest

from .conftest import screenshot

UNEVEN = [0, 1, 2, 4, 8, 40, 80]


@pytest.fixture()
def uneven_server(tmp_path):
    from PIL import Image

    from deepviz.store import StatsWriter
    from webui import create_app

    from .conftest import LiveServer

    rng = np.random.default_rng(0)
    n, classes = 24, 3
    ids, labels = np.arange(n), np.arange(n) % classes
    thumbs = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), "L").save(buf, format="PNG")
        thumbs.append(buf.getvalue())
    writer = StatsWriter(tmp_path / "db")
    now = datetime.now(timezone.utc)
    writer.write_run({
        "run_id": "uneven", "name": "uneven", "started_at": now, "ended_at": now, "deepviz_version": "test",
        "model_class": "tests:Synthetic", "model_summary": "", "n_params": 0, "hparams": "{}", "dataset": "synthetic",
        "class_names": ["a", "b", "c"], "input_shape": [1, 8, 8], "layers": ["fc1"], "conv_layers": [], "n_probe": n,
        "probe_seed": 0, "world_size": 1, "activation_dtype": "float16",
    })
    writer.write_probes("uneven", ids, labels, ["a", "b", "c"], thumbs, rng.random((n, 1, 8, 8), dtype=np.float32))
    for step in UNEVEN:
        probs = rng.dirichlet(np.ones(classes), size=n)
        writer.write_snapshot("uneven", step, epoch=step // 40, trigger="step", probe_ids=ids, labels=labels, probs=probs,
                              loss=-np.log(probs[ids, labels]), activations={"fc1": rng.normal(size=(n, 6)).astype(np.float32)},
                              weights={}, metrics={})
    server = LiveServer(create_app(tmp_path / "db", test_config={"TESTING": True}))
    yield server
    server.stop()


def tick_lefts(page) -> list[float]:
    return page.eval_on_selector_all("[data-testid=timeline] .tick", "els => els.map(e => parseFloat(e.style.left))")


def test_ticks_are_spaced_by_step_and_uneven_spacing_is_said(uneven_server, page):
    page.goto(f"{uneven_server.url}/runs/uneven?view=confusion")
    note = page.locator("[data-testid=timeline-uneven]")
    note.wait_for(state="visible")
    assert "unevenly spaced (every 1 to 40 steps)" in note.inner_text()
    assert tick_lefts(page) == pytest.approx([100 * s / 80 for s in UNEVEN])
    slider = "[data-testid=timeline-slider]"
    assert page.get_attribute(slider, "max") == "80" and page.input_value(slider) == "80"
    page.focus(slider)
    page.keyboard.press("ArrowLeft")  # one snapshot back, not one step
    page.wait_for_function("() => new URLSearchParams(location.search).get('step') === '40'")
    page.keyboard.press("Home")
    page.wait_for_function("() => new URLSearchParams(location.search).get('step') === '0'")
    # A drag lands between snapshots: the nearest one is shown and the thumb snaps to it.
    page.eval_on_selector(slider, "s => { s.value = 30; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }")
    page.wait_for_function("() => new URLSearchParams(location.search).get('step') === '40'")
    assert page.input_value(slider) == "40"
    screenshot(page, "timeline_uneven")
    assert not page.js_errors, page.js_errors


def test_evenly_spaced_snapshots_get_no_note(live_server, page, run_id):
    page.goto(f"{live_server.url}/runs/{run_id}?view=confusion")
    page.wait_for_selector("[data-testid=timeline] .tick >> nth=2", state="attached")
    assert page.locator("[data-testid=timeline-uneven]").is_hidden()
    assert tick_lefts(page) == pytest.approx([0, 50, 100])


# Each dot's x (the first series' circles, in step order) and the chart's x scale.
CHART_XS = """(id) => {
    const chart = document.querySelector(`[data-testid=${id}]`);
    const dots = [...chart.querySelector('g.series').querySelectorAll('circle')].map((c) => parseFloat(c.getAttribute('cx')));
    return {scale: chart.dataset.xScale, dots};
}"""


def test_charts_of_a_log_schedule_spread_the_early_steps(uneven_server, page):
    page.goto(f"{uneven_server.url}/runs/uneven?view=metrics")
    page.wait_for_selector("[data-testid=accuracy-chart] g.series circle", state="attached")
    got = page.evaluate(CHART_XS, "accuracy-chart")
    assert got["scale"] == "log"
    gaps = np.diff(got["dots"])
    assert len(gaps) == len(UNEVEN) - 1 and (gaps > 0).all()
    # On a linear axis steps 0..8 would share 10 % of the width; on log10(1 + step) the gap from 0 to 1 is 16 %.
    width = got["dots"][-1] - got["dots"][0]
    assert gaps[0] / width == pytest.approx(np.log10(2) / np.log10(81), rel=1e-3)
    labels = page.locator("[data-testid=accuracy-chart] .axis-label").all_text_contents()
    assert [t for t in labels if t.startswith("log") and "log schedule" in t], labels  # the axis says it is log
    screenshot(page, "metrics_log_axis")
    assert not page.js_errors, page.js_errors


def test_charts_of_evenly_spaced_steps_stay_linear(live_server, page, run_id):
    page.goto(f"{live_server.url}/runs/{run_id}?view=metrics")
    page.wait_for_selector("[data-testid=accuracy-chart] g.series circle", state="attached")
    got = page.evaluate(CHART_XS, "accuracy-chart")
    assert got["scale"] == "linear"
    assert np.diff(got["dots"]) == pytest.approx([np.diff(got["dots"])[0]] * (len(got["dots"]) - 1), abs=0.2)
