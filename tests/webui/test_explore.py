"""The exploration APIs: a confusion cell over the steps and the pairs that changed most, per-probe colour
statistics, filter change and dead filters, HDBSCAN's parameters, unit histories coloured by each step's own
predictions, and activation maximisation's out-of-distribution flag."""

from __future__ import annotations

import numpy as np
import pytest

from deepviz import StatsDB
from deepviz import analysis as A

from .conftest import assert_api_error
from .polling import settled
from .test_embedding import decode


@pytest.fixture()
def store(webui_db):
    return StatsDB(webui_db)


def api(run_id, path):
    return f"/api/runs/{run_id}/{path}"


def _classes(store, run_id):
    return len(store.run_info(run_id)["class_names"])


def test_the_steps_have_different_weights(store, run_id):
    # Everything below is checked across steps whose weights differ, so a view showing the current
    # step's numbers at every step would fail.
    steps = store.steps(run_id)
    conv = store.run_info(run_id)["conv_layers"][0]
    assert len(steps) >= 3
    assert not np.allclose(store.weights(steps[0], conv, run_id), store.weights(steps[-1], conv, run_id))


def test_a_cell_over_the_steps_is_its_count_at_each_step(client, store, run_id):
    steps = store.steps(run_id)
    n = _classes(store, run_id)
    series = A.confusion_series(store.predictions(steps[0], run_id)["label"],
                                np.stack([store.predictions(s, run_id)["pred"] for s in steps]), n)
    moving = np.argwhere((series.max(axis=0) != series.min(axis=0)) & ~np.eye(n, dtype=bool))
    assert len(moving), "no confusion pair changed over the run"
    for i, j in [moving[0], moving[-1], (0, 0)]:
        body = client.get(api(run_id, "confusion/pair"), query_string={"true": int(i), "pred": int(j)}).get_json()
        assert body["steps"] == steps and body["errors"] == []
        assert body["counts"] == series[:, i, j].tolist()
        assert body["class_total"] == series[:, i, :].sum(axis=1).tolist()
    assert len(set(client.get(api(run_id, "confusion/pair"), query_string={"true": int(moving[0][0]), "pred": int(moving[0][1])})
                   .get_json()["counts"])) > 1


def test_the_pairs_that_changed_most_since_the_step_before(client, store, run_id):
    steps = store.steps(run_id)
    n = _classes(store, run_id)
    first = client.get(api(run_id, f"steps/{steps[0]}/confusion/changes")).get_json()
    assert first["prev_step"] is None and first["rows"] == []
    for prev, step in zip(steps, steps[1:]):
        body = client.get(api(run_id, f"steps/{step}/confusion/changes"), query_string={"limit": 100}).get_json()
        a, b = store.predictions(prev, run_id), store.predictions(step, run_id)
        delta = A.confusion(b["label"], b["pred"], n) - A.confusion(a["label"], a["pred"], n)
        assert body["prev_step"] == prev and "change in count" in body["measure"]
        assert len(body["rows"]) == int(((delta != 0) & ~np.eye(n, dtype=bool)).sum())
        for r in body["rows"]:
            assert r["true"] != r["pred"] and r["change"] == delta[r["true"], r["pred"]] == r["after"] - r["before"]
        assert [abs(r["change"]) for r in body["rows"]] == sorted((abs(r["change"]) for r in body["rows"]), reverse=True)
    top = client.get(api(run_id, f"steps/{steps[-1]}/confusion/changes"), query_string={"limit": 2, "prev": steps[0]}).get_json()
    assert top["prev_step"] == steps[0] and len(top["rows"]) <= 2


def test_colour_stats_are_those_of_the_stored_probe_inputs(client, store, run_id):
    meta, arrays = decode(client.get(api(run_id, "analysis/colour_stats")).data)
    expected = A.colour_stats(store.probe_inputs(run_id), channels_last=False)
    assert meta["n"] == len(arrays["probe_id"]) == len(store.probes(run_id))
    assert arrays["probe_id"].tolist() == store.probes(run_id)["probe_id"].tolist()
    assert arrays["mean_rgb"].shape == (meta["n"], 3)
    for key, value in expected.items():
        np.testing.assert_allclose(arrays[key], value, rtol=1e-6)
    assert arrays["brightness"].std() > 0  # the digits differ in ink


def test_filters_report_a_bounded_change_and_dead_filters(client, store, run_id):
    steps = store.steps(run_id)
    for conv in store.run_info(run_id)["conv_layers"]:
        body = client.get(api(run_id, f"steps/{steps[-1]}/filters"), query_string={"conv": conv}).get_json()
        w = store.weights(steps[-1], conv, run_id)
        np.testing.assert_allclose(body["change"], A.filter_change(store.weights(steps[-2], conv, run_id), w), rtol=1e-5)
        assert all(0 <= c <= 1 for c in body["change"]) and body["change_measure"] == "|w - w_prev| / (|w| + |w_prev|)"
        assert body["dead"] == A.dead_filters(w).tolist() and body["dead_fraction"] == A.DEAD_FRACTION


