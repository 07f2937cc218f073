"""Panel APIs: confusion, cell images, flows, trajectory, neighbours, metrics, filters, and errors."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from deepviz import StatsDB

from .conftest import assert_api_error


@pytest.fixture()
def store(webui_db):
    return StatsDB(webui_db)


def api(run_id, path):
    return f"/api/runs/{run_id}/{path}"


# --------------------------------------------------------------------------- confusion


def test_confusion_sums_to_n_and_its_diagonal_counts_the_right_answers(client, store, run_id):
    for step in store.steps(run_id):
        body = client.get(api(run_id, f"steps/{step}/confusion")).get_json()
        m = np.array(body["matrix"])
        p = store.predictions(step, run_id)
        n_classes = len(store.run_info(run_id)["class_names"])
        assert m.shape == (n_classes, n_classes)
        assert m.sum() == body["n"] == len(p["pred"])
        assert np.trace(m) == body["correct"] == int(p["correct"].sum())
        assert (m.sum(axis=1) == np.bincount(p["label"], minlength=n_classes)).all()  # rows are true classes


def test_confusion_delta_is_the_change_from_the_previous_step(client, store, run_id):
    first, *rest = store.steps(run_id)
    body = client.get(api(run_id, f"steps/{first}/confusion")).get_json()
    assert body["prev_step"] is None and body["delta"] is None
    for prev, step in zip([first, *rest], rest):
        body = client.get(api(run_id, f"steps/{step}/confusion")).get_json()
        delta = np.array(body["delta"])
        assert body["prev_step"] == prev and delta.sum() == 0
        assert (delta == np.array(body["matrix"]) - np.array(body["prev"])).all()
    explicit = client.get(api(run_id, f"steps/{rest[-1]}/confusion?prev={first}")).get_json()
    assert explicit["prev_step"] == first and np.array(explicit["delta"]).sum() == 0


def test_cell_images_are_the_cell_sorted_by_confidence(client, store, run_id):
    step = store.steps(run_id)[-1]
    m = np.array(client.get(api(run_id, f"steps/{step}/confusion")).get_json()["matrix"])
    off = np.argwhere((m > 0) & ~np.eye(len(m), dtype=bool))
    i, j = off[0]
    body = client.get(api(run_id, f"steps/{step}/images?true={i}&pred={j}")).get_json()
    assert body["total"] == m[i, j] == len(body["probe_id"])
    assert set(body["label"]) == {i} and set(body["pred"]) == {j}
    assert body["confidence"] == sorted(body["confidence"], reverse=True)


def test_misclassified_images_are_all_wrong_and_most_confident_first(client, store, run_id):
    step = store.steps(run_id)[-1]
    body = client.get(api(run_id, f"steps/{step}/images?correct=0&sort=confidence&limit=5")).get_json()
    p = store.predictions(step, run_id)
    assert body["total"] == int((~p["correct"]).sum()) and len(body["probe_id"]) == min(5, body["total"])
    assert all(t != q for t, q in zip(body["label"], body["pred"]))
    assert body["confidence"] == sorted(body["confidence"], reverse=True)
    ascending = client.get(api(run_id, f"steps/{step}/images?correct=1&sort=loss&order=asc")).get_json()
    assert ascending["loss"] == sorted(ascending["loss"])


def test_flows_agree_with_the_two_steps_predictions(client, store, run_id):
    a, b = store.steps(run_id)[0], store.steps(run_id)[-1]
    body = client.get(api(run_id, f"flows?a={a}&b={b}")).get_json()
    pa, pb = store.predictions(a, run_id), store.predictions(b, run_id)
    moved = pa["pred"] != pb["pred"]
    assert body["changed"] == int(moved.sum()) == sum(r["count"] for r in body["rows"])
    counts = [r["count"] for r in body["rows"]]
    assert counts == sorted(counts, reverse=True)
    row_of = {int(pid): k for k, pid in enumerate(pa["probe_id"])}
    pairs = {(r["from_pred"], r["to_pred"]): r["count"] for r in body["rows"]}
    for r in body["rows"]:
        assert r["from_pred"] != r["to_pred"] and len(r["probe_ids"]) == r["count"]
        rows = [row_of[pid] for pid in r["probe_ids"]]
        assert (pa["pred"][rows] == r["from_pred"]).all() and (pb["pred"][rows] == r["to_pred"]).all()
        assert r["fixed"] == int((pb["label"][rows] == r["to_pred"]).sum())
        assert r["broken"] == int((pa["label"][rows] == r["from_pred"]).sum())
        assert r["back"] == pairs.get((r["to_pred"], r["from_pred"]), 0)
    default = client.get(api(run_id, "flows")).get_json()
    assert (default["a"], default["b"]) == tuple(store.steps(run_id)[-2:])


# --------------------------------------------------------------------------- one image


def test_trajectory_has_one_row_per_step_summing_to_one(client, store, run_id):
    steps = store.steps(run_id)
    pid = int(store.probes(run_id)["probe_id"].iloc[5])
    body = client.get(api(run_id, f"probes/{pid}/trajectory")).get_json()
    probs = np.array(body["probs"])
    assert body["steps"] == steps and probs.shape[0] == len(steps) and body["errors"] == []
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert body["pred"] == probs.argmax(axis=1).tolist()
    flips = [s for k, s in enumerate(steps) if k and body["pred"][k] != body["pred"][k - 1]]
    assert body["flips"] == flips
    right = np.array(body["pred"]) == body["label"]
    if body["first_stable_correct"] is None:
        assert not right[-1]
    else:
        k = steps.index(body["first_stable_correct"])
        assert right[k:].all() and (k == 0 or not right[k - 1])


def _wrong_probe(store, run_id):
    step = store.steps(run_id)[-1]
    p = store.predictions(step, run_id)
    k = int(np.flatnonzero(~p["correct"])[0])
    return step, int(p["probe_id"][k]), int(p["label"][k]), int(p["pred"][k])


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sqeuclidean", "minkowski"])
def test_neighbours_are_of_the_asked_class_nearest_first_and_never_itself(client, store, run_id, metric):
    step, pid, label, pred = _wrong_probe(store, run_id)
    body = client.get(api(run_id, f"steps/{step}/neighbours?probe={pid}&metric={metric}&k=5&p=2.5")).get_json()
    assert (body["label"], body["pred"], body["metric"]) == (label, pred, metric)
    assert body["layer"] == store.layers(step, run_id)[-2]  # the default layer
    assert {n["label"] for n in body["among_pred"]} == {pred}
    assert {n["label"] for n in body["among_true"]} == {label}
    assert label not in {n["label"] for n in body["among_other"]}
    for group in ("among_pred", "among_true", "among_other", "pixel"):
        found = body[group]
        assert 0 < len(found) <= 5 and pid not in {n["probe_id"] for n in found}
        d = [n["distance"] for n in found]
        assert d == sorted(d) and all(0 <= n["similarity"] <= 100 for n in found)


def test_neighbours_in_another_layer_and_in_pixel_space(client, store, run_id):
    step, pid, _, _ = _wrong_probe(store, run_id)
    layer = store.layers(step, run_id)[-1]
    body = client.get(api(run_id, f"steps/{step}/neighbours?probe={pid}&layer={layer}&metric=euclidean&k=3")).get_json()
    assert body["layer"] == layer
    # pixel-space neighbours do not depend on the layer
    other = client.get(api(run_id, f"steps/{step}/neighbours?probe={pid}&metric=euclidean&k=3")).get_json()
    assert body["pixel"] == other["pixel"]
    X = store.probe_inputs(run_id).reshape(len(store.probes(run_id)), -1)
    ids = store.probes(run_id)["probe_id"].to_numpy()
    row = int(np.flatnonzero(ids == pid)[0])
    d = np.linalg.norm(X - X[row], axis=1)
    d[row] = np.inf
    assert body["pixel"][0]["probe_id"] == int(ids[np.argmin(d)])
    # the same images at another step, with that step's predictions
    first = store.steps(run_id)[0]
    earlier = client.get(api(run_id, f"steps/{first}/neighbours?probe={pid}&metric=euclidean&k=3")).get_json()
    assert [n["probe_id"] for n in earlier["pixel"]] == [n["probe_id"] for n in body["pixel"]]
    p0 = store.predictions(first, run_id)
    assert [n["pred"] for n in earlier["pixel"]] == [int(p0["pred"][ids == n["probe_id"]][0]) for n in earlier["pixel"]]


# --------------------------------------------------------------------------- metrics and filters


def test_metrics_series_and_per_class_accuracy(client, store, run_id):
    body = client.get(api(run_id, "metrics")).get_json()
    steps = store.steps(run_id)
    assert body["steps"] == steps and body["errors"] == []
    for name in ("probe_acc", "probe_loss", "val_acc", "val_loss", "train_loss"):
        assert len(body["series"][name]) == len(steps)
    n_classes = len(store.run_info(run_id)["class_names"])
    acc = np.array(body["per_class_acc"], dtype=float)
    assert acc.shape == (n_classes, len(steps))
    assert np.nanmin(acc) >= 0 and np.nanmax(acc) <= 1
    # the per-class accuracies weighted by class size give the probe accuracy
    p = store.predictions(steps[-1], run_id)
    sizes = np.bincount(p["label"], minlength=n_classes)
    assert np.isclose((acc[:, -1] * sizes).sum() / sizes.sum(), body["series"]["probe_acc"][-1])


def test_filters_layout_change_and_png(client, store, run_id):
    from PIL import Image

    from deepviz.introspect import filter_images

    steps = store.steps(run_id)
    convs = store.run_info(run_id)["conv_layers"]
    first = client.get(api(run_id, f"steps/{steps[0]}/filters")).get_json()
    assert first["conv"] == convs[0] and first["change"] is None and first["prev_step"] is None
    for conv in convs:
        body = client.get(api(run_id, f"steps/{steps[-1]}/filters?conv={conv}")).get_json()
        w, before = store.weights(steps[-1], conv, run_id), store.weights(steps[-2], conv, run_id)
        assert body["shape"] == list(w.shape) and body["n_filters"] == len(w) == len(body["change"])
        # the bounded change |w - w0| / (|w| + |w0|) (the unbounded |w - w0| / |w0| read 127013150 % for a revived filter)
        norm = lambda a: np.linalg.norm(a.reshape(len(w), -1), axis=1)  # noqa: E731
        expected = norm(w - before) / (norm(w) + norm(before))
        assert np.allclose(body["change"], expected, rtol=1e-4) and max(body["change"]) <= 1
        assert body["rgb"] is False  # digits are grey
        res = client.get(api(run_id, f"steps/{steps[-1]}/filters.png?conv={conv}"))
        assert res.status_code == 200 and res.mimetype == "image/png"
        img = Image.open(io.BytesIO(res.data))
        gap = body["gap"]
        assert img.size == (gap + body["cols"] * (body["cell_w"] + gap), gap + body["rows"] * (body["cell_h"] + gap))
        # every cell is the one filter-to-image function's tile (the Inspect tab's too), zoomed
        tiles = np.repeat((filter_images(w) * 255).round().astype(np.uint8), 3, axis=-1)
        z = body["zoom"]
        for i in (0, len(w) - 1):
            r, c = divmod(i, body["cols"])
            y, x = gap + r * (body["cell_h"] + gap), gap + c * (body["cell_w"] + gap)
            cell = np.asarray(img.convert("RGB"))[y : y + body["cell_h"], x : x + body["cell_w"]]
            assert np.array_equal(cell, tiles[i].repeat(z, axis=0).repeat(z, axis=1)), (conv, i)


# --------------------------------------------------------------------------- errors


def test_unknown_run_step_probe_layer_and_conv_are_404s_naming_them(client, run_id):
    assert_api_error(client.get("/api/runs/nope/steps/0/confusion"), 404, "Unknown run 'nope'")
    assert_api_error(client.get(api(run_id, "steps/99999/confusion")), 404, "Unknown step 99999")
    assert_api_error(client.get(api(run_id, "steps/0/confusion?prev=77777")), 404, "Unknown step 77777")
    assert_api_error(client.get(api(run_id, "flows?a=88888")), 404, "Unknown step 88888")
    assert_api_error(client.get(api(run_id, "probes/999999/trajectory")), 404, "Unknown probe image 999999")
    assert_api_error(client.get(api(run_id, "steps/0/neighbours?probe=999999")), 404, "Unknown probe image 999999")
    assert_api_error(client.get(api(run_id, "steps/0/neighbours?probe=2&layer=fc9")), 404, "Unknown layer 'fc9'. Available: conv1.gap, conv2.gap, fc1, fc2.")
    assert_api_error(client.get(api(run_id, "steps/0/filters?conv=conv9")), 404, "Unknown conv layer 'conv9'. Available: conv1, conv2")
    assert_api_error(client.get(api(run_id, "steps/0/filters.png?conv=fc1")), 404, "Unknown conv layer 'fc1'")
    assert_api_error(client.get("/api/runs/nope/metrics"), 404, "Unknown run 'nope'")


@pytest.mark.parametrize(
    "path, match",
    [
        ("steps/abc/confusion", "Step must be an integer"),
        ("steps/0/confusion?prev=x", "Parameter 'prev' must be a step"),
        ("steps/0/images?true=x", "Parameter 'true' must be an integer"),
        ("steps/0/images?pred=99", "Parameter 'pred' must be between 0 and 9"),
        ("steps/0/images?correct=maybe", "Parameter 'correct' must be one of"),
        ("steps/0/images?sort=name", "Parameter 'sort' must be one of confidence, loss, probe_id"),
        ("steps/0/images?limit=0", "Parameter 'limit' must be between"),
        ("flows?b=1.5", "Parameter 'b' must be a step"),
        ("probes/abc/trajectory", "Parameter 'probe' must be a probe image id"),
        ("steps/0/neighbours", "Missing parameter 'probe'"),
        ("steps/0/neighbours?probe=2&metric=manhattan", "Parameter 'metric' must be one of cosine, euclidean"),
        ("steps/0/neighbours?probe=2&metric=minkowski&p=0.5", "Parameter 'p' must be a finite number between 1.0"),
        ("steps/0/neighbours?probe=2&p=nan", "Parameter 'p' must be a finite number"),
        ("steps/0/neighbours?probe=2&k=1000", "Parameter 'k' must be between 1 and 100"),
    ],
)
def test_malformed_parameters_are_400s_naming_them(client, run_id, path, match):
    assert_api_error(client.get(api(run_id, path)), 400, match)


@pytest.fixture()
def corrupt_db(webui_db, tmp_path):
    """A copy of the db whose middle step's predictions file is truncated (the shared fixture stays intact)."""
    db = tmp_path / "stats_db"
    shutil.copytree(webui_db, db, ignore=shutil.ignore_patterns(".*.tmp"))  # (another app may be writing a derived table)
    store = StatsDB(db)
    run = store.run_ids()[-1]
    bad = store.steps(run)[1]
    path = db / "predictions" / f"run_id={run}" / f"step={bad}" / "predictions.parquet"
    path.write_bytes(path.read_bytes()[:100])
    return db, run, bad


