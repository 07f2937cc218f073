"""Every cache of the app is capped by bytes from the config, and stays under its cap while it serves."""

from __future__ import annotations

import numpy as np
import pytest

from deepviz.cache import size_of
from deepviz.errors import ConfigurationError

CAPS = {"DB_CACHE_BYTES": 3_000_000, "MODEL_CACHE_BYTES": 2_000_000, "RESULT_CACHE_BYTES": 1_000_000,
        "LAYOUT_CACHE_BYTES": 500_000, "HEAVY_CACHE_BYTES": 4_000_000}


def test_each_cache_takes_its_byte_cap_from_the_config(webui_db):
    from webui import create_app

    app = create_app(webui_db, test_config={"TESTING": True, **CAPS})
    s = app.extensions["deepviz"]
    assert app.extensions["deepviz_db"].cache.max_bytes == 3_000_000
    assert (s.models.max_bytes, s.results.max_bytes, s.layouts.max_bytes, s.heavy.max_bytes) == (
        2_000_000, 1_000_000, 500_000, 4_000_000)


@pytest.mark.parametrize("name", sorted(CAPS))
def test_a_bad_byte_cap_in_the_config_is_refused_naming_it(webui_db, name):
    from webui import create_app

    with pytest.raises(ConfigurationError, match=rf"{name} must be a whole number of bytes from 1 to .* got '1GB'"):
        create_app(webui_db, test_config={"TESTING": True, name: "1GB"})


def _saliency(client, rid, step, probe):
    response = client.get(f"/api/runs/{rid}/steps/{step}/inspect/attribution", query_string={"probe": probe, "method": "saliency"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {k: v for k, v in response.get_json().items() if k not in ("seconds", "cached")}


def test_the_model_cache_under_a_cap_of_one_model_keeps_answering_each_steps_own_weights(webui_db):
    from webui import create_app

    fresh = create_app(webui_db, test_config={"TESTING": True})
    db = fresh.extensions["deepviz_db"]
    rid = db.run_ids()[-1]
    first, last = db.steps(rid)[0], db.steps(rid)[-1]
    probe = int(db.probes(rid)["probe_id"][0])
    expected = {step: _saliency(fresh.test_client(), rid, step, probe) for step in (first, last)}
    assert expected[first] != expected[last]  # the two steps' weights differ
    model_bytes = size_of(fresh.extensions["deepviz"].models.get((rid, last)))
    assert model_bytes > 10_000  # the model's parameters are counted

    app = create_app(webui_db, test_config={"TESTING": True, "MODEL_CACHE_BYTES": int(model_bytes * 1.5),
                                            "RESULT_CACHE_SIZE": 1})
    client, models = app.test_client(), app.extensions["deepviz"].models
    for step in (first, last, first, last):
        assert _saliency(client, rid, step, probe) == expected[step]
        assert models.nbytes <= models.max_bytes and len(models) == 1


def test_the_db_cache_filled_with_every_steps_activations_stays_under_its_cap(webui_db):
    from webui import create_app

    app = create_app(webui_db, test_config={"TESTING": True, "DB_CACHE_BYTES": 200_000})
    db = app.extensions["deepviz_db"]
    rid = db.run_ids()[-1]
    layers = db.layers(None, rid)
    fresh = type(db)(db.root)
    for _ in range(2):
        for step in db.steps(rid):
            for layer in layers:
                np.testing.assert_array_equal(db.activations(step, layer, rid), fresh.activations(step, layer, rid))
                assert db.cache.nbytes <= 200_000
    assert len(db.cache) > 0
