"""The Analysis tab: its API (search, quality and its job, CKA, data map) and the page in Chromium."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from deepviz.derived import QUALITY_METRICS

from .conftest import assert_api_error, screenshot


def api(run_id: str, path: str) -> str:
    return f"/api/runs/{run_id}/analysis/{path}"


@pytest.fixture()
def store(app):
    return app.extensions["deepviz_db"]


@pytest.fixture()
def probe_ids(store, run_id):
    return store.probes(run_id).probe_id.tolist()


def png(size=(20, 20), mode="RGB", colour=(200, 30, 30)) -> io.BytesIO:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "PNG")
    buf.seek(0)
    return buf


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sqeuclidean", "minkowski"])
def test_search_from_a_probe_image(client, run_id, store, probe_ids, metric):
    pid = probe_ids[3]
    body = client.get(api(run_id, "search"), query_string={"probe": pid, "k": 5, "metric": metric, "p": 2.5}).get_json()
    assert body["query"]["probe_id"] == pid and body["metric"] == metric and body["n"] == len(probe_ids)
    assert body["step"] == store.steps(run_id)[-1] and body["layer"] in store.layers(None, run_id)
    for key in ("results", "pixel"):
        res = body[key]
        assert len(res) == 5 and [r["rank"] for r in res] == [1, 2, 3, 4, 5]
        assert pid not in [r["probe_id"] for r in res]  # the query is shown apart, not as its own match
        d = [r["distance"] for r in res]
        assert d == sorted(d)
        sims = [r["similarity"] for r in res]
        assert all(0 <= s <= 100 for s in sims) and sims == sorted(sims, reverse=True)


def test_search_results_are_the_nearest_rows(client, run_id, store, probe_ids):
    step = store.steps(run_id)[0]
    layer = store.layers(None, run_id)[0]
    body = client.get(api(run_id, "search"), query_string={"probe": probe_ids[0], "k": 4, "step": step, "layer": layer, "metric": "euclidean"}).get_json()
    X = store.activations(step, layer, run_id)
    d = np.linalg.norm(X - X[0], axis=1)
    d[0] = np.inf
    assert [r["probe_id"] for r in body["results"]] == [probe_ids[i] for i in np.argsort(d, kind="stable")[:4]]


def test_search_with_an_uploaded_image(client, run_id, store):
    resp = client.post(api(run_id, "search"), query_string={"k": 3}, data={"image": (png(), "red.png")}, content_type="multipart/form-data")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["query"]["kind"] == "upload" and body["query"]["filename"] == "red.png"
    assert 0 <= body["query"]["pred"] < 10 and 0 < body["query"]["confidence"] <= 1
    assert len(body["results"]) == 3 and len(body["pixel"]) == 3


def test_uploading_a_probe_image_finds_itself_first(client, run_id, store, probe_ids):
    # The probe image itself, as an 8-bit grey PNG, is nearest to its own probe row in the layer.
    x = store.probe_inputs(run_id)[5, 0]
    im = Image.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8), "L")
    buf = io.BytesIO()
    im.save(buf, "PNG")
    buf.seek(0)
    body = client.post(api(run_id, "search"), query_string={"k": 1, "metric": "euclidean"}, data={"image": (buf, "probe.png")},
                       content_type="multipart/form-data").get_json()
    assert body["results"][0]["probe_id"] == probe_ids[5]
    assert body["pixel"][0]["probe_id"] == probe_ids[5]


def test_search_errors(client, run_id, probe_ids):
    url = api(run_id, "search")
    assert_api_error(client.get(url), 400, r"Missing parameter 'probe'")
    assert_api_error(client.get(url, query_string={"probe": "x"}), 400, r"'probe' must be an integer")
    assert_api_error(client.get(url, query_string={"probe": 10**6}), 404, r"Unknown probe image 1000000; the run has \d+ probe images")
    assert_api_error(client.get(url, query_string={"probe": probe_ids[0], "metric": "manhattan"}), 400, r"'metric' must be one of cosine, euclidean")
    assert_api_error(client.get(url, query_string={"probe": probe_ids[0], "metric": "minkowski", "p": 0.5}), 400, r"'p' must be a finite number between 1")
    assert_api_error(client.get(url, query_string={"probe": probe_ids[0], "k": 0}), 400, r"'k' must be between 1 and 100")
    assert_api_error(client.get(url, query_string={"probe": probe_ids[0], "layer": "fc9"}), 404, r"Unknown layer 'fc9'\. Available: ")
    assert_api_error(client.get(url, query_string={"probe": probe_ids[0], "step": 99999}), 404, r"Unknown step 99999")
    assert_api_error(client.get(api("nope", "search"), query_string={"probe": 1}), 404, r"Unknown run 'nope'")


def test_upload_errors(client, run_id, monkeypatch):
    from webui import search as analysis

    url = api(run_id, "search")
    form = "multipart/form-data"
    assert_api_error(client.post(url, data={}, content_type=form), 400, r"Missing file field 'image'")
    assert_api_error(client.post(url, data={"image": (io.BytesIO(b"not an image"), "notes.txt")}, content_type=form), 400,
                     r"'notes.txt' is not an image Pillow can read")
    assert_api_error(client.post(url, data={"image": (io.BytesIO(b""), "empty.png")}, content_type=form), 400, r"file is empty")
    monkeypatch.setattr(analysis, "MAX_UPLOAD", 100)
    assert_api_error(client.post(url, data={"image": (png((200, 200), colour=(1, 2, 3)), "big.png")}, content_type=form), 400,
                     r"larger than \d+ MB; upload a smaller one")
    monkeypatch.setattr(analysis, "MAX_UPLOAD", 8 * 1024 * 1024)
    monkeypatch.setattr(analysis, "MAX_PIXELS", 100)
    assert_api_error(client.post(url, data={"image": (png((20, 20)), "wide.png")}, content_type=form), 400, r"20x20 pixels; at most 100")


# --------------------------------------------------------------------------- quality, progress, CKA, data map


def wait_for_job(client, run_id, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        prog = client.get(api(run_id, "progress")).get_json()
        if not prog["running"]:
            return prog
        time.sleep(0.3)
    raise AssertionError(f"job still running after {timeout} s: {prog}")


def test_quality_is_computed_by_the_background_job(client, run_id, store):
    first = client.post(api(run_id, "compute")).get_json()
    assert {"running", "done", "total", "message", "missing", "error"} <= set(first)
    prog = wait_for_job(client, run_id)
    assert prog["error"] is None and prog["missing"] == 0
    body = client.get(api(run_id, "quality")).get_json()
    steps, layers = store.steps(run_id), store.layers(None, run_id)
    assert body["steps"] == steps and body["layers"] == layers
    assert set(body["values"]) == set(QUALITY_METRICS)
    for metric, per_layer in body["values"].items():
        for layer in layers:
            assert len(per_layer[layer]) == len(steps) and all(v is not None for v in per_layer[layer]), (metric, layer)
    acc = body["values"]["linear_probe_accuracy"][layers[0]]
    assert all(0 <= v <= 1 for v in acc)
    assert 0 < body["baselines"]["knn_accuracy"]["pixels"] <= 1 and 0 < body["baselines"]["knn_accuracy"]["mean_image"] <= 1
    assert 0 < body["chance"]["class_agreement"] < 1
    # Nothing left: starting again is a no-op.
    assert client.post(api(run_id, "compute")).get_json()["missing"] == 0


def test_cka(client, run_id, store):
    body = client.get(api(run_id, "cka"), query_string={"mode": "steps"}).get_json()
    steps = store.steps(run_id)
    m = np.array(body["matrix"], dtype=float)
    assert body["labels"] == steps and m.shape == (len(steps), len(steps))
    assert np.allclose(np.diag(m), 1) and np.allclose(m, m.T)
    body = client.get(api(run_id, "cka"), query_string={"mode": "layers", "step": steps[-1]}).get_json()
    assert body["labels"] == store.layers(steps[-1], run_id)
    assert_api_error(client.get(api(run_id, "cka"), query_string={"mode": "pairs"}), 400, r"'mode' must be one of steps, layers")
    assert_api_error(client.get(api(run_id, "cka"), query_string={"mode": "layers"}), 400, r"Missing parameter 'step'")
    assert_api_error(client.get(api(run_id, "cka"), query_string={"mode": "steps", "layer": "fc9"}), 404, r"Unknown layer 'fc9'")


def _decode(raw: bytes):
    import json
    import struct

    n = struct.unpack("<I", raw[:4])[0]
    header = json.loads(raw[4:4 + n])
    base = 4 + n
    arrays = {}
    for spec in header["arrays"]:
        count = int(np.prod(spec["shape"]))
        arrays[spec["name"]] = np.frombuffer(raw, dtype=spec["dtype"], count=count, offset=base + spec["offset"])
    return header["meta"], arrays


def test_datamap_arrays(client, run_id, store):
    resp = client.get(api(run_id, "datamap"))
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    meta, a = _decode(resp.data)
    assert a["probe_id"].tolist() == store.probes(run_id).probe_id.tolist()
    assert ((a["confidence"] >= 0) & (a["confidence"] <= 1)).all() and (a["variability"] >= 0).all()
    assert ((a["correctness"] >= 0) & (a["correctness"] <= 1)).all() and (a["forgetting_events"] >= 0).all()
    assert sum(meta["counts"].values()) == len(a["probe_id"]) and meta["n_steps"] == len(store.steps(run_id))
    assert_api_error(client.get(api("nope", "datamap")), 404, r"Unknown run 'nope'")


# --------------------------------------------------------------------------- the page


def test_analysis_tab_searches_from_a_probe_image(page, live_server, run_id, probe_ids):
    pid = probe_ids[2]
    page.goto(f"{live_server.url}/runs/{run_id}?view=analysis&sel={pid}")
    results = page.locator("[data-testid=search-results] li")
    results.first.wait_for(timeout=20000)
    assert results.count() == 12
    assert page.locator("[data-testid=search-pixel] li").count() == 12
    assert page.locator("[data-testid=search-query] img").get_attribute("src").endswith(f"/probes/{pid}/thumbnail.png")
    # ranked: the percentage bars never grow down the list
    widths = page.locator("[data-testid=search-results] li .bar > span").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    # the quality chart and the data map are drawn (the job may still be filling in the lines)
    page.wait_for_selector("[data-testid=quality-chart] path", timeout=120000)
    page.wait_for_selector("[data-testid=datamap-plot] circle[data-i]")
    page.wait_for_selector("[data-testid=cka-steps-map] rect")
    page.wait_for_selector("[data-testid=datamap-selected]")
    screenshot(page, "analysis-search")
    # a Minkowski search shows the p input and re-ranks
    page.select_option("[data-testid=search-metric]", "minkowski")
    page.wait_for_function("() => new URLSearchParams(location.search).get('metric') === 'minkowski'")
    page.wait_for_selector("[data-testid=search-results] li")
    # clicking a point of the data map selects that image and searches from it
    page.locator("[data-testid=datamap-plot] circle[data-i='7']").dispatch_event("click")
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('sel') === '{probe_ids[7]}'")
    page.wait_for_function(f"() => (document.querySelector('[data-testid=search-query] img') || {{}}).src?.endsWith('/probes/{probe_ids[7]}/thumbnail.png')")
    assert page.js_errors == []


def test_analysis_tab_waits_for_the_job_then_draws_every_chart(page, live_server, run_id, client):
    wait_for_job(client, run_id)  # (started by the test above, or now by the page)
    page.goto(f"{live_server.url}/runs/{run_id}?view=analysis")
    page.wait_for_selector("[data-testid=search-hint]")
    page.wait_for_selector("[data-testid=quality-best]", timeout=120000)
    page.wait_for_selector("[data-testid=colour-class] svg.chart")
    page.wait_for_selector("[data-testid=cka-layers-map] rect")
    page.select_option("[data-testid=quality-metric]", "silhouette")
    page.wait_for_selector("[data-testid=quality-chart] path")
    screenshot(page, "analysis-charts")
    # the upload path, from the browser
    page.set_input_files("[data-testid=search-upload]", files=[{"name": "red.png", "mimeType": "image/png", "buffer": png().getvalue()}])
    page.wait_for_selector("[data-testid=search-results] li", timeout=60000)
    assert "red.png" in page.locator("[data-testid=search-query]").inner_text()
    screenshot(page, "analysis-upload")
    assert page.js_errors == []
