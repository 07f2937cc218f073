"""Files: no route serves a file from outside the db or the app's static folder.

Path traversal in every path and query parameter of every route (``../``,
percent-encoded and double-encoded forms, absolute paths), and symlinks inside
the db that lead out of it: the store refuses to read through them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest

from deepviz import StatsDB
from deepviz.errors import CorruptDataError, NotFoundError

from .routes import calls

WEBUI_INIT = Path(__file__).resolve().parents[2] / "webui" / "__init__.py"

TRAVERSALS = [
    "../", "../../../../../../etc/passwd", "..%2f..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd", "..%5c..%5c..%5cetc%5cpasswd", "/etc/passwd", "//etc/passwd",
    "....//....//....//etc/passwd", "..;/..;/etc/passwd", "%2e%2e/%2e%2e/__init__.py", "../__init__.py",
    "../../webui/__init__.py", "..%2f__init__.py", "%2fetc%2fpasswd", "%00../../etc/passwd",
]


def leaked(body: bytes, secret: bytes) -> bool:
    return b"root:x:0:0" in body or b"def create_app" in body or secret in body


@pytest.fixture()
def secret(tmp_path) -> tuple[Path, bytes]:
    marker = b"TOPSECRET-deepviz-reliability"
    path = tmp_path / "secret.txt"
    path.write_bytes(marker)
    return path, marker


@pytest.mark.slow  # 6,012 requests: 20-35 s on two shared cores
def test_traversal_in_every_parameter_of_every_route(app, client, run_id, secret):
    secret_path, marker = secret
    payloads = TRAVERSALS + [str(secret_path), quote(str(secret_path), safe="")]
    sent = 0
    for call in calls(app, app.extensions["deepviz_db"], run_id):
        parts = call.path.split("/")
        rule_parts = call.rule.split("/")
        for i, r in enumerate(rule_parts):
            if not r.startswith("<"):
                continue
            for payload in payloads:
                # Raw, so that the encodings reach the server as written.
                path = "/".join(parts[:i] + [payload] + parts[i + 1 :])
                res = client.open(path, method=call.method, **call.body)
                assert res.status_code < 500 or "outside the db" in res.get_data(as_text=True), (path, res.status_code)
                assert not leaked(res.get_data(), marker), f"{call.method} {path} leaked a file"
                sent += 1
        for name in ("layer", "conv", "run", "method", "size", "probe", "filename", "path", "file"):
            for payload in payloads:
                res = client.open(call.path + f"?{name}={payload}", method=call.method, **call.body)
                assert res.status_code < 500, (call.path, name, payload, res.get_data(as_text=True)[:200])
                assert not leaked(res.get_data(), marker), f"{call.method} {call.path}?{name}={payload} leaked a file"
                sent += 1
    assert sent > 500
    print(f"traversal: {sent} requests, no leak")


def test_static_files_stay_in_the_static_folder(client, secret):
    _, marker = secret
    assert client.get("/static/js/api.js").status_code == 200
    for payload in TRAVERSALS:
        # '//' is merged by a redirect to the same folder, which then has no such file.
        res = client.get("/static/" + payload, follow_redirects=True)
        assert res.status_code in (400, 403, 404), (payload, res.status_code)
        assert not leaked(res.get_data(), marker)
        body = res.get_json(silent=True)
        assert body and body["ok"] is False, payload


# --------------------------------------------------------------------------- symlinks inside the db


def move_out(path: Path, outside: Path) -> Path:
    """Move ``path`` out of the db and leave a symlink to it: the data is valid, only its place is wrong."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(outside))
    path.symlink_to(outside, target_is_directory=outside.is_dir())
    return outside


OUT = "Refused to read .* a link that leads outside the db folder"


def test_a_step_folder_linked_out_is_refused_and_other_steps_work(db_copy, tmp_path):
    store = StatsDB(db_copy)
    run = store.resolve_run()
    steps = store.steps()
    bad = steps[1]
    move_out(db_copy / "predictions" / f"run_id={run}" / f"step={bad}", tmp_path / "elsewhere" / "preds")
    move_out(db_copy / "activations" / f"run_id={run}" / f"step={bad}", tmp_path / "elsewhere" / "acts")
    store = StatsDB(db_copy)
    with pytest.raises(CorruptDataError, match=OUT):
        store.predictions(bad)
    with pytest.raises(CorruptDataError, match=OUT):
        store.activations(bad, store.layers()[0])
    with pytest.raises(CorruptDataError, match=OUT):
        store.get_stats(bad)
    for step in steps:
        if step != bad:
            assert store.get_stats(step).probs_by_image.shape[0] == store.run_info()["n_probe"]
    # The SQL views leave the linked files out and say so.
    counts = store.sql("SELECT step, count(*) AS n FROM predictions GROUP BY step")
    assert bad not in set(counts.step) and len(counts) == len(steps) - 1
    assert any(f"step={bad}" in f and "outside" in f for f in store.skipped_files)


