"""The store: Parquet tables readable without deepviz, atomic snapshots, clear errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from deepviz import StatsDB, StatsWriter
from deepviz import schema as S
from deepviz.errors import ConfigurationError, CorruptDataError, NotFoundError, QueryError, SchemaVersionError
from deepviz.store.codec import arrow_schema, list_to_numpy

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def write_run(writer: StatsWriter, run_id: str = "r1", layers=("fc",), n_classes: int = 3) -> None:
    writer.write_run(
        {
            "run_id": run_id,
            "name": run_id,
            "model_class": "trainers.models:SmallNet",
            "hparams": "{}",
            "class_names": [f"c{i}" for i in range(n_classes)],
            "input_shape": [1, 2, 2],
            "layers": list(layers),
        }
    )


def write_step(writer, run_id="r1", step=0, n=6, d=4, c=3, seed=0, order=None, **kwargs):
    """A synthetic snapshot: returns what was given, in the order given."""
    rng = np.random.default_rng(seed)
    ids = np.arange(100, 100 + n) if order is None else np.asarray(order)
    logits = rng.normal(size=(n, c))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = {
        "probe_ids": ids,
        "labels": rng.integers(0, c, n),
        "probs": probs.astype(np.float32),
        "loss": rng.random(n).astype(np.float32),
        "activations": {"fc": rng.normal(size=(n, d)).astype(np.float32)},
        "weights": {"conv": rng.normal(size=(2, 1, 3, 3)).astype(np.float32)},
    }
    writer.write_snapshot(run_id, step, epoch=0, trigger="start", metrics={"val_acc": 0.5}, **given, **kwargs)
    return given


# --------------------------------------------------------------------------- round trip on a trained run


def test_round_trip_of_every_table(db, digits_tensors):
    run = db.run_info()
    assert run["model_class"] == "trainers.models:SmallNet"
    assert "conv1" in run["model_summary"] and run["n_params"] > 0
    assert run["hparams"]["n_classes"] == 10 and run["dataset"] == "digits"
    assert run["class_names"] == [str(i) for i in range(10)]
    assert run["layers"] == ["conv1.gap", "conv2.gap", "fc1", "fc2"] and run["conv_layers"] == ["conv1", "conv2"]
    assert run["input_shape"] == [1, 8, 8] and run["n_probe"] == 120 and run["world_size"] == 1
    assert run["schema_version"] == S.SCHEMA_VERSION and run["activation_dtype"] == "float16"
    assert run["started_at"] <= run["ended_at"]

    probes = db.probes()
    assert len(probes) == 120 and probes.probe_id.is_monotonic_increasing
    x, y = digits_tensors
    # probe ids index the (images, labels) pair the callback got: x[480:780]
    np.testing.assert_array_equal(probes.label, y[480:780].numpy()[probes.probe_id])
    np.testing.assert_array_equal(db.probe_inputs(), x[480:780].numpy()[probes.probe_id])
    png = Image.open(io.BytesIO(db.thumbnail(int(probes.probe_id[0]))))
    assert png.format == "PNG" and png.size == (8, 8)

    steps = db.steps()
    assert steps[0] == 0 and len(steps) == 3
    for step in steps:
        s = db.get_stats(step)
        model = db.load_model(step)
        inputs = torch.from_numpy(db.probe_inputs())
        with torch.no_grad():
            logits = model(inputs)
            fc1 = model.fc1(model.pool(model.relu2(model.conv2(model.relu1(model.conv1(inputs))))).flatten(1))
        # What was stored is what the model of that step makes of the probe set.
        np.testing.assert_allclose(s.probs_by_image, torch.softmax(logits, 1).numpy(), atol=1e-5)
        np.testing.assert_array_equal(s.predictions, logits.argmax(1).numpy())
        np.testing.assert_array_equal(s.labels, probes.label)
        np.testing.assert_array_equal(s.correct, s.predictions == s.labels)
        np.testing.assert_allclose(s.embeddings["fc1"], fc1.numpy(), rtol=2e-3, atol=2e-3)  # float16
        np.testing.assert_allclose(s.embeddings["fc2"], logits.numpy(), rtol=2e-3, atol=2e-3)
        np.testing.assert_array_equal(s.weights["conv1"], model.conv1.weight.detach().numpy())
        assert s.weights["conv2"].shape == (32, 16, 3, 3)
        assert s.embeddings["fc1"].dtype == np.float32 and s.embeddings["fc1"].shape == (120, 64)
        np.testing.assert_allclose(s.probs_by_image.sum(1), 1.0, rtol=1e-5)
        assert s.nonfinite_layers == []

    table = db.step_table()
    assert list(table.step) == steps and list(table.trigger) == ["start", "validation", "validation"]
    later = table[table.step > 0]
    assert later[["train_loss_epoch", "val_loss", "val_acc", "train_acc"]].notna().all().all()
    assert set(db.checkpoints()) == {5, 10} and all(Path(p).exists() for p in db.checkpoints().values())
    layers = ["conv1.gap", "conv2.gap", "fc1", "fc2"]
    assert db.layers() == layers and db.layers(step=0) == layers


def test_plain_duckdb_reads_the_files_without_deepviz(populated_db, db):
    # The query of the README, in a fresh interpreter that never imports deepviz.
    script = textwrap.dedent(
        f"""
        import json, sys, duckdb
        rows = duckdb.sql(
            "SELECT step, avg(correct::INT) AS acc FROM '{populated_db}/predictions/**/*.parquet' GROUP BY step ORDER BY step"
        ).fetchall()
        layers = duckdb.sql(
            "SELECT layer, count(*), max(octet_length(vector) // 2) FROM '{populated_db}/activations/**/*.parquet' GROUP BY layer ORDER BY layer"
        ).fetchall()
        assert not any(m == "deepviz" or m.startswith("deepviz.") for m in sys.modules)
        print(json.dumps({{"acc": rows, "layers": layers}}))
        """
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    expected = db.step_table()
    assert [r[0] for r in out["acc"]] == list(expected.step)
    np.testing.assert_allclose([r[1] for r in out["acc"]], expected.probe_acc)
    assert out["layers"] == [["conv1.gap", 360, 16], ["conv2.gap", 360, 32], ["fc1", 360, 64], ["fc2", 360, 10]]


def test_pandas_reads_a_table_folder(populated_db):
    import pandas as pd

    # as stats_db/README.md shows it
    frame = pd.read_parquet(populated_db / "predictions", partitioning=None)
    assert sorted(frame.step.unique()) == [0, 5, 10] and len(frame) == 360


def test_sql_views_of_every_table(db):
    counts = db.sql(
        "SELECT (SELECT count(*) FROM predictions) AS p, (SELECT count(*) FROM activations) AS a, "
        "(SELECT count(*) FROM weights) AS w, (SELECT count(*) FROM steps) AS s, (SELECT count(*) FROM runs) AS r, "
        "(SELECT count(*) FROM probes) AS pr, (SELECT count(DISTINCT step) FROM metrics) AS m, "
        "(SELECT count(*) FROM checkpoints) AS c"
    ).iloc[0]
    assert counts.to_dict() == {"p": 360, "a": 1440, "w": 6, "s": 3, "r": 1, "pr": 120, "m": 2, "c": 2}
    for name in S.DERIVED_TABLES:  # empty views with the right columns until something is cached
        assert list(db.sql(f"SELECT * FROM {name}").columns) == arrow_schema(S.DERIVED_TABLES[name]).names
    acc = db.sql("SELECT step, avg(correct::INT) AS acc FROM predictions GROUP BY step ORDER BY step")
    np.testing.assert_allclose(acc.acc, db.step_table().probe_acc)
    joined = db.sql("SELECT count(*) AS n FROM activations a JOIN probes p USING (run_id, probe_id) WHERE a.layer = 'fc1'")
    assert joined.n[0] == 360


def test_sql_error_is_a_query_error(db):
    with pytest.raises(QueryError, match="(?i)catalog.*no_such_table"):
        db.sql("SELECT * FROM no_such_table")


# --------------------------------------------------------------------------- store on its own


def test_rows_come_back_in_probe_order(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    order = [105, 101, 103, 100, 104, 102]
    given = write_step(writer, order=order)
    db = StatsDB(tmp_path)
    s = db.get_stats(0)
    sort = np.argsort(order)
    np.testing.assert_array_equal(s.probe_ids, np.sort(order))
    np.testing.assert_array_equal(s.labels, given["labels"][sort])
    np.testing.assert_allclose(s.probs_by_image, given["probs"][sort])
    np.testing.assert_allclose(s.embeddings["fc"], given["activations"]["fc"][sort], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(s.predictions, given["probs"][sort].argmax(1))
    np.testing.assert_allclose(s.probs_by_image.sum(1), 1.0, rtol=1e-6)


@pytest.mark.parametrize(("dtype", "stored", "exact"), [("float16", "<f2", False), ("float32", "<f4", True)])
def test_activation_dtype(tmp_path, dtype, stored, exact):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    given = write_step(writer, activation_dtype=dtype)
    path = tmp_path / "activations" / "run_id=r1" / "step=0" / "fc.parquet"
    field = pq.read_schema(path).field("vector")
    itemsize = int(stored[-1])
    assert field.type == pa.binary(4 * itemsize)  # one fixed_size_binary cell of 4 values per row
    assert field.metadata == {b"deepviz.dtype": stored.encode(), b"deepviz.width": b"4"}
    assert pq.ParquetFile(path).metadata.row_group(0).column(4).compression == "ZSTD"
    got = StatsDB(tmp_path).activations(0, "fc")
    assert got.dtype == np.float32
    if exact:
        np.testing.assert_array_equal(got, given["activations"]["fc"])
    else:
        np.testing.assert_array_equal(got, given["activations"]["fc"].astype(np.float16).astype(np.float32))
    # plain DuckDB reads a BLOB of the row's little-endian values, which numpy decodes as the README says
    blobs = duckdb.sql(f"SELECT typeof(vector), vector FROM '{path}' ORDER BY probe_id").fetchall()
    assert {t for t, _ in blobs} == {"BLOB"}
    raw = np.frombuffer(b"".join(b for _, b in blobs), stored).reshape(len(blobs), -1)
    np.testing.assert_array_equal(raw.astype(np.float32), got)


def test_a_step_is_never_written_twice(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    write_step(writer, step=3)
    with pytest.raises(ConfigurationError, match="Step 3 of run 'r1' is already written"):
        write_step(writer, step=3)


def test_newer_schema_is_refused_naming_both_versions(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    (tmp_path / S.VERSION_FILE).write_text(json.dumps({"schema_version": S.SCHEMA_VERSION + 1}))
    match = rf"schema version {S.SCHEMA_VERSION + 1}; this deepviz reads schema versions up to {S.SCHEMA_VERSION}"
    with pytest.raises(SchemaVersionError, match=match):
        StatsDB(tmp_path)
    with pytest.raises(SchemaVersionError, match=match):
        StatsWriter(tmp_path)


def test_unreadable_version_file(tmp_path):
    (tmp_path / S.VERSION_FILE).write_text("{not json")
    with pytest.raises(CorruptDataError, match=r"deepviz.json: expected JSON with an integer 'schema_version'"):
        StatsDB(tmp_path)


def test_missing_db_folder(tmp_path):
    with pytest.raises(NotFoundError, match=r"No stats db at '.*nowhere'.*StatsCallback"):
        StatsDB(tmp_path / "nowhere")


def test_unwritable_db_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match=r"stats db folder '.*a_file/db' is not writable.*Pass a folder you can write to"):
        StatsWriter(blocker / "db")


def test_lookup_errors_list_what_exists(tmp_path):
    writer = StatsWriter(tmp_path)
    assert StatsDB(tmp_path).runs().empty
    with pytest.raises(NotFoundError, match="holds no runs yet"):
        StatsDB(tmp_path).steps()
    write_run(writer)
    write_step(writer, step=0)
    write_step(writer, step=4)
    db = StatsDB(tmp_path)
    with pytest.raises(NotFoundError, match=r"Unknown run 'r9'\. Available: r1"):
        db.steps("r9")
    with pytest.raises(NotFoundError, match=r"Unknown step 2 in run 'r1'\. Available steps: 0, 4\."):
        db.get_stats(2)
    with pytest.raises(ConfigurationError, match="Step must be an integer, got 'x'"):
        db.get_stats("x")
    with pytest.raises(NotFoundError, match=r"Unknown layer 'fc9' at step 0\. Available: fc\."):
        db.activations(0, "fc9")
    with pytest.raises(NotFoundError, match=r"No stored weights for layer 'fc' at step 0\. Available: conv\."):
        db.weights(0, "fc")
    writer.write_probes("r1", [100, 101], [0, 2], ["c0", "c1", "c2"], [b"png0", b"png1"], np.zeros((2, 1, 2, 2), np.float32))
    assert db.thumbnail(101) == b"png1" and db.probes().class_name.tolist() == ["c0", "c2"]
    with pytest.raises(NotFoundError, match=r"Unknown probe image 7; the run has 2 probe images"):
        db.thumbnail(7)


def test_layer_names_must_be_safe_file_names(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    with pytest.raises(ConfigurationError, match=r"Layer name '\.\./x' cannot be used as a file name"):
        writer.write_snapshot(
            "r1", 0, epoch=0, trigger="start", probe_ids=[0], labels=[0], probs=[[1.0]], loss=[0.0],
            activations={"../x": np.zeros((1, 2))}, weights={}, metrics={},
        )
    assert not list((tmp_path / "_staging").glob("*")), "a failed write leaves no staging files"


def test_update_run_and_its_errors(tmp_path):
    writer = StatsWriter(tmp_path)
    with pytest.raises(NotFoundError, match="Run 'r1' has no metadata row"):
        writer.update_run("r1", name="x")
    write_run(writer)
    writer.update_run("r1", name="renamed")
    assert StatsDB(tmp_path).run_info("renamed")["run_id"] == "r1"
    with pytest.raises(ConfigurationError, match=r"Unknown run fields \['colour'\]"):
        writer.update_run("r1", colour="red")


def test_derived_tables_round_trip(tmp_path):
    import pandas as pd

    writer = StatsWriter(tmp_path)
    write_run(writer)
    write_step(writer)
    db = StatsDB(tmp_path)
    key = {"layer": "fc", "method": "pca", "seed": 0, "step": 0}
    assert db.get_derived("projections", key) is None
    db.put_derived("projections", key, pd.DataFrame({"probe_id": [100, 101], "x": [0.5, 1.0], "y": [2.0, 3.0]}))
    got = db.get_derived("projections", key)
    assert list(got.probe_id) == [100, 101] and got.layer.unique().tolist() == ["fc"]
    assert db.sql("SELECT count(*) AS n FROM projections").n[0] == 2
    with pytest.raises(ConfigurationError, match=r"Unknown derived table 'nope'\. Available: projections"):
        db.get_derived("nope", key)
    with pytest.raises(ConfigurationError, match=r"key layer='a/b' must be letters"):
        db.get_derived("projections", {"layer": "a/b"})


def test_ragged_vector_column_is_corrupt():
    column = pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32()))
    with pytest.raises(CorruptDataError, match="different lengths"):
        list_to_numpy(column)


def test_load_model_without_weights(tmp_path):
    writer = StatsWriter(tmp_path)
    write_run(writer)
    write_step(writer)
    with pytest.raises(NotFoundError, match=r"Step 0 of run 'r1' has no weights.*Steps with weights: \(none\)"):
        StatsDB(tmp_path).load_model(0)


# --------------------------------------------------------------------------- corrupt files


def test_corrupt_parquet_names_the_file_and_other_steps_stay_readable(populated_db, tmp_path):
    copy = tmp_path / "db"
    shutil.copytree(populated_db, copy)
    db = StatsDB(copy)
    run = db.resolve_run()
    bad = copy / "predictions" / f"run_id={run}" / "step=5" / "predictions.parquet"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(CorruptDataError, match=rf"Cannot read {bad}.*truncated or corrupt; other steps stay readable"):
        db.get_stats(5)
    for step in (0, 10):
        assert db.get_stats(step).probs_by_image.shape == (120, 10)
    assert db.steps() == [0, 5, 10]
    bad_act = copy / "activations" / f"run_id={run}" / "step=10" / "fc1.parquet"
    bad_act.write_bytes(b"PAR1garbage")
    db = StatsDB(copy)  # committed files never change, so a reader may cache them: open afresh
    with pytest.raises(CorruptDataError, match=rf"Cannot read {bad_act}"):
        db.activations(10, "fc1")
    assert db.activations(10, "fc2").shape == (120, 10)
    assert db.activations(0, "fc1").shape == (120, 64)


# --------------------------------------------------------------------------- atomic snapshots

# A training run in a subprocess, so it can be SIGKILLed; tests.faults.install
# makes the writer stop at a known point.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import os, sys, time, warnings
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset
    from deepviz import StatsCallback
    from tests.faults import install
    from trainers.models import SmallNet

    db, ckpt_dir, mode, arg, max_epochs = sys.argv[1:6]
    warnings.simplefilter("ignore")
    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype("float32")).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype("int64"))
    pl.seed_everything(0, verbose=False)
    train = DataLoader(TensorDataset(x[:320], y[:320]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[320:480], y[320:480]), batch_size=80)
    kwargs = {"every_n_train_steps": int(arg.split(":")[1])} if mode == "slow" else {}
    cb = StatsCallback(db, probe=(x[480:780], y[480:780]), probe_size=120, **kwargs)
    if mode == "kill":
        # arg = "<step>:<n>": stop for good at the n-th file of that step's snapshot
        target, n = (int(v) for v in arg.split(":"))
        seen = []
        def hook(path):
            # staged files live in _staging/<run>--<step>--<id>/, committed ones in step=<step>/
            if f"--{target}--" in str(path) or f"step={target}" in str(path):
                seen.append(path)
                if len(seen) == n:
                    Path(db, "ARMED").write_text(str(path))
                    time.sleep(600)
        install(hook)
    elif mode == "slow":
        delay = float(arg.split(":")[0])
        install(lambda path: time.sleep(delay))
    trainer = pl.Trainer(
        max_epochs=int(max_epochs), accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[cb, ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=-1)],
    )
    last = Path(ckpt_dir) / "last.ckpt"
    trainer.fit(SmallNet(), train, val, ckpt_path=str(last) if mode == "resume" else None)
    print("DONE", cb.run_id)
    """
)