def test_hdbscan_takes_its_two_parameters(client, store, run_id):
    step = store.steps(run_id)[-1]
    url = api(run_id, f"steps/{step}/clusters")
    meta, default = decode(settled(client, url, query_string={"layer": "fc1", "method": "hdbscan"}).data)
    assert (meta["min_cluster_size"], meta["min_samples"]) == (10, 3) and "k" not in meta
    X = store.activations(step, "fc1", run_id)
    np.testing.assert_array_equal(default["labels"], A.hdbscan(X, 10, 3))
    meta2, other = decode(settled(client, url, query_string={"layer": "fc1", "method": "hdbscan", "min_cluster_size": 3,
                                                        "min_samples": 1}).data)
    assert (meta2["min_cluster_size"], meta2["min_samples"]) == (3, 1)
    np.testing.assert_array_equal(other["labels"], A.hdbscan(X, 3, 1))
    purity = settled(client, api(run_id, "clusters/purity"), query_string={"layer": "fc1", "method": "hdbscan", "min_cluster_size": 3,
                                                                      "min_samples": 1}).get_json()
    assert purity["min_cluster_size"] == 3 and purity["purity"][-1] == pytest.approx(A.purity(other["labels"], store.predictions(step, run_id)["label"]))
    assert_api_error(client.get(url, query_string={"method": "hdbscan", "min_cluster_size": 1}), 400,
                     r"'min_cluster_size' must be between 2 and 500, got 1")
    assert_api_error(client.get(url, query_string={"method": "hdbscan", "min_samples": 501}), 400,
                     r"'min_samples' must be between 1 and 500, got 501")


def test_unit_history_says_whether_each_image_was_right_at_its_own_step(client, store, run_id):
    steps = store.steps(run_id)
    last = store.predictions(steps[-1], run_id)
    differs = 0
    for unit in range(8):
        meta, arrays = decode(client.get(api(run_id, "inspect/unit_history"), query_string={"layer": "fc1", "unit": unit, "k": 9}).data)
        assert arrays["correct"].shape == arrays["probe_id"].shape == (len(steps), 9)
        for row, step in enumerate(arrays["steps"]):
            p = store.predictions(int(step), run_id)
            own = p["correct"][np.searchsorted(p["probe_id"], arrays["probe_id"][row])]
            now = last["correct"][np.searchsorted(last["probe_id"], arrays["probe_id"][row])]
            assert arrays["correct"][row].tolist() == own.astype(int).tolist()
            differs += int((own != now).sum())
    assert differs > 0  # the current step's predictions would have coloured some rows wrongly


def test_activation_maximisation_flags_saturated_results(client, store, run_id):
    step = store.steps(run_id)[-1]
    url = api(run_id, f"steps/{step}/inspect/maximize")
    wild = client.get(url, query_string={"target": 3, "steps": 100, "lr": 0.5}).get_json()
    assert wild["score"] > wild["start_score"] and wild["saturation"] >= wild["saturation_limit"]
    assert wild["out_of_distribution"] is True and 0 < wild["saturation_margin"] < 1
    tame = client.get(url, query_string={"target": 3, "steps": 60, "lr": 0.01, "bound": 1e4}).get_json()
    assert tame["saturation"] < tame["saturation_limit"] and tame["out_of_distribution"] is False


def test_exploration_errors(client, run_id):
    assert_api_error(client.get(api(run_id, "confusion/pair"), query_string={"true": 0}), 400, "Missing parameter 'pred'")
    assert_api_error(client.get(api(run_id, "confusion/pair"), query_string={"true": 0, "pred": 10}), 400,
                     r"'pred' must be between 0 and 9, got 10")
    assert_api_error(client.get(api(run_id, "steps/0/confusion/changes"), query_string={"limit": 0}), 400,
                     r"'limit' must be between 1 and 100")
    assert_api_error(client.get(api("nope", "analysis/colour_stats")), 404, "nope")


def test_one_images_prediction_at_a_step_is_that_steps(client, store, run_id):
    # Inspect asks for the selected image's probabilities alone (not the (N, C) of every image): at each
    # step they are that step's stored row, and they differ between the first and last step.
    steps = store.steps(run_id)
    pid = int(store.probes(run_id)["probe_id"].iloc[7])
    rows = []
    for s in (steps[0], steps[-1]):
        body = client.get(api(run_id, f"steps/{s}/predictions/{pid}")).get_json()
        p = store.predictions(s, run_id)
        assert body["step"] == s and body["probe_id"] == pid
        np.testing.assert_allclose(body["probs"], p["probs"][7], rtol=1e-6)
        assert body["pred"] == int(p["pred"][7]) and body["correct"] == bool(p["correct"][7])
        assert body["confidence"] == pytest.approx(float(p["probs"][7].max()), rel=1e-6)
        rows.append(body["probs"])
    assert not np.allclose(rows[0], rows[1])
    assert_api_error(client.get(api(run_id, f"steps/{steps[0]}/predictions/999999")), 404, "Unknown probe image 999999")
    assert_api_error(client.get(api(run_id, f"steps/77777/predictions/{pid}")), 404, "77777")