def test_a_corrupt_step_fails_alone(corrupt_db):
    from webui import create_app

    db, run, bad = corrupt_db
    client = create_app(db, test_config={"TESTING": True}).test_client()
    steps = StatsDB(db).steps(run)
    good = [s for s in steps if s != bad]
    assert_api_error(client.get(api(run, f"steps/{bad}/confusion")), 500, rf"step={bad}/predictions\.parquet.*truncated or corrupt")
    assert_api_error(client.get(api(run, f"steps/{bad}/images?correct=0")), 500, "truncated or corrupt")
    ok = client.get(api(run, f"steps/{good[0]}/confusion"))
    assert ok.status_code == 200
    after = client.get(api(run, f"steps/{steps[steps.index(bad) + 1]}/confusion")).get_json()
    assert after["delta"] is None and "truncated or corrupt" in after["prev_error"]
    traj = client.get(api(run, "probes/2/trajectory")).get_json()
    assert traj["steps"] == good and [e["step"] for e in traj["errors"]] == [bad]
    metrics = client.get(api(run, "metrics")).get_json()
    assert metrics["steps"] == steps and [e["step"] for e in metrics["errors"]] == [bad]
    assert all(row[steps.index(bad)] is None for row in metrics["per_class_acc"])
    # filters do not read predictions: still fine at the bad step
    assert client.get(api(run, f"steps/{bad}/filters")).status_code == 200


