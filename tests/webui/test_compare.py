"""The comparison of runs in the web UI: its API, checked against the store, and the pages in real Chromium.

One db of real digits trainings (two seeds, another model with other steps, a smaller probe set, a run of
disjoint probe ids), served by the real app."""

from __future__ import annotations

import numpy as np
import pytest

from deepviz import StatsDB
from deepviz.analysis import compare as C
from tests.compare_support import train_compare_db, train_disjoint_run

from .conftest import LiveServer, assert_api_error, screenshot


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    db = tmp_path_factory.mktemp("compare-ui") / "stats_db"
    ids = train_compare_db(db)
    ids["disjoint"] = train_disjoint_run(db)
    return {"db": db, **ids}


@pytest.fixture
def client(runs):
    from webui import create_app

    return create_app(runs["db"], test_config={"TESTING": True}).test_client()


@pytest.fixture
def server(runs):
    from webui import create_app

    srv = LiveServer(create_app(runs["db"], test_config={"TESTING": True}))
    yield srv
    srv.stop()


def shot(page, name: str) -> None:
    screenshot(page, f"compare_{name}")


def get(client, path, **params):
    r = client.get(path, query_string=params)
    assert r.status_code == 200, r.get_data(as_text=True)[:400]
    return r.get_json()


# --------------------------------------------------------------------------- API


def test_a_run_compared_with_itself_has_agreement_and_cka_one_at_every_matched_step(client, runs):
    pair = f"{runs['seed1']},{runs['seed1']}"
    summary = get(client, "/api/compare", runs=pair)
    assert summary["match"] == "step" and len(summary["matched"]) == 3
    assert all(r["agreement"] == 1.0 and r["acc_a"] == r["acc_b"] for r in summary["matched"])
    for layers in (("fc1", "fc1"), ("fc2", "fc2")):
        line = get(client, "/api/compare/cka_timeline", runs=pair, layer_a=layers[0], layer_b=layers[1])
        assert len(line["points"]) == 3 and all(p["cka"] == pytest.approx(1.0) for p in line["points"])
    for step in StatsDB(runs["db"]).steps(runs["seed1"]):
        grid = get(client, "/api/compare/cka", runs=pair, step_a=step, step_b=step)
        assert np.allclose(np.diag(np.array(grid["cka"], dtype=float)), 1.0)
        at = get(client, "/api/compare/step", runs=pair, step_a=step, step_b=step)
        assert at["agreement"] == 1.0 and at["right_a_wrong_b"]["count"] == at["wrong_a_right_b"]["count"] == 0
        assert at["learned"]["a"] == at["learned"]["b"] and not any(p for p in at["pairs"])


def test_the_step_answer_is_that_steps_data_at_two_steps(client, runs):
    db = StatsDB(runs["db"])
    ra, rb = runs["seed1"], runs["seed2"]
    seen = []
    for step in db.steps(ra)[1:]:
        at = get(client, "/api/compare/step", runs=f"{ra},{rb}", step_a=step, step_b=step)
        pa, pb = db.predictions(step, ra), db.predictions(step, rb)
        assert at["agreement"] == pytest.approx(np.mean(pa["pred"] == pb["pred"]))
        only_a = pa["probe_id"][pa["correct"] & ~pb["correct"]]
        assert at["right_a_wrong_b"]["count"] == only_a.size
        assert [it["probe_id"] for it in at["right_a_wrong_b"]["items"]] == only_a[:60].tolist()
        diff = np.array(at["confusion"]["b"]) - np.array(at["confusion"]["a"])
        assert diff.tolist() == at["confusion"]["diff"] and all(p["diff"] == diff[p["label"], p["pred"]] for p in at["pairs"])
        seen.append((at["agreement"], at["learned"]["a"]))
    assert seen[0] != seen[1]  # the weights moved between the steps, and so did the answer


def test_runs_with_other_steps_are_matched_by_epoch_and_can_be_pinned(client, runs):
    db = StatsDB(runs["db"])
    ra, rb = runs["seed1"], runs["fc64"]
    assert db.steps(ra) != db.steps(rb)
    summary = get(client, "/api/compare", runs=f"{ra},{rb}")
    assert summary["match"] == "epoch"
    assert [(r["step_a"], r["step_b"]) for r in summary["matched"]] == list(zip(db.steps(ra), db.steps(rb)))
    by_fraction = get(client, "/api/compare", runs=f"{ra},{rb}", match="fraction")
    assert by_fraction["match"] == "fraction" and all(0 <= r["fraction_b"] <= 1 for r in by_fraction["matched"])
    pinned = get(client, "/api/compare/step", runs=f"{ra},{rb}", step_a=db.steps(ra)[-1], step_b=db.steps(rb)[0])
    assert (pinned["step_a"], pinned["step_b"]) == (db.steps(ra)[-1], db.steps(rb)[0])


