"""GET /api/runs/<run>/moved: the images whose neighbourhood in a layer changed most between two steps."""

import numpy as np

from deepviz.analysis.neighbourhood import neighbour_drift, neighbourhood_change

from .conftest import assert_api_error


def test_moved_ranks_images_by_the_neighbourhood_change_of_the_analysis_code(app, client, run_id):
    db = app.extensions["deepviz_db"]
    steps = db.steps(run_id)
    a, b = steps[0], steps[-1]
    res = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={b}&k=5&top=20")
    assert res.status_code == 200, res.get_data(as_text=True)
    body = res.get_json()
    XA, XB = db.activations(a, "fc1", run_id), db.activations(b, "fc1", run_id)
    change, drift = neighbourhood_change(XA, XB, k=5), neighbour_drift(XA, XB, k=5)
    ids = db.probes(run_id)["probe_id"].to_numpy()
    # most changed first; among equal changes, the larger drift of the old neighbours first
    assert body["probe_id"] == ids[np.lexsort((-drift, -change))[:20]].tolist()
    assert body["drift"] == np.round(drift[np.lexsort((-drift, -change))[:20]], 4).tolist()
    assert "drift" in body["tie_break"] and body["ranked"] == len(ids)
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
    assert_api_error(client.get(f"{base}?a=0&b=0&rows=1-x"), 400, "row ranges like '0-9.15' or a 'b' bitset; got part '1-x'")
    assert_api_error(client.get(f"{base}?a=0&b=0&rows=b!"), 400, "outside base64url")
    assert_api_error(client.get(f"{base}?a=0&b=0&rows={'1.' * 20001}"), 400, "'rows' is too long")


def test_ties_on_the_change_are_ordered_by_drift_not_by_probe_order(app, client, run_id):
    db = app.extensions["deepviz_db"]
    a, b = db.steps(run_id)[0], db.steps(run_id)[-1]
    body = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={b}&k=5&top=500").get_json()
    change, drift = np.asarray(body["change"]), np.asarray(body["drift"])
    tied = [v for v in set(body["change"]) if (change == v).sum() > 1]
    assert tied, "the run gives no tie to break"
    for v in tied:
        d = drift[change == v]
        assert (np.diff(d) <= 0).all() and d[0] > d[-1]  # each tie ordered by drift, which tells them apart


def test_rows_ranks_only_the_selection(app, client, run_id):
    db = app.extensions["deepviz_db"]
    a, b = db.steps(run_id)[0], db.steps(run_id)[-1]
    ids = db.probes(run_id)["probe_id"].to_numpy()
    full = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={b}&k=5&top=500").get_json()
    part = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={b}&k=5&top=500&rows=3-10.40").get_json()
    chosen = set(ids[[*range(3, 11), 40]].tolist())
    assert part["ranked"] == 9 and set(part["probe_id"]) == chosen
    assert part["probe_id"] == [p for p in full["probe_id"] if p in chosen]  # the same order, restricted
    # the bitset form: digit C (2) sets bit 1 of the first six rows, B (1) bit 0 of the next six
    bits = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={b}&rows=bCB").get_json()
    assert set(bits["probe_id"]) == {int(ids[1]), int(ids[6])}
    none = client.get(f"/api/runs/{run_id}/moved?layer=fc1&a={a}&b={b}&rows=5000").get_json()
    assert none["ranked"] == 0 and none["probe_id"] == [] and none["mean"] is None
