"""When the sub-clusters of one class separate: the silhouette of the grouping found at one step, at
every step, from each step's own activations; and, in Chromium, its chart and the colour-by-sub-group."""

from __future__ import annotations

import numpy as np
import pytest

from deepviz import StatsDB
from deepviz.analysis.separation import separation

from .conftest import assert_api_error
from .test_embedding import decode


def _steps(client, run_id) -> list[int]:
    return [s["step"] for s in client.get(f"/api/runs/{run_id}").get_json()["steps"]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_each_steps_value_is_the_silhouette_of_that_steps_own_activations(client, run_id, webui_db, metric):
    steps = _steps(client, run_id)
    ref = steps[-1]
    sub = decode(client.get(f"/api/runs/{run_id}/steps/{ref}/subclusters?layer=fc1&cls=3&k=2").data)[1]
    body = client.get(f"/api/runs/{run_id}/steps/{ref}/subclusters/separation?layer=fc1&cls=3&k=2&metric={metric}").get_json()
    assert body["steps"] == steps and len(body["values"]) == len(steps) and body["errors"] == {}
    assert (body["measure"], body["metric"], body["range"], body["step"]) == ("silhouette", metric, [-1, 1], ref)
    store = StatsDB(webui_db)
    acts = [store.activations(t, "fc1", run_id)[sub["index"]] for t in steps]
    assert not np.allclose(acts[0], acts[-1])  # the weights, and so the activations, differ between steps
    for t, X, v in zip(steps, acts, body["values"]):
        assert v == pytest.approx(separation(X, sub["labels"], metric), abs=1e-6), t
    assert len({round(v, 6) for v in body["values"]}) == len(steps)


def test_the_grouping_is_the_reference_steps(client, run_id):
    """Another reference step gives another grouping, and so (in general) other values."""
    steps = _steps(client, run_id)
    a = client.get(f"/api/runs/{run_id}/steps/{steps[0]}/subclusters/separation?layer=fc1&cls=3&k=3").get_json()
    b = client.get(f"/api/runs/{run_id}/steps/{steps[-1]}/subclusters/separation?layer=fc1&cls=3&k=3").get_json()
    assert a["step"] == steps[0] and b["step"] == steps[-1] and a["values"] != b["values"]


def test_separation_errors_name_the_bad_parameter(client, run_id):
    base = f"/api/runs/{run_id}/steps/0/subclusters/separation"
    assert_api_error(client.get(base), 400, "Missing parameter 'cls'")
    assert_api_error(client.get(f"{base}?cls=10"), 400, "'cls' must be between 0 and 9, got 10")
    assert_api_error(client.get(f"{base}?cls=3&k=21"), 400, "'k' must be between 2 and 20, got 21")
    assert_api_error(client.get(f"{base}?cls=3&k=1"), 400, "'k' must be between 2 and 20, got 1")
    assert_api_error(client.get(f"{base}?cls=3&metric=manhattan"), 400, "'metric' must be one of cosine, euclidean")
    assert_api_error(client.get(f"{base}?cls=3&layer=conv9"), 404, "Unknown layer 'conv9'")
