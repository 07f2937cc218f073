"""A stats db from elsewhere is data, never code.

A run row naming ``subprocess:Popen`` with ``{"args": "touch ...", "shell": true}``
ran that shell command on a plain GET of the Inspect tab: the model class was
imported and called with the stored hparams. Now the class must be an
``nn.Module`` subclass before anything is called; every route is requested and
nothing runs, the model views say why they refuse, and the rest of the UI works.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepviz import StatsDB, StatsWriter
from deepviz.errors import CorruptDataError

from .routes import calls, send

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
        res = send(client, call)
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


# --------------------------------------------------------------------------- blobs that do not match what they claim


def _small_db(tmp_path):
    from tests.test_store import write_run, write_step

    writer = StatsWriter(tmp_path)
    write_run(writer)
    write_step(writer, n=3, d=4)
    writer.write_probes("r1", [0, 1, 2], [0, 1, 2], ["c0", "c1", "c2"], [b"png"] * 3,
                        np.arange(12, dtype=np.float32).reshape(3, 1, 2, 2) / 255)
    return tmp_path


def _rewrite(path, name, field_type=None, metadata=None, cells=None):
    """Replace column ``name`` of a Parquet file: its type and cells, or only its field's metadata."""
    table = pq.read_table(path)
    field = table.schema.field(name)
    column = table.column(name) if cells is None else pa.array(cells, field_type or field.type)
    field = pa.field(name, column.type, metadata=field.metadata if metadata is None else metadata)
    pq.write_table(table.set_column(table.schema.get_field_index(name), field, column), path)


BAD_VECTORS = [
    ({b"deepviz.dtype": b"<f8", b"deepviz.width": b"1"}, None, r"says it holds '<f8'; allowed: <f2, <f4"),
    ({b"deepviz.dtype": b"<f2", b"deepviz.width": b"5"}, None,
     r"has rows of 8 bytes, but its metadata says 5 values of <f2 \(2 bytes each\)"),
    ({b"deepviz.dtype": b"<f2", b"deepviz.width": b"four"}, None, r"has rows of 8 bytes, but its metadata says four values of <f2"),
    ({b"deepviz.width": b"4"}, None, r"has no deepviz.dtype in its metadata"),
    (None, [b"\0" * 8, None, b"\0" * 8], r"has 1 empty \(null\) rows"),
]


@pytest.mark.parametrize(("metadata", "cells", "match"), BAD_VECTORS, ids=["dtype", "size", "width", "no-dtype", "null"])
def test_an_activation_blob_unlike_its_metadata_is_corrupt_data(tmp_path, metadata, cells, match):
    root = _small_db(tmp_path)
    path = root / "activations" / "run_id=r1" / "step=0" / "fc.parquet"
    _rewrite(path, "vector", metadata=metadata, cells=cells)
    with pytest.raises(CorruptDataError, match=rf"Column 'vector' of .*fc\.parquet {match}"):
        StatsDB(root).activations(0, "fc")
    assert len(StatsDB(root).predictions(0)["pred"]) == 3  # the rest of the step stays readable


def test_an_activation_column_of_another_type_is_corrupt_data(tmp_path):
    root = _small_db(tmp_path)
    path = root / "activations" / "run_id=r1" / "step=0" / "fc.parquet"
    _rewrite(path, "vector", pa.string(), metadata={}, cells=["a", "b", "c"])
    with pytest.raises(CorruptDataError, match=r"Column 'vector' of .* is string; expected fixed_size_binary"):
        StatsDB(root).activations(0, "fc")


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({b"deepviz.dtype": b"|u1", b"deepviz.width": b"4", b"deepviz.divisor": b"7"}, r"has divisor '7'; allowed: 255.0, 1.0"),
        ({b"deepviz.dtype": b"|u1", b"deepviz.width": b"4"}, r"has no deepviz.divisor in its metadata"),
        ({b"deepviz.dtype": b"|u1", b"deepviz.width": b"2", b"deepviz.divisor": b"255.0"},
         r"has rows of 4 bytes, but its metadata says 2 values of \|u1"),
    ],
    ids=["divisor", "no-divisor", "width"],
)
def test_probe_inputs_unlike_their_metadata_are_corrupt_data(tmp_path, metadata, match):
    root = _small_db(tmp_path)
    assert StatsDB(root).probe_inputs().shape == (3, 1, 2, 2)
    _rewrite(root / "probes" / "run_id=r1" / "probes.parquet", "input", metadata=metadata)
    with pytest.raises(CorruptDataError, match=rf"Column 'input' of .*probes\.parquet {match}"):
        StatsDB(root).probe_inputs()
    assert len(StatsDB(root).probes()) == 3


def test_probe_inputs_of_another_shape_than_the_runs_are_corrupt_data(tmp_path):
    root = _small_db(tmp_path)
    StatsWriter(root).update_run("r1", input_shape=[3, 2, 2])
    with pytest.raises(CorruptDataError, match=r"have 4 values per image, but the run's input_shape \[3, 2, 2\] needs 12"):
        StatsDB(root).probe_inputs()