# --------------------------------------------------------------------------- small synthetic runs


def _write_run(writer, run_id, *, conv_layers, input_shape, n=12, n_classes=3, steps=(0, 10), ids_by_step=None):
    from datetime import datetime, timezone

    rng = np.random.default_rng(len(run_id))
    ids = np.arange(n)
    labels = ids % n_classes
    writer.write_run(
        {
            "run_id": run_id, "name": run_id, "started_at": datetime.now(timezone.utc), "ended_at": datetime.now(timezone.utc),
            "deepviz_version": "test", "model_class": "tests:Nothing", "model_summary": "", "n_params": 0, "hparams": "{}",
            "dataset": "synthetic", "class_names": [f"c{i}" for i in range(n_classes)], "input_shape": list(input_shape),
            "layers": ["fc"], "conv_layers": conv_layers, "n_probe": n, "probe_seed": 0, "world_size": 1, "activation_dtype": "float32",
        }
    )
    writer.write_probes(run_id, ids, labels, [f"c{i}" for i in range(n_classes)], [b"png"] * n, rng.random((n, *input_shape), dtype=np.float32))
    for step in steps:
        step_ids = ids if ids_by_step is None else ids_by_step[step]
        probs = rng.dirichlet(np.ones(n_classes), size=n).astype(np.float32)
        writer.write_snapshot(
            run_id, step, epoch=0, trigger="epoch", probe_ids=step_ids, labels=labels, probs=probs, loss=rng.random(n),
            activations={"fc": rng.normal(size=(n, 5))}, weights={c: rng.normal(size=(4, input_shape[0], 3, 3)) for c in conv_layers},
            metrics={}, activation_dtype="float32",
        )


