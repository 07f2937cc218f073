"""A stats db from elsewhere is data, never code.

A run row naming ``subprocess:Popen`` with ``{"args": "touch ...", "shell": true}``
ran that shell command on a plain GET of the Inspect tab: the model class was
imported and called with the stored hparams. Now the class must be an
``nn.Module`` subclass before anything is called; every route is requested and
nothing runs, the model views say why they refuse, and the rest of the UI works.
"""

from __future__ import annotations

import json

import pytest

from deepviz import StatsDB, StatsWriter

from .routes import calls

#: The views that rebuild the run's model; every other route reads only stored data.
MODEL_VIEWS = {"inspect.layers", "inspect.attribution", "inspect.activation_maps", "inspect.filters",
               "inspect.maximize", "search.search_upload"}


def _hostile(marker) -> dict:
    """hparams with which each of these callables, called as the old load_model did, writes ``marker``."""
    return {
        "subprocess:Popen": {"args": f"touch {marker}", "shell": True},
        "os:system": {"command": f"touch {marker}"},
    }


@pytest.mark.parametrize("model_class", ["subprocess:Popen", "os:system"])
def test_every_route_runs_nothing_from_the_db(db_copy, tmp_path, model_class):
    from webui import create_app

    marker = tmp_path / "pwned"
    run = StatsDB(db_copy).resolve_run()
    hparams = _hostile(marker)[model_class]
    StatsWriter(db_copy).update_run(run, model_class=model_class, hparams=json.dumps(hparams))
    app = create_app(db_copy, test_config={"TESTING": True})
    client = app.test_client()
    store = app.extensions["deepviz_db"]
    # The first step has no checkpoint (the old code called the class with the hparams there), the last has one.
    routes = [c for step in (store.steps(run)[0], store.steps(run)[-1]) for c in calls(app, store, run, step)]
    refused, answered = set(), set()
    for call in routes:
        res = client.open(call.url, method=call.method, **call.body)
        assert not marker.exists(), f"{call.url} ran the db's {model_class}"
        if res.status_code == 200:
            answered.add(call.endpoint)
            continue
        assert res.status_code == 400, (call.url, res.status_code, res.get_data(as_text=True)[:300])
        body = res.get_json()
        assert body["ok"] is False and body["status"] == 400
        assert f"names '{model_class}' as its model class" in body["error"], body["error"]
        assert "not a subclass of torch.nn.Module: deepviz refuses to call it" in body["error"], body["error"]
        refused.add(call.endpoint)
    assert refused == MODEL_VIEWS
    # Predictions, confusion, embedding, metrics, SQL, pages...: everything else answers 200.
    assert answered == {c.endpoint for c in routes} - MODEL_VIEWS and "confusion.confusion" in answered
    assert not marker.exists()
