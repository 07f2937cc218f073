"""Corrupt data: a truncated Parquet file, a missing partition, a run without snapshots.

The affected step shows an error; everything else works in the Python API,
the SQL views, the CLI and the web UI.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from deepviz import StatsDB, StatsWriter
from deepviz.errors import CorruptDataError

from .routes import calls, send

REPO = Path(__file__).resolve().parents[2]


def damage(db_path: Path) -> dict:
    """Truncate one step's predictions, delete another step's activations of one layer, add a run with no snapshots."""
    store = StatsDB(db_path)
    run = store.resolve_run()
    steps = store.steps()
    truncated, missing = steps[1], steps[2]
    pred = db_path / "predictions" / f"run_id={run}" / f"step={truncated}" / "predictions.parquet"
    pred.write_bytes(pred.read_bytes()[: pred.stat().st_size // 2])
    layer = store.layers()[0]
    (db_path / "activations" / f"run_id={run}" / f"step={missing}" / f"{layer}.parquet").unlink()
    info = StatsWriter(db_path).read_run(run)
    StatsWriter(db_path).write_run(info | {"run_id": "00000000-empty", "name": "empty"})
    return {"run": run, "steps": steps, "truncated": truncated, "missing": missing, "layer": layer, "file": pred}


def test_python_api(db_copy):
    d = damage(db_copy)
    store = StatsDB(db_copy)
    with pytest.raises(CorruptDataError, match=r"Cannot read .*predictions\.parquet: .*truncated or corrupt") as info:
        store.predictions(d["truncated"])
    assert str(info.value).count(str(d["file"])) == 1, "the message names the file once"
    with pytest.raises(CorruptDataError, match=rf"activations of layer '{d['layer']}' at step {d['missing']} are missing"):
        store.activations(d["missing"], d["layer"])
    with pytest.raises(CorruptDataError, match="are missing"):
        store.get_stats(d["missing"])
    for step in d["steps"]:
        if step not in (d["truncated"], d["missing"]):
            assert len(store.get_stats(step).labels) == store.run_info()["n_probe"]
    # the other layer of the step with a missing file, and its predictions, are fine
    other = [layer for layer in store.layers() if layer != d["layer"]][0]
    assert store.activations(d["missing"], other).shape[0] == store.run_info()["n_probe"]
    assert len(store.predictions(d["missing"])["pred"]) == store.run_info()["n_probe"]
    runs = store.runs().set_index("run_id")
    assert runs.loc["00000000-empty", "n_steps"] == 0 and runs.loc[d["run"], "n_steps"] == len(d["steps"])
    assert store.steps("00000000-empty") == [] and store.step_table("00000000-empty").empty
    assert store.metrics("00000000-empty").empty


def test_sql_views(db_copy):
    d = damage(db_copy)
    store = StatsDB(db_copy)
    counts = store.sql("SELECT step, count(*) AS n FROM predictions GROUP BY step ORDER BY step")
    assert list(counts.step) == [s for s in d["steps"] if s != d["truncated"]]
    assert any("predictions.parquet (truncated or corrupt)" in f for f in store.skipped_files)
    acts = store.sql(f"SELECT count(*) AS n FROM activations WHERE step = {d['missing']}")
    assert acts.n[0] == store.run_info()["n_probe"] * (len(store.layers()) - 1)  # every other layer still there
    assert len(store.sql("SELECT * FROM runs")) == 2


def test_a_corrupt_steps_file_marks_only_its_step(db_copy):
    store = StatsDB(db_copy)
    run = store.resolve_run()
    step = store.steps()[-1]
    marker = db_copy / "steps" / f"run_id={run}" / f"step={step}" / "step.parquet"
    marker.write_bytes(b"PAR1garbage")
    store = StatsDB(db_copy)
    table = store.step_table()
    assert "error" in table and table.set_index("step").loc[step, "error"].startswith("Cannot read")
    row = store.runs().iloc[0]
    assert row.n_steps == len(store.steps()) and row.final_acc is not None  # from the last readable step
    assert len(store.sql("SELECT * FROM steps")) == len(store.steps()) - 1


def test_web_ui(db_copy):
    from webui import create_app

    d = damage(db_copy)
    app = create_app(db_copy, test_config={"TESTING": True})
    client = app.test_client()
    store = app.extensions["deepviz_db"]
    base = f"/api/runs/{d['run']}"
    probe = int(store.probes(d["run"])["probe_id"].iloc[0])
    res = client.get(f"{base}/steps/{d['truncated']}/predictions")
    assert res.status_code == 500 and "truncated or corrupt" in res.get_json()["error"]
    res = client.get(f"{base}/steps/{d['missing']}/neighbours?probe={probe}&layer={d['layer']}")
    assert res.status_code == 500 and "are missing" in res.get_json()["error"], res.get_json()
    # Spanning routes list the bad step and go on.
    metrics = client.get(f"{base}/metrics").get_json()
    assert [e["step"] for e in metrics["errors"]] == [d["truncated"]]
    traj = client.get(f"{base}/probes/{probe}/trajectory").get_json()
    assert d["truncated"] not in traj["steps"] and len(traj["steps"]) == len(d["steps"]) - 1
    # Every route at a healthy step answers 200, and the run list shows both runs.
    for call in calls(app, store, d["run"], step=d["steps"][0]):
        res = send(client, call)
        assert res.status_code == 200, (call.url, res.get_data(as_text=True)[:300])
    # Unit history spans every step, like the trajectory: the step missing the layer is listed and left out.
    res = client.get(f"{base}/inspect/unit_history?layer={d['layer']}&unit=0")
    assert res.status_code == 200, res.get_data(as_text=True)[:300]
    (n,) = struct.unpack("<I", res.data[:4])
    header = json.loads(res.data[4 : 4 + n])
    assert [e["step"] for e in header["meta"]["errors"]] == [d["missing"]]
    assert "are missing" in header["meta"]["errors"][0]["error"]
    shapes = {a["name"]: a["shape"] for a in header["arrays"]}
    assert shapes["steps"] == [len(d["steps"]) - 1]
    runs = client.get("/api/runs").get_json()
    assert {r["run_id"] for r in runs} == {d["run"], "00000000-empty"}
    assert client.get("/api/runs/00000000-empty").status_code == 200
    assert client.get("/api/runs/00000000-empty/metrics").status_code == 200
    assert client.get("/runs/00000000-empty").status_code == 200
    assert client.post("/api/sql", json={"query": "SELECT count(*) FROM predictions"}).status_code == 200


@pytest.mark.skipif(importlib.util.find_spec("deepviz.cli") is None, reason="the deepviz CLI (branch cli) is not merged yet")
def test_cli(db_copy):
    d = damage(db_copy)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "deepviz", *args], cwd=REPO, capture_output=True, text=True, timeout=120)

    out = cli("runs", str(db_copy), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert d["run"] in out.stdout and "00000000-empty" in out.stdout
    out = cli("sql", str(db_copy), "SELECT count(DISTINCT step) AS n FROM predictions", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["n"] == len(d["steps"]) - 1