def run_training(tmp_path, mode, arg="", max_epochs=3, **popen):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    args = [sys.executable, str(script), str(tmp_path / "db"), str(tmp_path / "ckpt"), mode, arg, str(max_epochs)]
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def check_complete(db_path: Path, n_probe: int = 120) -> list[int]:
    """Every step plain DuckDB or StatsDB shows is complete; returns the visible steps."""
    # While training writes, each later look may see more steps, never fewer.
    steps = sorted(r[0] for r in duckdb.sql(f"SELECT step FROM '{db_path}/steps/**/*.parquet'").fetchall())
    db = StatsDB(db_path)
    listed = db.steps()
    assert set(steps) <= set(listed)
    layers = db.run_info()["layers"]
    for step in listed:
        s = db.get_stats(step)
        assert len(s.probe_ids) == n_probe and set(s.embeddings) == set(layers)
        assert all(v.shape[0] == n_probe for v in s.embeddings.values())
    # One query sees each step whole, across tables.
    views = db.sql(
        "SELECT s.step, (SELECT count(*) FROM predictions p WHERE p.step = s.step) AS np, "
        "(SELECT count(*) FROM activations a WHERE a.step = s.step) AS na FROM steps s ORDER BY s.step"
    )
    assert set(listed) <= set(views.step)
    assert (views.np == n_probe).all() and (views.na == n_probe * len(layers)).all()
    return list(views.step)


