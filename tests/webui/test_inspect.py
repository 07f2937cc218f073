"""The Inspect API (attributions, occlusion, activation maps, filters,
activation maximisation, top units) and the Inspect view in Chromium."""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_api_error, screenshot

METHODS = ["saliency", "smoothgrad", "gradient_x_input", "guided_backprop", "deconvnet", "grad_cam", "layer_gradient", "occlusion"]


@pytest.fixture(scope="module")
def inspect_app(webui_db):
    # One app for the module: its model and result caches are shared across the
    # API tests (each cache test uses its own image, so they do not interfere).
    from webui import create_app

    return create_app(webui_db, test_config={"TESTING": True})


@pytest.fixture(scope="module")
def api(inspect_app):
    db = inspect_app.extensions["deepviz_db"]
    rid = db.run_ids()[-1]
    return {
        "client": inspect_app.test_client(),
        "run": rid,
        "step": db.steps(rid)[-1],
        "probes": [int(p) for p in db.probes(rid)["probe_id"]],
        "db": db,
    }


def _get(api, what: str, step=None, **params):
    step = api["step"] if step is None else step
    return api["client"].get(f"/api/runs/{api['run']}/steps/{step}/inspect/{what}", query_string=params)


def _png(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def _decode(body: bytes) -> tuple[dict, dict]:
    (n,) = struct.unpack("<I", body[:4])
    header = json.loads(body[4 : 4 + n])
    arrays = {}
    for spec in header["arrays"]:
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        count = int(np.prod(spec["shape"]))
        arrays[spec["name"]] = np.frombuffer(body, dtype=dtype, count=count, offset=4 + n + spec["offset"]).reshape(spec["shape"])
    return header["meta"], arrays


@pytest.mark.parametrize("method", METHODS)
def test_each_method_returns_a_map_of_the_image_size(api, method):
    params = {"layer": "fc1", "unit": 3} if method == "layer_gradient" else {}
    res = _get(api, "attribution", probe=api["probes"][0], method=method, **params)
    assert res.status_code == 200, res.get_json()
    body = res.get_json()
    assert body["shape"] == [8, 8] and _png(body["png"]).size == (8, 8)
    overlay = _png(body["overlay"])
    assert overlay.size == (8, 8) and overlay.mode == "RGBA"
    assert np.isfinite(body["min"]) and body["min"] <= body["max"]
    # Methods that explain a class default to the model's prediction at this step.
    pred = api["db"].predictions(api["step"], api["run"])["pred"][0]
    assert body["target"] == (None if method == "layer_gradient" else int(pred))


def test_second_identical_request_is_served_from_the_cache(api):
    probe = api["probes"][1]
    first = _get(api, "attribution", probe=probe, method="occlusion", size=4, stride=2).get_json()
    second = _get(api, "attribution", probe=probe, method="occlusion", size=4, stride=2).get_json()
    other = _get(api, "attribution", probe=probe, method="occlusion", size=4, stride=4).get_json()
    assert first["cached"] is False and second["cached"] is True and other["cached"] is False
    assert second["png"] == first["png"] and other["png"] != first["png"]
    # Defaults are normalised before the lookup: an explicit default hits the same entry.
    a = _get(api, "attribution", probe=probe, method="smoothgrad").get_json()
    b = _get(api, "attribution", probe=probe, method="smoothgrad", samples=25, stdev=0.15).get_json()
    assert a["cached"] is False and b["cached"] is True


def test_occlusion_of_a_unit_and_an_explicit_target(api):
    probe = api["probes"][2]
    unit = _get(api, "attribution", probe=probe, method="occlusion", layer="conv2", unit=5).get_json()
    assert unit["target"] is None and unit["params"]["unit"] == 5 and unit["shape"] == [8, 8]
    for target in (0, 9):
        assert _get(api, "attribution", probe=probe, method="saliency", target=target).get_json()["target"] == target


def test_activation_maps_grid_has_one_tile_per_channel(api):
    body = _get(api, "activation_maps", probe=api["probes"][0], layer="conv2").get_json()
    assert body["n"] == 32 and body["map_shape"] == [8, 8] and len(body["channel_max"]) == 32
    rows = -(-body["n"] // body["ncols"])
    assert _png(body["png"]).size == (body["ncols"] * 9 - 1, rows * 9 - 1)
    stretched = _get(api, "activation_maps", probe=api["probes"][0], layer="conv2", norm="channel").get_json()
    assert stretched["png"] != body["png"]


def test_filters_and_layers(api):
    layers = _get(api, "layers").get_json()
    assert layers["conv_layers"] == ["conv1", "conv2"] and layers["n_classes"] == 10
    shapes = {l["name"]: l["shape"] for l in layers["layers"]}
    assert shapes["conv2"] == [32, 8, 8] and shapes["fc1"] == [64]
    body = _get(api, "filters", layer="conv1").get_json()
    assert body["n"] == 16 and body["rgb"] is False and _png(body["png"]).size == (4 * 4 - 1, 4 * 4 - 1)


def test_activation_maximisation_raises_the_score(api):
    body = _get(api, "maximize", target=3, steps=60, l2=0.01, blur_every=4, jitter=1, bound=1, tv=0.1).get_json()
    assert body["score"] > body["start_score"] and 0 <= body["probability"] <= 1
    assert _png(body["png"]).size == (8, 8) and len(body["history"]) == 60
    unit = _get(api, "maximize", layer="conv2", unit=1, steps=30, start="probe", probe=api["probes"][0]).get_json()
    assert unit["probability"] is None and unit["score"] > unit["start_score"]


def test_top_units_agree_with_an_argsort_of_the_stored_activations(api):
    meta, arrays = _decode(_get(api, "top_units", layer="fc1", k=5).data)
    acts = api["db"].activations(api["step"], "fc1", api["run"])
    ids = np.asarray(api["probes"])
    assert meta["n_units"] == acts.shape[1] and arrays["probe_id"].shape == (acts.shape[1], 5)
    for unit in (0, 17, 63):
        order = np.argsort(-acts[:, unit], kind="stable")[:5]
        assert np.array_equal(arrays["probe_id"][unit], ids[order])
        assert np.allclose(arrays["activation"][unit], acts[order, unit])


def test_unit_history_has_one_row_per_step(api):
    res = api["client"].get(f"/api/runs/{api['run']}/inspect/unit_history", query_string={"layer": "fc1", "unit": 7, "k": 4})
    meta, arrays = _decode(res.data)
    assert list(arrays["steps"]) == api["db"].steps(api["run"]) and arrays["probe_id"].shape == (3, 4)
    assert np.all(np.diff(arrays["activation"], axis=1) <= 0)  # strongest first at every step


@pytest.mark.parametrize(
    ("what", "params", "status", "match"),
    [
        ("attribution", {"probe": "P", "method": "nope"}, 400, "Parameter 'method' must be one of saliency"),
        ("attribution", {"method": "saliency"}, 400, "Missing parameter 'probe'"),
        ("attribution", {"method": "saliency", "probe": 999999}, 404, "Unknown probe image 999999"),
        ("attribution", {"probe": "P", "method": "saliency", "target": 10}, 400, "Parameter 'target' must be between 0 and 9"),
        ("attribution", {"probe": "P", "method": "grad_cam", "layer": "fc1"}, 404, "Unknown layer 'fc1' for 'layer'. Available layers with a spatial output: conv1"),
        ("attribution", {"probe": "P", "method": "layer_gradient", "layer": "conv9"}, 404, "Unknown layer 'conv9'"),
        ("attribution", {"probe": "P", "method": "layer_gradient", "layer": "fc1", "unit": 64}, 404, r"Unknown unit 64 of layer 'fc1': it has 64 units \(0..63\)"),
        ("attribution", {"probe": "P", "method": "occlusion", "size": 9}, 400, "Parameter 'size' must be between 1 and 8"),
        ("attribution", {"probe": "P", "method": "occlusion", "size": 3, "stride": 2}, 400, "size=3, stride=2 leave the last 1 pixel"),
        ("attribution", {"probe": "P", "method": "occlusion", "layer": "fc1"}, 400, "Missing parameter 'unit'"),
        ("attribution", {"probe": "P", "method": "smoothgrad", "samples": 500}, 400, "'samples' is 500; the web UI allows at most 100"),
        ("attribution", {"probe": "P", "method": "smoothgrad", "stdev": "x"}, 400, "Parameter 'stdev' must be a number"),
        ("activation_maps", {"probe": "P", "layer": "fc2"}, 404, "Unknown layer 'fc2'"),
        ("activation_maps", {"probe": "P", "norm": "bogus"}, 400, "Parameter 'norm' must be one of layer, channel"),
        ("filters", {"layer": "relu1"}, 404, "Unknown conv layer 'relu1' for 'layer'. Available: conv1, conv2"),
        ("maximize", {"target": 3, "steps": 1000}, 400, "'steps' is 1000; the web UI allows at most 500"),
        ("maximize", {}, 400, "Missing parameter 'target'"),
        ("maximize", {"target": 3, "layer": "fc1", "unit": 1}, 400, "Give 'target' .* not both"),
        ("maximize", {"layer": "fc1", "unit": 99}, 404, "Unknown unit 99 of layer 'fc1'"),
        ("maximize", {"target": 3, "start": "probe"}, 400, "Missing parameter 'probe'"),
        ("maximize", {"target": 3, "start": "sky"}, 400, "Parameter 'start' must be one of zeros, noise, probe"),
        ("maximize", {"target": 3, "l2": 1.5}, 400, "Parameter 'l2' must be a finite number between 0.0 and 0.99"),
        ("top_units", {"layer": "conv9"}, 404, "Unknown layer 'conv9'. Available: conv1.gap, conv2.gap, fc1, fc2."),
        ("top_units", {"layer": "fc1", "k": 0}, 400, "Parameter 'k' must be between 1 and 50"),
    ],
)
def test_bad_parameters_are_named(api, what, params, status, match):
    params = {k: api["probes"][0] if v == "P" else v for k, v in params.items()}
    assert_api_error(_get(api, what, **params), status, match)


def test_unknown_step_and_unit_history_errors(api):
    assert_api_error(_get(api, "layers", step=99999), 404, "Unknown step 99999")
    assert_api_error(_get(api, "attribution", step="abc", method="saliency", probe=api["probes"][0]), 400, "Step must be an integer")
    url = f"/api/runs/{api['run']}/inspect/unit_history"
    assert_api_error(api["client"].get(url, query_string={"layer": "fc1", "unit": 64}), 404, "Unknown unit 64 of layer 'fc1'")
    assert_api_error(api["client"].get(url, query_string={"layer": "fc1"}), 400, "Missing parameter 'unit'")


def test_a_step_without_weights_is_a_404_naming_the_steps_that_have_them(webui_db, tmp_path):
    from webui import create_app

    # A copy of the run without the state dict stored at step 0 (which has no checkpoint).
    db_path = tmp_path / "stats_db"
    shutil.copytree(webui_db, db_path, ignore=shutil.ignore_patterns(".*.tmp"))  # (another app may be writing a derived table)
    for state in db_path.glob("states/run_id=*/step=0.pt"):
        state.unlink()
    client = create_app(db_path, test_config={"TESTING": True}).test_client()
    rid = create_app(db_path).extensions["deepviz_db"].run_ids()[-1]
    res = client.get(f"/api/runs/{rid}/steps/0/inspect/attribution", query_string={"method": "saliency", "probe": 2})
    assert_api_error(res, 404, r"Step 0 of run .* has no weights.*Steps with weights: \d+")
    # Top units need no model, so they still work at that step.
    assert client.get(f"/api/runs/{rid}/steps/0/inspect/top_units", query_string={"layer": "fc1"}).status_code == 200


def test_colormap_is_diverging_for_signed_maps_and_white_at_zero():
    from webui.inspect import colorize

    signed, overlay, scale = colorize(np.array([[-2.0, 0.0, 1.0]], dtype=np.float32))
    assert scale["signed"] and tuple(signed[0, 1]) == (247, 247, 247)
    assert signed[0, 0, 2] > signed[0, 0, 0] and signed[0, 2, 0] > signed[0, 2, 2]  # blue below 0, red above
    assert list(overlay[0, :, 3]) == [255, 0, 128]  # alpha: the magnitude, so 0 lets the image through
    plain, overlay, scale = colorize(np.array([[0.0, 0.5, np.nan]], dtype=np.float32))
    assert not scale["signed"] and plain[0, 0].sum() < plain[0, 1].sum() and tuple(plain[0, 2]) == (255, 255, 255)
    assert list(overlay[0, :, 3]) == [0, 255, 0]


def test_inspect_view_shows_saliency_and_occlusion_maps(live_server, page, run_id, webui_db):
    from deepviz import StatsDB

    db = StatsDB(webui_db)
    probe = int(db.probes(run_id)["probe_id"][3])
    page.goto(f"{live_server.url}/runs/{run_id}?view=inspect&sel={probe}")
    page.wait_for_selector("[data-testid=inspect]")
    loaded = """(id) => { const img = document.querySelector(`[data-testid=attr-${id}] img.heat`);
                          return img && img.complete && img.naturalWidth > 0; }"""
    for method in ("saliency", "occlusion"):
        page.wait_for_function(loaded, arg=method, timeout=30_000)
    sizes = page.evaluate("""() => ['saliency', 'occlusion'].map((id) =>
        document.querySelector(`[data-testid=attr-${id}] img.heat`).naturalWidth)""")
    assert sizes == [8, 8]
    page.wait_for_function("() => document.querySelector('[data-testid=inspect-attr-status]')?.textContent === ''", timeout=30_000)
    page.wait_for_selector("[data-testid=inspect-act-img]")
    page.wait_for_selector("[data-testid=top-units] .insp-unit")
    assert f"probe #{probe}" in page.inner_text("[data-testid=inspect-image]")
    # Activation maximisation with the default regularisers.
    page.click("[data-testid=maxact-run]")
    page.wait_for_selector("[data-testid=maxact-img]", timeout=30_000)
    assert "class score" in page.inner_text("[data-testid=maxact-score]")
    # A unit's top images over the steps.
    page.click("[data-testid=top-units] .insp-unit-btn >> nth=0")
    page.wait_for_selector("[data-testid=unit-history] .insp-hist-row")
    assert page.locator("[data-testid=unit-history] .insp-hist-row").count() == 3
    screenshot(page, "inspect")
    # The view follows the timeline: one step back re-computes the maps for that step.
    steps = db.steps(run_id)
    page.focus("[data-testid=timeline-slider]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('[data-testid=inspect-image]').textContent.includes('at step {steps[-2]}')")
    page.wait_for_function(loaded, arg="saliency", timeout=30_000)
    assert page.js_errors == []


def test_inspect_view_asks_for_an_image_when_none_is_selected(live_server, page, run_id, webui_db):
    # It used to select the first misclassified image by itself (sel=0 in the URL, without a word).
    from deepviz import StatsDB

    db = StatsDB(webui_db)
    step = db.steps(run_id)[0]
    p = db.predictions(step, run_id)
    wrong = np.flatnonzero(~p["correct"].astype(bool))
    assert len(wrong)
    expected = int(p["probe_id"][wrong[0]])
    page.goto(f"{live_server.url}/runs/{run_id}?view=inspect&step={step}")
    page.wait_for_selector("[data-testid=inspect-pick]")
    assert "Pick an image" in page.inner_text("[data-testid=inspect-pick]")
    page.wait_for_timeout(300)
    assert "sel=" not in page.url and page.locator("[data-testid=attr-saliency]").count() == 0
    page.click("[data-testid=inspect-pick-wrong]")
    page.wait_for_function(f"() => document.querySelector('[data-testid=inspect-image]').textContent.includes('probe #{expected}')")
    assert f"sel={expected}" in page.url
    assert page.js_errors == []
