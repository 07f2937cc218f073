"""The Embedding tab: aligned projections cached in the db, the sprite sheet,
clusters, their errors, and the tab itself in Chromium."""

from __future__ import annotations

import io
import json
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from deepviz import StatsDB
from deepviz.analysis.projection import aligned_layouts

from .conftest import assert_api_error, screenshot
from .polling import settled


def decode(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The binary framing of webui/framing.py read back, as api.js:decodeBinary reads it:
    quantised columns as float32 (NaN above their steps), packed bits as 0/1 uint8."""
    (n,) = struct.unpack("<I", body[:4])
    header = json.loads(body[4 : 4 + n])
    arrays = {}
    for spec in header["arrays"]:
        count = int(np.prod(spec["shape"]))
        offset = 4 + n + spec["offset"]
        if spec["dtype"] == "bits":
            packed = np.frombuffer(body, dtype=np.uint8, count=(count + 7) // 8, offset=offset)
            arr = np.unpackbits(packed, count=count, bitorder="little")
        else:
            arr = np.frombuffer(body, dtype=np.dtype(spec["dtype"]).newbyteorder("<"), count=count, offset=offset)
        if "quant" in spec:
            q = spec["quant"]
            lo, hi = np.resize(np.asarray(q["lo"]), count), np.resize(np.asarray(q["hi"]), count)
            arr = np.where(arr > q["steps"], np.nan, lo + arr * (hi - lo) / q["steps"]).astype(np.float32)
        arrays[spec["name"]] = arr.reshape(spec["shape"])
    return header["meta"], arrays


def wait_done(client, run_id: str, query: str, timeout: float = 90.0) -> dict:
    url = f"/api/runs/{run_id}/projection?{query}"
    status = client.post(url).get_json()
    deadline = time.monotonic() + timeout
    while status["running"]:
        assert time.monotonic() < deadline, f"projection still running after {timeout} s: {status}"
        time.sleep(0.1)
        status = client.get(url).get_json()
    return status


def projection_files(db: Path, layer: str, method: str, seed: int) -> list[Path]:
    return sorted(db.glob(f"projections/run_id=*/layer={layer}/method={method}/seed={seed}/step=*/part.parquet"))


@pytest.fixture()
def fresh_db(webui_db, tmp_path) -> Path:
    """A copy of the session db without any cached projection (a new process, in effect)."""
    db = tmp_path / "stats_db"
    shutil.copytree(webui_db, db, ignore=shutil.ignore_patterns("projections", ".*.tmp"))
    return db


def app_for(db: Path):
    from webui import create_app

    return create_app(db, test_config={"TESTING": True})


# ------------------------------------------------------------------ projections


def test_projection_is_computed_once_stored_and_never_recomputed(client, run_id, webui_db):
    q = "layer=fc1&method=pca&seed=11"
    status = wait_done(client, run_id, q)
    steps = StatsDB(webui_db).steps(run_id)
    assert status["done"] == status["total"] == len(steps) and status["cached_steps"] == steps and not status["failed"]
    files = projection_files(webui_db, "fc1", "pca", 11)
    assert len(files) == len(steps)
    mtimes = [f.stat().st_mtime_ns for f in files]
    first = [client.get(f"/api/runs/{run_id}/steps/{s}/projection?{q}").data for s in steps]

    again = wait_done(client, run_id, q)  # asking again, even through POST, computes nothing
    assert not again["running"] and again["done"] == len(steps)
    assert [client.get(f"/api/runs/{run_id}/steps/{s}/projection?{q}").data for s in steps] == first
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_stored_sequence_is_the_aligned_sequence_of_the_analysis_code(client, run_id, webui_db):
    q = "layer=fc2&method=pca&seed=0"
    wait_done(client, run_id, q)
    db = StatsDB(webui_db)
    steps = db.steps(run_id)
    expected = aligned_layouts([db.activations(s, "fc2", run_id) for s in steps], "pca", random_state=0)
    for step, want in zip(steps, expected):
        meta, arrays = decode(client.get(f"/api/runs/{run_id}/steps/{step}/projection?{q}").data)
        assert meta["step"] == step and meta["provisional"] is False
        np.testing.assert_allclose(arrays["xy"], want, rtol=1e-5, atol=1e-5)


def test_projection_binary_is_n_by_2_float32_in_probe_order(client, run_id):
    wait_done(client, run_id, "layer=fc1&method=pca")
    res = client.get(f"/api/runs/{run_id}/steps/0/projection?layer=fc1&method=pca")
    assert res.mimetype == "application/octet-stream"
    meta, arrays = decode(res.data)
    n = len(client.get(f"/api/runs/{run_id}/probes").get_json()["probe_id"])
    assert arrays["xy"].dtype == np.float32 and arrays["xy"].shape == (n, 2) == (meta["n"], 2)
    assert np.isfinite(arrays["xy"]).all() and np.ptp(arrays["xy"], axis=0).min() > 0


def test_tsne_sequence_is_deterministic_for_a_seed(webui_db, tmp_path):
    layouts = []
    for name in ("a", "b"):
        db = tmp_path / name
        shutil.copytree(webui_db, db, ignore=shutil.ignore_patterns("projections", ".*.tmp"))
        client = app_for(db).test_client()
        rid = StatsDB(db).run_ids()[-1]
        status = wait_done(client, rid, "layer=fc1&method=tsne&seed=3")
        assert status["done"] == status["total"]
        layouts.append([decode(client.get(f"/api/runs/{rid}/steps/{s}/projection?layer=fc1&method=tsne&seed=3").data)[1]["xy"] for s in status["cached_steps"]])
    for a, b in zip(*layouts):
        np.testing.assert_array_equal(a, b)
    # Consecutive steps are aligned: points stay near where they were.
    from deepviz.analysis.projection import procrustes_disparity

    assert max(procrustes_disparity(a, b) for a, b in zip(layouts[0], layouts[0][1:])) < 0.5


def test_progress_starts_at_zero_and_reaches_total(fresh_db):
    client = app_for(fresh_db).test_client()
    rid = StatsDB(fresh_db).run_ids()[-1]
    before = client.get(f"/api/runs/{rid}/projection?layer=fc1&method=pca&seed=2").get_json()
    assert before["done"] == 0 and before["total"] == 3 and before["running"] is False and before["cached_steps"] == []
    after = wait_done(client, rid, "layer=fc1&method=pca&seed=2")
    assert after["done"] == after["total"] == 3 and after["error"] is None


def test_step_asked_before_its_turn_is_served_and_the_stored_one_is_reproduced(fresh_db):
    client = app_for(fresh_db).test_client()
    rid = StatsDB(fresh_db).run_ids()[-1]
    q = "layer=fc1&method=pca&seed=4"
    wait_done(client, rid, q)
    original = decode(client.get(f"/api/runs/{rid}/steps/22/projection?{q}").data)[1]["xy"].copy()
    (middle,) = [f for f in projection_files(fresh_db, "fc1", "pca", 4) if f.parent.name == "step=22"]
    middle.unlink()

    client = app_for(fresh_db).test_client()  # a new process: nothing cached in memory
    meta, arrays = decode(client.get(f"/api/runs/{rid}/steps/22/projection?{q}").data)
    # Not computed on the request's thread: a job starts from the nearest cached step (a tie goes to the
    # earlier), and the answer says so until it is done; the browser asks again.
    assert meta["pending"] is True and meta["provisional"] is True and meta["aligned_to"] == 0
    assert arrays["xy"].shape == (0, 2)
    deadline = time.monotonic() + 120
    while meta.get("pending"):
        assert time.monotonic() < deadline, meta
        time.sleep(0.05)
        meta, arrays = decode(client.get(f"/api/runs/{rid}/steps/22/projection?{q}").data)
    # the provisional layout, or the stored one restored by then: either is the step's, drawn whole
    assert arrays["xy"].shape == original.shape and np.isfinite(arrays["xy"]).all()
    assert meta["provisional"] is False or meta["aligned_to"] == 0
    wait_done(client, rid, q)
    assert middle.exists()
    np.testing.assert_allclose(decode(client.get(f"/api/runs/{rid}/steps/22/projection?{q}").data)[1]["xy"], original, atol=1e-5)


def test_projection_methods_list_pca_tsne_and_umap(client, run_id):
    methods = client.get(f"/api/runs/{run_id}/projection/methods").get_json()["methods"]
    assert [m["id"] for m in methods] == ["pca", "tsne", "umap"] and all(m["available"] for m in methods)

def test_projection_errors_name_the_bad_parameter(client, run_id):
    base = f"/api/runs/{run_id}"
    assert_api_error(client.get(f"{base}/steps/0/projection?layer=fc9"), 404, "Unknown layer 'fc9'. Available: conv1.gap, conv2.gap, fc1, fc2.")
    assert_api_error(client.get(f"{base}/projection?layer=fc9"), 404, "Unknown layer 'fc9'")
    assert_api_error(client.post(f"{base}/projection?method=isomap"), 400, "'method' must be one of pca, tsne, umap; got 'isomap'")
    assert_api_error(client.get(f"{base}/steps/0/projection?seed=-1"), 400, "'seed' must be between")
    assert_api_error(client.get(f"{base}/steps/0/projection?seed=abc"), 400, "'seed' must be an integer")
    assert_api_error(client.get(f"{base}/steps/77/projection"), 404, "Unknown step 77")
    assert_api_error(client.get(f"{base}/steps/x/projection"), 400, "Step must be an integer")
    assert_api_error(client.get("/api/runs/nope/steps/0/projection"), 404, "Unknown run 'nope'")


def test_a_corrupt_snapshot_fails_that_step_only(fresh_db):
    rid = StatsDB(fresh_db).run_ids()[-1]
    (fresh_db / "activations" / f"run_id={rid}" / "step=22" / "fc1.parquet").write_bytes(b"not parquet")
    client = app_for(fresh_db).test_client()
    status = wait_done(client, rid, "layer=fc1&method=pca")
    assert status["cached_steps"] == [0, 44] and list(status["failed"]) == ["22"]
    assert "truncated or corrupt" in status["failed"]["22"]
    assert client.get(f"/api/runs/{rid}/steps/44/projection?layer=fc1&method=pca").status_code == 200
    url = f"/api/runs/{rid}/steps/22/projection?layer=fc1&method=pca"
    first = client.get(url)  # its provisional layout is a job: pending, then the job's error
    assert first.status_code == 200 and decode(first.data)[0]["pending"] is True
    deadline = time.monotonic() + 60
    while (res := client.get(url)).status_code == 200:
        assert decode(res.data)[0]["pending"] is True and time.monotonic() < deadline
        time.sleep(0.05)
    assert_api_error(res, 500, "fc1.parquet")


# ------------------------------------------------------------------ sprite sheet


def test_sprite_sheet_packs_every_thumbnail_on_a_grid(client, run_id):
    from PIL import Image

    res = client.get(f"/api/runs/{run_id}/sprite.png?size=16")
    n = len(client.get(f"/api/runs/{run_id}/probes").get_json()["probe_id"])
    cols = int(res.headers["X-Sprite-Cols"])
    assert cols == int(np.ceil(np.sqrt(n))) and res.headers["X-Sprite-Cell"] == "16"
    img = Image.open(io.BytesIO(res.data))
    assert img.size == (cols * 16, int(np.ceil(n / cols)) * 16)
    assert client.get(f"/api/runs/{run_id}/sprite.png?size=16").data == res.data
    assert_api_error(client.get(f"/api/runs/{run_id}/sprite.png?size=20"), 400, "'size' must be one of 16, 24, 32, 48, 64; got 20")
    assert_api_error(client.get(f"/api/runs/{run_id}/sprite.png?size=1000"), 400, "'size' must be between")


# ------------------------------------------------------------------ clusters


def test_kmeans_clusters_cover_the_probe_set(client, run_id):
    res = settled(client, f"/api/runs/{run_id}/steps/44/clusters?layer=fc1&k=5")
    meta, arrays = decode(res.data)
    labels = arrays["labels"]
    n = len(client.get(f"/api/runs/{run_id}/probes").get_json()["probe_id"])
    assert labels.shape == (n,) and set(np.unique(labels)) == set(range(5))
    assert sum(c["size"] for c in meta["clusters"]) == n and meta["noise"] == 0
    assert all(0 < c["purity"] <= 1 for c in meta["clusters"]) and 0 < meta["purity"] <= 1
    assert decode(settled(client, f"/api/runs/{run_id}/steps/44/clusters?layer=fc1&k=5").data)[1]["labels"].tolist() == labels.tolist()


def test_hdbscan_marks_noise_as_minus_one(client, run_id):
    meta, arrays = decode(settled(client, f"/api/runs/{run_id}/steps/44/clusters?layer=fc1&method=hdbscan").data)
    labels = arrays["labels"]
    assert labels.min() >= -1 and meta["noise"] == int((labels == -1).sum())
    assert sum(c["size"] for c in meta["clusters"]) + meta["noise"] == len(labels)


def test_subclusters_split_one_class(client, run_id):
    meta, arrays = decode(client.get(f"/api/runs/{run_id}/steps/44/subclusters?layer=fc1&cls=3&k=2").data)
    labels = np.asarray(client.get(f"/api/runs/{run_id}/probes").get_json()["label"])
    assert (labels[arrays["index"]] == 3).all() and len(arrays["index"]) == (labels == 3).sum()
    assert set(arrays["labels"].tolist()) == {0, 1} and meta["class_name"] == "3"


def test_purity_timeline_has_one_value_per_step(client, run_id):
    body = settled(client, f"/api/runs/{run_id}/clusters/purity?layer=fc1&k=4").get_json()
    assert body["steps"] == [s["step"] for s in client.get(f"/api/runs/{run_id}").get_json()["steps"]]
    assert len(body["purity"]) == 3 and all(0 < v <= 1 for v in body["purity"])


def test_cluster_errors_name_the_bad_parameter(client, run_id):
    base = f"/api/runs/{run_id}"
    assert_api_error(client.get(f"{base}/steps/0/clusters?method=dbscan"), 400, "'method' must be one of kmeans, hdbscan; got 'dbscan'")
    assert_api_error(client.get(f"{base}/steps/0/clusters?k=1"), 400, "'k' must be between 2 and 50, got 1")
    assert_api_error(client.get(f"{base}/steps/0/clusters?layer=conv9"), 404, "Unknown layer 'conv9'")
    assert_api_error(client.get(f"{base}/steps/0/subclusters"), 400, "Missing parameter 'cls'")
    assert_api_error(client.get(f"{base}/steps/0/subclusters?cls=10"), 400, "'cls' must be between 0 and 9, got 10")
    assert_api_error(client.get(f"{base}/steps/0/subclusters?cls=3&k=20"), 400, "fewer than k=20")
    assert_api_error(client.get(f"{base}/clusters/purity?k=x"), 400, "'k' must be an integer")


# ------------------------------------------------------------------ in Chromium

# A pixel of the scatter canvas that a point was drawn on (not background),
# in page coordinates: the test hovers and clicks real drawn points.
FIND_POINT = """() => {
  const c = document.querySelector('[data-testid=scatter] canvas');
  const g = c.getContext('2d'); const d = g.getImageData(0, 0, c.width, c.height).data;
  const r = c.getBoundingClientRect(); const s = c.width / r.width;
  for (let y = 4; y < c.height - 4; y += 3) for (let x = 4; x < c.width - 4; x += 3) {
    const i = 4 * (y * c.width + x);
    const max = Math.max(d[i], d[i + 1], d[i + 2]), min = Math.min(d[i], d[i + 1], d[i + 2]);
    if (d[i + 3] > 200 && max - min > 60) return {x: r.left + x / s, y: r.top + y / s};
  }
  return null;
}"""


def test_embedding_tab_scrubs_hovers_selects_and_clusters(live_server, page, run_id):
    page.goto(f"{live_server.url}/runs/{run_id}?view=embedding&method=tsne")
    scatter = page.locator("[data-testid=scatter]")
    page.wait_for_selector("[data-testid=scatter][data-checksum]", timeout=60_000)
    # Wait for the aligned sequence: the progress bar hides when it is complete.
    page.wait_for_selector("[data-testid=emb-progress]", state="hidden", timeout=90_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=emb-note]').textContent")
    page.wait_for_timeout(400)  # the tween
    screenshot(page, "embedding_tsne")
    before = scatter.get_attribute("data-checksum")
    step_before = scatter.get_attribute("data-step")

    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('[data-testid=scatter]').dataset.step !== '{step_before}'")
    assert scatter.get_attribute("data-checksum") != before
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => document.querySelector('[data-testid=scatter]').dataset.step === '{step_before}'")
    assert scatter.get_attribute("data-checksum") == before  # the same step draws the same layout
    page.wait_for_timeout(400)

    point = page.evaluate(FIND_POINT)
    assert point, "no point drawn on the canvas"
    page.mouse.move(point["x"], point["y"])
    tip = page.locator("[data-testid=emb-tooltip]")
    tip.wait_for(state="visible")
    assert "predicted" in tip.inner_text() and "confidence" in tip.inner_text()
    assert tip.locator("img").count() == 1
    screenshot(page, "embedding_hover")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function("() => new URLSearchParams(location.search).get('sel') !== null")

    page.check("[data-testid=emb-mosaic]")
    page.wait_for_function("() => document.querySelector('[data-testid=scatter]').dataset.mode === 'mosaic'")
    page.wait_for_timeout(800)  # the sprite sheet loads once
    screenshot(page, "embedding_mosaic")
    page.uncheck("[data-testid=emb-mosaic]")

    page.select_option("[data-testid=emb-color]", "cluster")
    page.wait_for_function("() => document.querySelector('[data-testid=emb-legend]').textContent.includes('cluster 0')")
    assert "color=cluster" in page.url
    clusters = page.locator("[data-testid=clusters]")
    clusters.locator(".cluster-card figure").first.wait_for()
    page.wait_for_selector("[data-testid=purity-chart] svg path.line")
    page.wait_for_selector("[data-testid=subcluster-list] .cluster-card")
    first = clusters.locator("[data-testid=cluster-list] figure").first
    pid = first.get_attribute("data-probe")
    first.click()
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('sel') === '{pid}'")
    page.wait_for_timeout(400)
    screenshot(page, "embedding_clusters")
    assert not page.js_errors, page.js_errors