# The snapshot of step 10 has these files: predictions, fc1, fc2, weights,
# state, step, then the commit moves 5 folders (steps last). Kill after the
# 1st staged file, after the last staged file, and in the middle of the
# commit; any n in 1..10 is a valid kill point. Each kill costs one training
# subprocess; resuming with Lightning costs another, so only one case does it
# (the others reopen the run the way a resume does, with open_run).
KILL_POINTS = {"staging-first-file": (1, False), "staging-last-file": (6, False), "commit-middle": (8, True)}


@pytest.mark.parametrize("where", list(KILL_POINTS))
def test_kill_in_the_middle_of_a_write(tmp_path, where):
    n, lightning_resume = KILL_POINTS[where]
    kill_during_write(tmp_path, n)
    db_path = tmp_path / "db"
    run_id = StatsDB(db_path).resolve_run()
    if lightning_resume:
        # Resume from the last checkpoint (step 5): the same run goes on, leftovers are cleared.
        proc = run_training(tmp_path, "resume")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.split()[-1] == run_id
        assert check_complete(db_path) == [0, 5, 10, 15]
        expected = ["step=0", "step=10", "step=15", "step=5"]
        assert StatsDB(db_path).run_info()["ended_at"] is not None
    else:
        assert StatsWriter(db_path).open_run(run_id) == [0, 5]
        expected = ["step=0", "step=5"]
    assert not list((db_path / "_staging").glob("*"))
    for table in ("predictions", "activations", "weights"):
        folders = sorted(p.name for p in (db_path / table / f"run_id={run_id}").iterdir())
        assert folders == expected, table
    assert sorted(p.name for p in (db_path / "states" / f"run_id={run_id}").iterdir()) == [f"{s}.pt" for s in expected]


