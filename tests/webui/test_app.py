"""The app shell: runs API, pages, the one JSON error shape, access tokens."""

import sys

from .conftest import assert_api_error, screenshot


def test_importing_deepviz_does_not_import_flask():
    import subprocess

    code = "import sys, deepviz; from deepviz import StatsDB; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_api_runs_lists_runs_with_steps(client, run_id):
    runs = client.get("/api/runs").get_json()
    assert [r["run_id"] for r in runs] == [run_id]
    assert runs[0]["steps"][0] == 0 and len(runs[0]["steps"]) == 3
    assert 0.0 <= runs[0]["final_acc"] <= 1.0


def test_run_detail_has_steps_metrics_and_layers(client, run_id):
    run = client.get(f"/api/runs/{run_id}").get_json()
    assert run["layers"] == ["conv1.gap", "conv2.gap", "fc1", "fc2"] and run["class_names"][3] == "3"
    assert [s["step"] for s in run["steps"]][0] == 0
    assert run["steps"][-1]["val_acc"] is not None


def test_unknown_run_is_a_404_naming_it(client):
    assert_api_error(client.get("/api/runs/nope"), 404, "Unknown run 'nope'")
    page = client.get("/runs/nope")  # a page for people: HTML with a way back
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert b"Unknown run &#39;nope&#39;" in page.data and b'href="/"' in page.data


def test_unknown_step_and_malformed_step(client, run_id):
    assert_api_error(client.get(f"/api/runs/{run_id}/steps/99999/predictions"), 404, "Unknown step 99999")
    assert_api_error(client.get(f"/api/runs/{run_id}/steps/abc/predictions"), 400, "Step must be an integer")


def test_unknown_api_route_has_the_error_shape(client):
    assert_api_error(client.get("/api/nothing/here"), 404, "")


def test_thumbnail_is_png_and_unknown_probe_404(client, run_id):
    probes = client.get(f"/api/runs/{run_id}/probes").get_json()
    pid = probes["probe_id"][0]
    res = client.get(f"/api/runs/{run_id}/probes/{pid}/thumbnail.png")
    assert res.status_code == 200 and res.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert_api_error(client.get(f"/api/runs/{run_id}/probes/999999/thumbnail.png"), 404, "Unknown probe image")


def test_predictions_binary_decodes(client, run_id):
    import json
    import struct

    import numpy as np

    body = client.get(f"/api/runs/{run_id}/steps/0/predictions").data
    (n,) = struct.unpack("<I", body[:4])
    header = json.loads(body[4 : 4 + n])
    spec = {a["name"]: a for a in header["arrays"]}
    probs = np.frombuffer(body, dtype="<f4", count=int(np.prod(spec["probs"]["shape"])), offset=4 + n + spec["probs"]["offset"])
    probs = probs.reshape(spec["probs"]["shape"])
    assert probs.shape[0] == header["meta"]["n"] and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_token_required_on_every_route_when_set(webui_db):
    from webui import create_app

    app = create_app(webui_db, token="s3cret")
    client = app.test_client()
    for path in ("/", "/api/runs", "/static/js/main.js", "/static/css/app.css"):
        assert_api_error(client.get(path), 403, "access token")
    assert client.get("/api/runs?token=s3cret").status_code == 200
    assert client.get("/api/runs", headers={"Authorization": "token s3cret"}).status_code == 200
    assert_api_error(client.get("/api/runs?token=wrong"), 403, "access token")


def test_runs_page_and_run_page_render_in_chromium(live_server, page, run_id):
    page.goto(live_server.url + "/")
    page.wait_for_selector(f"tr[data-run='{run_id}']")
    assert page.inner_text("[data-testid=run-steps]") == "3"
    page.click(f"tr[data-run='{run_id}'] a")
    page.wait_for_selector("[data-testid=step-label]:has-text('step')")
    label = page.inner_text("[data-testid=step-label]")
    assert "epoch 1" in label
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => new URLSearchParams(location.search).get('step') !== null")
    assert "step=" in page.url and "view=" in page.url and "layer=" in page.url
    stepped = page.url
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("(u) => location.href !== u", arg=stepped)
    page.go_back()  # each arrow key is a history entry: Back returns to the step before
    page.wait_for_function("(u) => location.href === u", arg=stepped)
    assert page.inner_text("[data-testid=step-label]").startswith(f"step {dict(p.split('=') for p in stepped.split('?')[1].split('&'))['step']} ")
    screenshot(page, "run_page")
    assert not page.js_errors, page.js_errors


def test_a_run_still_training_beside_a_finished_one_is_listed_as_running(tmp_path, webui_db):
    import shutil

    from deepviz.store import StatsWriter
    from webui import create_app

    db = tmp_path / "stats_db"
    shutil.copytree(webui_db, db, ignore=shutil.ignore_patterns(".*.tmp"))  # (another app may be writing a derived table)
    finished = StatsWriter(db).read_run(create_app(db).extensions["deepviz_db"].run_ids()[-1])
    live = {**finished, "run_id": finished["run_id"][:-4] + "live", "name": "live", "ended_at": None}
    writer = StatsWriter(db)
    writer.write_run(live)  # a run row with no end yet, as a training writes it when it starts
    runs = {r["name"]: r for r in create_app(db).test_client().get("/api/runs").get_json()}
    assert runs["live"]["running"] is True and runs["live"]["ended_at"] is None
    assert runs["webui-test"]["running"] is False and isinstance(runs["webui-test"]["ended_at"], str)
