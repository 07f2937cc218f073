"""The UI says which weights a model-backed answer used: each Inspect panel and
search by upload show the `weights` field of their answer as one line."""

from __future__ import annotations

import re

from deepviz import StatsDB

from .conftest import screenshot
from .test_analysis import png

WEIGHTS_TEXT = """async (cases) => {
    const {weightsText} = await import('/static/js/weights.js');
    return cases.map((w) => weightsText(w));
}"""


def test_weights_text_names_the_state_or_the_checkpoint_file_and_its_step(live_server, page, run_id):
    page.goto(f"{live_server.url}/runs/{run_id}?view=sql")
    page.wait_for_selector("[data-testid=sql]")
    texts = page.evaluate(WEIGHTS_TEXT, [
        {"source": "state", "step": 45, "path": None, "note": None},
        {"source": "checkpoint", "step": 90, "path": "/db/checkpoints/run/epoch=2-step=90.ckpt", "note": None},
        {"source": "state", "step": 45, "path": None, "note": "last.ckpt holds step 90, not 45"},
        None,
    ])
    assert texts == [
        "weights: stored state of step 45",
        "weights: checkpoint epoch=2-step=90.ckpt (step 90)",
        "weights: stored state of step 45 · last.ckpt holds step 90, not 45",
        "",
    ]
    assert page.js_errors == []


def weights_line(page, testid: str) -> str:
    page.wait_for_selector(f"[data-testid={testid}]", state="visible", timeout=30_000)
    return page.inner_text(f"[data-testid={testid}]")


def test_inspect_panels_and_upload_search_say_which_weights_they_used(live_server, page, run_id, webui_db):
    db = StatsDB(webui_db)
    step = db.steps(run_id)[1]  # a middle step: its own weights, not the last checkpoint's
    probe = int(db.probes(run_id)["probe_id"][3])
    page.goto(f"{live_server.url}/runs/{run_id}?view=inspect&step={step}&sel={probe}")
    page.click("[data-testid=maxact-run]")
    said = re.compile(rf"^weights: (stored state of step {step}|checkpoint \S+ \(step {step}\))( · .+)?$")
    for testid in ("inspect-attr-weights", "inspect-act-weights", "maxact-weights"):
        assert said.match(weights_line(page, testid)), (testid, page.inner_text(f"[data-testid={testid}]"))
    screenshot(page, "inspect-weights")
    page.click("[data-testid=tab-analysis]")
    page.set_input_files("[data-testid=search-upload]", files=[{"name": "red.png", "mimeType": "image/png", "buffer": png().getvalue()}])
    assert said.match(weights_line(page, "search-weights"))
    # a probe image's search reads stored activations: no model, no weights line
    page.click("[data-testid=search-use-selection]")
    page.wait_for_selector("[data-testid=search-query] img[alt^='image ']")
    assert not page.is_visible("[data-testid=search-weights]")
    assert page.js_errors == []