def test_linked_out_files_through_the_web_ui(db_copy, tmp_path):
    from webui import create_app

    store = StatsDB(db_copy)
    run = store.resolve_run()
    steps = store.steps()
    bad = steps[-1]
    move_out(db_copy / "predictions" / f"run_id={run}" / f"step={bad}" / "predictions.parquet", tmp_path / "out" / "p.parquet")
    move_out(db_copy / "probes" / f"run_id={run}" / "probes.parquet", tmp_path / "out" / "probes.parquet")
    client = create_app(db_copy, test_config={"TESTING": True}).test_client()
    base = f"/api/runs/{run}"
    for url in (f"{base}/steps/{bad}/predictions", f"{base}/probes/0/thumbnail.png", f"{base}/sprite.png", f"{base}/probes"):
        res = client.get(url)
        assert res.status_code == 500 and "outside the db folder" in res.get_json()["error"], url
        assert str(tmp_path / "out") not in res.get_json()["error"], "the message does not say where the link leads"
    assert client.get(f"{base}/steps/{steps[0]}/predictions").status_code == 200
    assert client.get(f"{base}/steps/{steps[0]}/confusion").status_code == 200


def test_run_row_state_and_derived_files_linked_out(db_copy, tmp_path):
    store = StatsDB(db_copy)
    run = store.resolve_run()
    step = store.steps()[0]
    key = {"layer": "fc1", "method": "pca", "seed": 0, "step": step}
    store.put_derived("projections", key, pd.DataFrame({"probe_id": [0, 1], "x": [0.0, 1.0], "y": [1.0, 0.0]}))
    derived = db_copy / "projections" / f"run_id={run}" / "layer=fc1" / "method=pca" / "seed=0" / f"step={step}" / "part.parquet"
    move_out(derived, tmp_path / "out" / "part.parquet")
    state = db_copy / "states" / f"run_id={run}" / f"step={step}.pt"
    move_out(state, tmp_path / "out" / "state.pt")
    store = StatsDB(db_copy)
    with pytest.raises(CorruptDataError, match=OUT):
        store.get_derived("projections", key)
    with pytest.raises(CorruptDataError, match=OUT):
        store.state_path(step)
    move_out(db_copy / "runs" / f"run_id={run}" / "run.parquet", tmp_path / "out" / "run.parquet")
    store = StatsDB(db_copy)
    with pytest.raises(CorruptDataError, match=OUT):
        store.run_info(run)
    assert "outside" in store.runs().error.iloc[0]


def test_a_derived_folder_linked_out_is_never_written_through(db_copy, tmp_path):
    store = StatsDB(db_copy)
    run = store.resolve_run()
    outside = tmp_path / "out"
    outside.mkdir()
    link = db_copy / "projections" / f"run_id={run}"
    shutil.rmtree(link, ignore_errors=True)  # projections cached by other tests
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(CorruptDataError, match=OUT):
        store.put_derived("projections", {"layer": "fc1", "method": "pca", "seed": 0, "step": 0},
                          pd.DataFrame({"probe_id": [0], "x": [0.0], "y": [0.0]}))
    assert not any(p.suffix == ".parquet" for p in outside.rglob("*"))


def test_names_with_path_parts_are_refused_by_the_store(db_copy):
    store = StatsDB(db_copy)
    step = store.steps()[0]
    for name in ("../../../etc/passwd", "../fc1", "/etc/passwd", "fc1/../../x"):
        with pytest.raises(NotFoundError, match="Unknown layer"):
            store.activations(step, name)
        with pytest.raises(NotFoundError, match="No stored weights"):
            store.weights(step, name)
    with pytest.raises(NotFoundError, match="Unknown run"):
        store.steps("../runs")
    assert np.isfinite(store.activations(step, store.layers()[0])).all()