def kill_during_write(tmp_path: Path, n: int) -> None:
    """Train in a subprocess, SIGKILL it at the n-th file of the snapshot of step 10, check the db."""
    proc = run_training(tmp_path, "kill", f"10:{n}")
    armed = tmp_path / "db" / "ARMED"
    deadline = time.monotonic() + 300
    while not armed.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the writer never reached the kill point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    db_path = tmp_path / "db"
    assert list((db_path / "_staging").glob("*")), "the kill left staging files: it did stop mid-write"
    assert check_complete(db_path) == [0, 5], "step 10 was being written: it must not show"
    raw = duckdb.sql(f"SELECT DISTINCT step FROM '{db_path}/steps/**/*.parquet' ORDER BY step").fetchall()
    assert raw == [(0,), (5,)]


def test_concurrent_reader_sees_only_complete_steps(tmp_path):
    # Snapshots every 2 steps, each file written slowly, while this process reads.
    proc = run_training(tmp_path, "slow", "0.01:2", max_epochs=2)
    db_path = tmp_path / "db"
    seen, queries = set(), 0
    while proc.poll() is None:
        if (db_path / "runs").exists() and list((db_path / "steps").glob("*/step=*/step.parquet")):
            seen.update(check_complete(db_path))
            raw = duckdb.sql(
                f"SELECT step, count(*) FROM '{db_path}/predictions/**/*.parquet' GROUP BY step"
            ).fetchall()
            assert all(n == 120 for _, n in raw)
            queries += 1
        else:
            time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert queries >= 3 and len(seen) >= 2, (queries, seen)
    assert check_complete(db_path) == [0, 2, 4, 5, 6, 8, 10]


def test_reading_needs_neither_flask_nor_lightning():
    script = (
        "import sys, deepviz\n"
        "from deepviz import StatsDB\n"
        "heavy = [m for m in ('flask', 'lightning', 'pytorch_lightning') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True)