def test_probe_sets_that_differ_use_the_intersection_and_disjoint_ones_are_refused(client, runs):
    summary = get(client, "/api/compare", runs=f"{runs['seed1']},{runs['probe80']}")
    assert (summary["n_a"], summary["n_b"], summary["n_shared"]) == (120, 80, 80)
    at = get(client, "/api/compare/step", runs=f"{runs['seed1']},{runs['probe80']}", step_a=26, step_b=26)
    assert len(at["learned"]["probe_id"]) == 80
    r = client.get("/api/compare", query_string={"runs": f"{runs['seed1']},{runs['disjoint']}"})
    assert_api_error(r, 400, r"share no probe image: run A has 120 .*run B has 10 .*Compare runs whose probe sets overlap")


def test_embedding_puts_both_runs_in_one_frame(client, runs):
    def decode(body: bytes):  # webui.params.binary's layout
        import json
        import struct

        n = struct.unpack("<I", body[:4])[0]
        header = json.loads(body[4:4 + n])
        arrays = {s["name"]: np.frombuffer(body[4 + n + s["offset"]:], dtype=s["dtype"], count=int(np.prod(s["shape"])))
                  for s in header["arrays"]}
        return header["meta"], arrays

    same = client.get("/api/compare/embedding", query_string={"runs": f"{runs['seed1']},{runs['seed1']}", "step_a": 26, "step_b": 26})
    meta, arrays = decode(same.data)
    assert meta["disparity"] == pytest.approx(0, abs=1e-9) and np.allclose(arrays["xy_a"], arrays["xy_b"], atol=1e-5)
    other = client.get("/api/compare/embedding", query_string={"runs": f"{runs['seed1']},{runs['fc64']}", "step_a": 26, "step_b": 14})
    meta, arrays = decode(other.data)
    assert meta["step_b"] == 14 and meta["layer_b"] == "fc64" and arrays["xy_b"].size == 2 * 120
    assert 0 < meta["disparity"] < 1
    # B is already rotated onto A: aligning it again finds no further rotation
    a, b = arrays["xy_a"].reshape(-1, 2), arrays["xy_b"].reshape(-1, 2)
    _, again, _ = C.align_layouts(a, b)
    assert np.allclose(again * np.linalg.norm(b - b.mean(0)) / np.linalg.norm(again), b - b.mean(0), atol=1e-4)


@pytest.mark.parametrize("runs_param, status, match", [
    ("", 400, r"'runs' must name 2 to 8 runs, comma-separated \(run A first\); got 0"),
    ("onlyone", 400, r"got 1: 'onlyone'"),
    (",".join(["seed1"] * 9), 400, r"got 9"),
    ("seed1,nosuchrun", 404, r"Unknown run 'nosuchrun'. Available: "),
])
def test_bad_runs_parameters_are_refused(client, runs_param, status, match):
    assert_api_error(client.get("/api/compare", query_string={"runs": runs_param}), status, match)


def test_bad_match_and_steps_are_refused(client, runs):
    pair = f"{runs['seed1']},{runs['seed2']}"
    assert_api_error(client.get("/api/compare", query_string={"runs": pair, "match": "time"}), 400, r"'match' must be one of auto, step, epoch, fraction")
    assert_api_error(client.get("/api/compare/step", query_string={"runs": pair, "step_a": 26}), 400, r"Missing parameter 'step_b'")
    assert_api_error(client.get("/api/compare/step", query_string={"runs": pair, "step_a": 26, "step_b": 5}), 404, r"Unknown step 5 in run .*Available steps: 0, 13, 26")
    assert_api_error(client.get("/api/compare/cka_timeline", query_string={"runs": pair, "layer_a": "fc9"}), 404, r"Unknown layer 'fc9'. Available: conv1\.gap, conv2\.gap, fc1, fc2")