@pytest.fixture(scope="module")
def synthetic_client(tmp_path_factory):
    from deepviz import StatsWriter
    from webui import create_app

    db = tmp_path_factory.mktemp("synthetic") / "stats_db"
    writer = StatsWriter(db)
    _write_run(writer, "rgb", conv_layers=["conv1"], input_shape=(3, 6, 6))
    _write_run(writer, "noconv", conv_layers=[], input_shape=(1, 6, 6))
    _write_run(writer, "nosteps", conv_layers=[], input_shape=(1, 6, 6), steps=())
    _write_run(writer, "shuffled", conv_layers=[], input_shape=(1, 6, 6), ids_by_step={0: np.arange(12), 10: np.arange(100, 112)})
    return create_app(db, test_config={"TESTING": True}).test_client()


def test_rgb_filters_are_drawn_in_colour(synthetic_client):
    from PIL import Image

    body = synthetic_client.get("/api/runs/rgb/steps/10/filters").get_json()
    assert body["rgb"] is True and body["shape"] == [4, 3, 3, 3] and len(body["change"]) == 4
    img = np.asarray(Image.open(io.BytesIO(synthetic_client.get("/api/runs/rgb/steps/10/filters.png").data)).convert("RGB"))
    gap = body["gap"]
    cell = img[gap : gap + body["cell_h"], gap : gap + body["cell_w"]].astype(int)
    assert np.abs(cell[..., 0] - cell[..., 1]).max() > 0  # not grey


def test_runs_without_filters_steps_or_a_stable_probe_set_say_so(synthetic_client):
    assert_api_error(synthetic_client.get("/api/runs/noconv/steps/0/filters"), 404, "stored no conv layer weights")
    assert_api_error(synthetic_client.get("/api/runs/nosteps/flows"), 404, "has no steps yet")
    assert_api_error(synthetic_client.get("/api/runs/shuffled/flows?a=0&b=10"), 500, "hold different probe images")
