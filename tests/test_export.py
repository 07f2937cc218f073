"""`deepviz export tensorboard`: the files read back by TensorBoard's own projector plugin."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.cli_support import assert_error, run_main

LAYER = "fc1"


def _projector(logdir):
    """TensorBoard's projector plugin over ``logdir``, as `tensorboard --logdir` builds it; a WSGI client per route."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    ctx = base_plugin.TBContext(logdir=str(logdir), data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)))
    apps = ProjectorPlugin(ctx).get_plugin_apps()

    def get(route, **params):
        res = Client(apps[route]).get(route, query_string=params)
        assert res.status_code == 200, res.get_data(as_text=True)
        return res.get_data()

    return get


def test_all_steps_read_back_by_tensorboard(capsys, db, populated_db, tmp_path):
    out = tmp_path / "projector"
    code, stdout, err = run_main(capsys, "export", "tensorboard", populated_db, out, "--layer", LAYER, "--all-steps")
    assert code == 0, err
    run_id, steps = db.run_ids()[-1], db.steps()
    assert f"exported {LAYER} of run {run_id} at {len(steps)} steps" in stdout
    assert len(steps) >= 2

    get = _projector(out)
    assert json.loads(get("/runs")) == ["."]
    info = json.loads(get("/info", run="."))
    names = [e["tensorName"] for e in info["embeddings"]]
    assert names == [f"{run_id} {LAYER} step {s}" for s in steps]
    n, dim = db.activations(steps[0], LAYER).shape
    names_of = db.run_info()["class_names"]
    tensors = {}
    for step, entry in zip(steps, info["embeddings"]):
        assert [int(v) for v in entry["tensorShape"]] == [n, dim]
        tensors[step] = np.frombuffer(get("/tensor", run=".", name=entry["tensorName"]), dtype=np.float32).reshape(n, dim)
        np.testing.assert_allclose(tensors[step], db.activations(step, LAYER), rtol=1e-6, atol=1e-6)
        header, *rows = get("/metadata", run=".", name=entry["tensorName"]).decode().splitlines()
        assert header.split("\t") == ["probe_id", "class", "prediction", "correct", "confidence"]
        pred = db.predictions(step)
        assert [r.split("\t")[0] for r in rows] == [str(int(p)) for p in pred["probe_id"]]
        assert [r.split("\t")[1] for r in rows] == [names_of[int(lab)] for lab in pred["label"]]
        assert [r.split("\t")[2] for r in rows] == [names_of[int(p)] for p in pred["pred"]]  # this step's prediction
        assert [r.split("\t")[3] == "yes" for r in rows] == [bool(c) for c in pred["correct"]]
    assert not np.allclose(tensors[steps[0]], tensors[steps[-1]])  # each step its own weights' activations

    entry = info["embeddings"][0]
    cell = [int(v) for v in entry["sprite"]["singleImageDim"]]
    thumbs = db.thumbnails()
    ids = db.probes()["probe_id"].tolist()
    with Image.open(io.BytesIO(thumbs[ids[0]])) as first:
        assert cell == [max(first.size)] * 2  # the thumbnails' own size
    sprite = Image.open(io.BytesIO(get("/sprite_image", run=".", name=entry["tensorName"]))).convert("RGB")
    cols = int(np.ceil(np.sqrt(n)))
    assert sprite.size[0] == cols * cell[0] and sprite.size[1] >= int(np.ceil(n / cols)) * cell[1]
    k = len(ids) - 1  # the last image sits at column k % cols, row k // cols, as TensorBoard reads it
    x, y = (k % cols) * cell[0], (k // cols) * cell[1]
    with Image.open(io.BytesIO(thumbs[ids[k]])) as last:
        expected = np.asarray(last.convert("RGB").resize(tuple(cell)))
    np.testing.assert_array_equal(np.asarray(sprite)[y : y + cell[1], x : x + cell[0]], expected)


def test_one_step(capsys, db, populated_db, tmp_path):
    step = db.steps()[1]
    code, stdout, err = run_main(capsys, "export", "tensorboard", populated_db, tmp_path, "--layer", LAYER, "--step", step)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"metadata_step{step}.tsv", "projector_config.pbtxt", "sprite.png", f"tensors_step{step}.tsv"]
    info = json.loads(_projector(tmp_path)("/info", run="."))
    assert [e["tensorPath"] for e in info["embeddings"]] == [f"tensors_step{step}.tsv"]


def test_unknown_run_step_and_layer_name_what_exists(capsys, db, populated_db, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_main(capsys, "export", "tensorboard", populated_db, out, "--layer", LAYER, "--step", 0, "--run", "nope")
    assert_error(code, err, r"Unknown run 'nope'\. Available: \d{8}-")
    code, _, err = run_main(capsys, "export", "tensorboard", populated_db, out, "--layer", LAYER, "--step", 999999)
    assert_error(code, err, r"Unknown step 999999 in run '.*'\. Available steps: 0, ")
    code, _, err = run_main(capsys, "export", "tensorboard", populated_db, out, "--layer", "fc9", "--all-steps")
    assert_error(code, err, r"Unknown layer 'fc9' at step 0\. Available: .*fc1")
    assert not out.exists()  # nothing written before every check passed


def test_step_or_all_steps_is_required(capsys, populated_db, tmp_path):
    code, _, err = run_main(capsys, "export", "tensorboard", populated_db, tmp_path, "--layer", LAYER)
    assert code == 2 and "one of the arguments --step --all-steps is required" in err


def test_out_that_is_a_file_is_refused(capsys, populated_db, tmp_path):
    out = tmp_path / "file.txt"
    out.write_text("x")
    code, _, err = run_main(capsys, "export", "tensorboard", populated_db, out, "--layer", LAYER, "--step", 0)
    assert_error(code, err, r"The export folder '.*file\.txt' is a file\. Pass a new or existing folder")


def test_sprite_cells_shrink_to_tensorboards_limit(db, tmp_path, monkeypatch):
    from deepviz.export import tensorboard

    monkeypatch.setattr(tensorboard, "MAX_SPRITE_PX", 40)  # 120 images: 11 columns of 3 px
    tensorboard.export_projector(db, tmp_path, layer=LAYER, steps=[0])
    with Image.open(tmp_path / "sprite.png") as sprite:
        assert sprite.size == (33, 33)
    assert (tmp_path / "projector_config.pbtxt").read_text().count("single_image_dim: 3\n") == 2


def test_class_names_cannot_break_the_tsv():
    from deepviz.export.tensorboard import _metadata

    pred = {"probe_id": [0], "label": [0], "pred": [1], "correct": [False], "confidence": [0.5]}
    text = _metadata(pred, ["cat\tdog", "a\nb"])
    assert text.splitlines() == ["probe_id\tclass\tprediction\tcorrect\tconfidence", "0\tcat dog\ta b\tno\t0.5000"]


def test_a_run_with_no_steps_yet_is_refused(tmp_path):
    from deepviz import StatsDB, StatsWriter
    from deepviz.errors import ConfigurationError
    from deepviz.export.tensorboard import export_projector
    from tests.test_store import write_run

    writer = StatsWriter(tmp_path / "db")
    write_run(writer)  # the run row a training writes before its first snapshot
    writer.close()
    with pytest.raises(ConfigurationError, match=r"Run 'r1' has no committed steps to export yet; train it first"):
        export_projector(StatsDB(tmp_path / "db"), tmp_path / "out", layer="fc", steps=[])
    assert not (tmp_path / "out").exists()