def test_galleries_and_pairs_are_cut_at_their_limits(client, runs, monkeypatch):
    import webui.compare

    monkeypatch.setattr(webui.compare, "GALLERY_MAX", 2)
    monkeypatch.setattr(webui.compare, "TOP_PAIRS", 3)
    at = get(client, "/api/compare/step", runs=f"{runs['seed1']},{runs['fc64']}", step_a=13, step_b=7)
    sides = [at["right_a_wrong_b"], at["wrong_a_right_b"]]
    assert max(g["count"] for g in sides) > 2 and all(len(g["items"]) == min(2, g["count"]) for g in sides)
    assert len(at["pairs"]) == 3


def test_runs_list_carries_hparams(client, runs):
    listed = {r["name"]: r for r in get(client, "/api/runs")}
    assert listed["fc64"]["hparams"]["lr"] == 0.001 and listed["seed1"]["hparams"]["lr"] == 0.003


# --------------------------------------------------------------------------- in Chromium


def test_runs_page_filters_picks_and_opens_a_comparison(server, page, runs):
    page.goto(server.url + "/")
    page.wait_for_selector("tr[data-run] [data-testid=pick-run]")
    assert page.locator("tbody tr[data-run]").count() == 5
    assert page.locator("thead th[data-sort='hp.lr']").count() == 1  # hparams are columns
    page.fill("[data-testid=runs-filter]", "lr=0.001")
    page.wait_for_function("document.querySelectorAll('tbody tr[data-run]').length === 1")
    assert page.get_attribute("tbody tr[data-run]", "data-run") == runs["fc64"]
    page.fill("[data-testid=runs-filter]", "")
    page.click("thead th[data-sort='final_acc']")  # ascending by final accuracy
    accs = [float(t) for t in page.locator("tbody tr[data-run] td.num:nth-of-type(7)").all_inner_texts()]
    assert accs == sorted(accs)
    for name in ("seed1", "fc64"):
        page.check(f"tr[data-run='{runs[name]}'] [data-testid=pick-run]")
    page.wait_for_selector("[data-testid=curve-val_acc] svg path")
    assert page.locator("[data-testid=curve-probe_acc] .series").count() == 2
    page.select_option("[data-testid=curves-x]", "epoch")
    page.wait_for_selector("[data-testid=curve-val_acc][data-x=epoch]")
    # epochs done: the initial step and the end of epoch 0 stay apart (0 and 1), three points per run
    assert page.locator("[data-testid=curve-probe_acc] .series >> nth=0 >> circle").count() == 3
    shot(page, "runs_picker")
    page.click("[data-testid=compare-picked]")
    page.wait_for_url("**/compare?runs=*")
    assert page.evaluate("new URLSearchParams(location.search).get('runs')").split(",") == [runs["seed1"], runs["fc64"]]
    page.wait_for_selector("[data-testid=compare-note]")
    assert "Steps matched by epoch" in page.inner_text("[data-testid=compare-note]")
    assert not page.js_errors, page.js_errors


def test_comparison_page_says_why_it_refuses_runs_that_share_nothing(server, page, runs):
    page.goto(f"{server.url}/compare?runs={runs['seed1']},{runs['disjoint']}")
    page.wait_for_selector("[data-testid=compare-head] .error")
    assert "share no probe image" in page.inner_text("[data-testid=compare-head] .error")


def _at_steps(page, a: int, b: int) -> None:
    page.wait_for_function(f"document.getElementById('compare').dataset.steps === '{a},{b}'")
    page.wait_for_function(f"document.querySelector('[data-testid=compare-scatter-b]').dataset.step === '{b}'")


def test_comparison_page_at_two_slider_positions(server, page, runs):
    db = StatsDB(runs["db"])
    ra, rb = runs["seed1"], runs["seed2"]
    page.goto(f"{server.url}/compare?runs={ra},{rb}")
    _at_steps(page, 26, 26)  # opens at the last matched step
    counts = {}
    for position, step in ((2, 26), (1, 13)):
        page.evaluate(f"""() => {{ const s = document.querySelector('[data-testid=compare-slider]');
                          s.value = '{position}'; s.dispatchEvent(new Event('change')); }}""")
        _at_steps(page, step, step)
        pa, pb = db.predictions(step, ra), db.predictions(step, rb)
        want = int(np.sum(pa["correct"] & ~pb["correct"]))
        page.wait_for_function(f"document.querySelector('[data-testid=right_a_wrong_b]').dataset.count === '{want}'")
        assert page.inner_text("[data-testid=compare-steps]").startswith(f"A: step {step}")
        assert page.get_attribute("[data-testid=compare-scatter-a]", "data-n") == "120"
        assert f"agree on {100 * np.mean(pa['pred'] == pb['pred']):.1f}%" in page.inner_text("[data-testid=agreement-now]")
        counts[step] = want
        shot(page, f"page_step{step}")
    assert page.evaluate("new URLSearchParams(location.search).get('step')") == "13"
    page.go_back()
    _at_steps(page, 26, 26)
    # pin B to its first step while A follows the slider
    page.select_option("[data-testid=pin_b]", "0")
    _at_steps(page, 26, 0)
    assert "(pinned)" in page.inner_text("[data-testid=compare-steps]")
    assert not page.js_errors, page.js_errors


