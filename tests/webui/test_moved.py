"""GET /api/runs/<run>/moved: the images whose neighbourhood in a layer changed most between two steps."""

import numpy as np

from deepviz.analysis.neighbourhood import neighbourhood_change

from .conftest import assert_api_error


def test_moved_ranks_images_by_the_neighbourhood_change_of_the_analysis_code(app, client, run_id):
    db = app.extensions["deepviz_db"]
    steps = db.steps(run_id)
    a, b = steps[0], steps[-1]
    res = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={b}&k=5&top=20")
    assert res.status_code == 200, res.get_data(as_text=True)
    body = res.get_json()
    change = neighbourhood_change(db.activations(a, "fc1", run_id), db.activations(b, "fc1", run_id), k=5)
    ids = db.probes(run_id)["probe_id"].to_numpy()
    assert body["probe_id"] == ids[np.argsort(-change, kind="stable")[:20]].tolist()
    assert body["change"] == sorted(body["change"], reverse=True) and body["change"][0] > body["change"][-1] >= 0
    assert body["mean"] == np.float64(change.mean()) and "Jaccard of the 5 nearest neighbours (cosine) in fc1" in body["measure"]
    same = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={a}").get_json()
    assert same["mean"] == 0 and set(same["change"]) == {0}


def test_moved_errors_name_the_bad_parameter(client, run_id):
    base = f"/api/runs/{run_id}/moved"
    assert_api_error(client.get(f"{base}?b=0"), 400, "Missing parameter 'a'")
    assert_api_error(client.get(f"{base}?a=0&b=9999"), 404, "9999")
    assert_api_error(client.get(f"{base}?a=0&b=0&k=0"), 400, "'k' must be between 1 and 50, got 0")
    assert_api_error(client.get(f"{base}?a=0&b=0&top=501"), 400, "'top' must be between 1 and 500, got 501")
    assert_api_error(client.get(f"{base}?a=0&b=0&layer=fc9"), 404, "Unknown layer 'fc9'")
