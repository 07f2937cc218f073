"""Every answer computed from a model says which weights it used: Inspect, maps, maximisation and upload search."""

from __future__ import annotations

import io

WEIGHT_KEYS = {"source", "step", "path", "note"}


def _model_answers(client, run: str, step: int, probe: int, thumbnail: bytes) -> dict[str, dict]:
    base = f"/api/runs/{run}/steps/{step}/inspect"
    out = {
        "layers": client.get(f"{base}/layers"),
        "attribution": client.get(f"{base}/attribution", query_string={"method": "saliency", "probe": probe}),
        "activation_maps": client.get(f"{base}/activation_maps", query_string={"probe": probe}),
        "filters": client.get(f"{base}/filters"),
        "maximize": client.get(f"{base}/maximize", query_string={"target": 0, "steps": 3}),
        "upload": client.post(f"/api/runs/{run}/analysis/search", query_string={"step": step},
                              data={"image": (io.BytesIO(thumbnail), "probe.png")}, content_type="multipart/form-data"),
    }
    for name, res in out.items():
        assert res.status_code == 200, (name, res.get_data(as_text=True)[:300])
    return {name: res.get_json() for name, res in out.items()}


def test_each_model_answer_names_the_weights_of_its_own_step(app, client, run_id):
    store = app.extensions["deepviz_db"]
    steps = store.steps(run_id)
    probe = int(store.probes(run_id)["probe_id"].iloc[0])
    thumbnail = store.thumbnail(probe, run_id)
    first, last = steps[0], steps[-1]
    seen = {}
    for step in (first, last):
        for name, body in _model_answers(client, run_id, step, probe, thumbnail).items():
            weights = body["weights"]
            assert set(weights) == WEIGHT_KEYS, (name, weights)
            assert weights["step"] == step and weights["source"] in ("state", "checkpoint"), (name, step, weights)
            assert weights["path"] is None or isinstance(weights["path"], str)
            seen.setdefault(step, set()).add((weights["source"], weights["path"]))
        # one model per step: every answer at a step names the same weights
        assert len(seen[step]) == 1, seen[step]
    assert seen[first] != seen[last]
    # a cached answer names them too
    again = client.get(f"/api/runs/{run_id}/steps/{first}/inspect/filters").get_json()
    assert again["cached"] is True and again["weights"]["step"] == first



def test_a_checkpoint_outside_the_db_is_read_only_from_a_folder_the_server_was_told_to_trust(webui_db, tmp_path):
    """`deepviz serve --trust-checkpoints DIR`: a db naming a checkpoint elsewhere is refused unless DIR holds it."""
    import shutil

    from deepviz import StatsDB, StatsWriter
    from webui import create_app

    db = tmp_path / "db"
    shutil.copytree(webui_db, db, ignore=shutil.ignore_patterns(".*.tmp"))  # (another app may be writing a derived table)
    store = StatsDB(db)
    run = store.resolve_run()
    step = store.steps(run)[-1]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    own = store.checkpoint_dir(run) / f"step={step}.ckpt"
    moved = outside / own.name
    shutil.move(own, moved)  # the only checkpoint of the step now lies outside the db
    store.state_path(step, run).unlink()  # and the step has no stored state
    with StatsWriter(db) as writer:
        writer.record_checkpoint(run, step, str(moved))
    url = f"/api/runs/{run}/steps/{step}/inspect/layers"

    refused = create_app(db, test_config={"TESTING": True}).test_client().get(url)
    assert refused.status_code == 404 and "outside the db's checkpoint folder" in refused.get_json()["error"]
    trusted = create_app(db, trusted_checkpoints=[outside], test_config={"TESTING": True}).test_client().get(url)
    assert trusted.status_code == 200, trusted.get_json()
    assert trusted.get_json()["weights"] == {"source": "checkpoint", "step": step, "path": str(moved), "note": None}