def test_click_a_disagreement_image_shows_both_trajectories(server, page, runs):
    ra, rb = runs["seed1"], runs["seed2"]
    page.goto(f"{server.url}/compare?runs={ra},{rb}&step=13")
    page.wait_for_selector("[data-testid=right_a_wrong_b-gallery] figure, [data-testid=wrong_a_right_b-gallery] figure")
    figure = page.locator("[data-testid=right_a_wrong_b-gallery] figure, [data-testid=wrong_a_right_b-gallery] figure").first
    probe = int(figure.get_attribute("data-probe"))
    figure.click()
    page.wait_for_selector("[data-testid=trajectory-a] svg")
    page.wait_for_selector("[data-testid=trajectory-b] svg")
    assert page.evaluate("new URLSearchParams(location.search).get('sel')") == str(probe)
    assert page.get_attribute("[data-testid=trajectory-a]", "data-steps") == page.get_attribute("[data-testid=trajectory-b]", "data-steps") == "3"
    assert page.locator(f"[data-testid=learned-scatter] circle.selected[data-probe='{probe}']").count() == 1
    # the two runs disagree on being right at step 13: one trajectory ends right, the other wrong there
    db = StatsDB(runs["db"])
    row = int(np.searchsorted(db.probes(ra).probe_id.to_numpy(), probe))
    assert db.predictions(13, ra)["correct"][row] != db.predictions(13, rb)["correct"][row]
    # clicking a point of the learned scatter selects that image
    other = page.locator("[data-testid=learned-scatter] circle.learned-dot:not(.selected)").first
    other_id = other.get_attribute("data-probe")
    other.dispatch_event("click")
    page.wait_for_function(f"new URLSearchParams(location.search).get('sel') === '{other_id}'")
    page.wait_for_selector(f"[data-testid=learned-scatter] circle.selected[data-probe='{other_id}']")
    shot(page, "trajectories")
    assert not page.js_errors, page.js_errors


def test_cka_heatmap_of_two_models_and_a_picked_layer_pair(server, page, runs):
    ra, rb = runs["seed1"], runs["fc64"]
    page.goto(f"{server.url}/compare?runs={ra},{rb}")
    page.wait_for_selector("[data-testid=cka-heatmap] .cell")
    db = StatsDB(runs["db"])
    assert page.locator("[data-testid=cka-heatmap] .cell").count() == len(db.layers(None, ra)) * len(db.layers(None, rb))
    page.wait_for_selector("[data-testid=cka-line] path")
    page.click("[data-testid=cka-heatmap] .cell[data-i='0'][data-j='0']")
    la, lb = db.layers(None, ra)[0], db.layers(None, rb)[0]
    page.wait_for_function(f"new URLSearchParams(location.search).get('cka_b') === '{lb}'")
    page.wait_for_function(f"[...document.querySelectorAll('#cmp-cka h3')].some((e) => e.textContent.startsWith('{la} (A) × {lb} (B)'))")
    value = float(page.text_content("[data-testid=cka-heatmap] .cell[data-i='0'][data-j='0'] text"))
    assert 0 < value <= 1
    shot(page, "cka")
    assert not page.js_errors, page.js_errors


def test_a_group_of_runs_offers_each_as_run_b(server, page, runs):
    group = [runs["seed1"], runs["seed2"], runs["fc64"]]
    page.goto(f"{server.url}/compare?runs={','.join(group)}")
    page.wait_for_selector("[data-testid=compare-note]")
    assert "by step" in page.inner_text("[data-testid=compare-note]")
    assert page.locator("[data-testid=pick-b] option").count() == 3
    page.select_option("[data-testid=pick-b]", runs["fc64"])
    page.wait_for_function(f"new URLSearchParams(location.search).get('runs') === '{runs['seed1']},{runs['fc64']},{runs['seed2']}'")
    page.wait_for_function("document.querySelector('[data-testid=compare-note]').textContent.includes('by epoch')")
    assert not page.js_errors, page.js_errors
