"""The ``deepviz`` command, run in-process through ``main(argv)`` and once as ``python -m deepviz``.

One short digits run, trained once per module, serves the read-only
commands (runs, sql, analyze); the error paths need no training at all.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from deepviz import StatsDB, cli

from .cli_support import ROOT, assert_error, env_with_repo, run_main, trained  # noqa: F401 - trained is a fixture

CIFAR_SUBSET = ROOT.parent / "shared/data/cifar-10-batches-py"


COMMANDS = ["train", "demo", "serve", "runs", "sql", "analyze", "export"]


# --------------------------------------------------------------------------- imports


def test_import_deepviz_and_deepviz_sql_load_nothing_heavy(tmp_path):
    """``import deepviz`` loads no Flask, Lightning, torch or pyarrow; ``deepviz sql`` no Flask, Lightning or torch."""
    from deepviz.store import StatsWriter

    StatsWriter(tmp_path / "db")
    script = (
        "import sys\n"
        "heavy = ('flask', 'lightning', 'pytorch_lightning', 'torch', 'pyarrow', 'duckdb')\n"
        "import deepviz\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "from deepviz.cli import main\n"
        "main(['sql', sys.argv[1], 'SELECT 1 AS one', '--format', 'csv'])\n"
        "print([m for m in heavy[:4] if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")], env=env_with_repo(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n") == ["[]", "one", "1", "[]", ""]


# --------------------------------------------------------------------------- parser


def test_listed_names_match_the_registries():
    from deepviz.datasets import DATASETS
    from trainers.models import MODELS

    assert cli.DATASET_NAMES == tuple(DATASETS)
    assert cli.MODEL_NAMES == tuple(MODELS)


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in COMMANDS])
def test_help_everywhere(capsys, argv):
    code, out, _ = run_main(capsys, *argv)
    assert code == 0
    assert out.startswith(f"usage: deepviz {argv[0] if len(argv) > 1 else ''}".rstrip())


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and re.match(r"deepviz \d+\.\d+", out)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "imagenet"], r"argument --dataset: invalid choice: 'imagenet'"),
        (["train", "--model", "vgg16"], r"argument --model: invalid choice: 'vgg16'"),
        (["train", "--epochs", "0"], r"argument --epochs: expected a positive integer, got '0'"),
        (["train", "--probe-size", "many"], r"argument --probe-size: expected a positive integer, got 'many'"),
        (["train", "--lr", "-1"], r"argument --lr: expected a positive number, got '-1'"),
        (["train", "--lr", "nan"], r"argument --lr: expected a positive number, got 'nan'"),
        (["demo", "--port", "70000"], r"argument --port: expected a port number 0..65535"),
        (["serve", "--port", "http"], r"argument --port: expected a port number 0..65535"),
        (["sql", "SELECT 1", "--format", "xml"], r"argument --format: invalid choice: 'xml'"),
        (["runs", "--format", "yaml"], r"argument --format: invalid choice: 'yaml'"),
        (["sql", "SELECT 1", "--max-rows", "0"], r"argument --max-rows: expected a positive integer"),
        (["sql"], r"the following arguments are required: QUERY"),
        (["train", "--no-such-option"], r"unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(capsys, argv, message):
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert re.search(message, err), err


# --------------------------------------------------------------------------- deepviz errors: exit 1, no traceback


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("cifar10", r"CIFAR-10 files missing in .*batches\.meta.*--download"),
        ("mnist", r"MNIST files missing in .*train-images-idx3-ubyte.*--download"),
        ("fashion-mnist", r"Fashion-MNIST files missing in .*--download"),
        ("stl10", r"STL-10 files missing in .*train_X\.bin.*--download"),
    ],
)
def test_missing_data_without_download(capsys, tmp_path, dataset, message):
    code, _, err = run_main(capsys, "train", "--dataset", dataset, "--data-dir", tmp_path / "empty",
                            "--db", tmp_path / "db", "--no-progress")
    assert_error(code, err, message)
    assert not (tmp_path / "db").exists()  # nothing is created before the data is found


def test_folder_dataset_needs_a_data_dir(capsys, tmp_path):
    code, _, err = run_main(capsys, "train", "--dataset", "folder", "--db", tmp_path / "db", "--no-progress")
    assert_error(code, err, r"The 'folder' dataset needs data_dir")


# `serve` waits on a missing db instead (tests/webui/test_serve_before_db.py).
@pytest.mark.parametrize("command", [["runs"], ["sql", "SELECT 1"], ["analyze"]])
def test_missing_db(capsys, tmp_path, command):
    missing = tmp_path / "nowhere"
    argv = [command[0], missing, *command[1:]]
    code, _, err = run_main(capsys, *argv)
    assert_error(code, err, rf"No stats db at '{re.escape(str(missing))}'")


@pytest.mark.parametrize("command", [["runs"], ["sql", "SELECT 1"], ["analyze"], ["serve"]])
def test_folder_that_is_not_a_db(capsys, tmp_path, command):
    (tmp_path / "notes.txt").write_text("not a db")
    code, _, err = run_main(capsys, command[0], tmp_path, *command[1:])
    assert_error(code, err, r"is a folder but not a stats db \(it has no deepviz\.json")


def test_file_instead_of_db(capsys, tmp_path):
    path = tmp_path / "stats.parquet"
    path.write_bytes(b"PAR1")
    code, _, err = run_main(capsys, "runs", path)
    assert_error(code, err, r"is a file, not a stats db folder")


def test_unknown_run(capsys, trained):
    code, _, err = run_main(capsys, "analyze", trained["db"], "--run", "no-such-run")
    assert_error(code, err, r"Unknown run 'no-such-run'\. Available: \d{8}-\d{6}-")


def test_analyze(capsys, trained):
    code, out, err = run_main(capsys, "analyze", trained["db"], "--run", "first")
    assert code == 0, err
    assert re.search(r"analyzed run \S+ in [0-9.]+ s", out)


def test_empty_db_lists_no_runs(capsys, tmp_path):
    from deepviz.store import StatsWriter

    StatsWriter(tmp_path / "db")  # creates the folder and its version file
    code, out, err = run_main(capsys, "runs", tmp_path / "db")
    assert code == 0 and out == ""
    assert "No runs in" in err and "deepviz train --db" in err


# --------------------------------------------------------------------------- train, runs, sql


def test_train_in_process(trained):
    assert trained["code"] == 0
    m = re.search(r"run_id=(\S+) val_acc=([0-9.]+) val_loss=([0-9.]+) epochs=1 wall_s=", trained["out"])
    assert m, trained["out"]
    run_id, val_acc = m.group(1), float(m.group(2))
    assert 0.0 < val_acc <= 1.0
    db = StatsDB(trained["db"])
    assert db.run_ids() == [run_id]
    info = db.run_info(run_id)
    assert info["name"] == "first" and info["dataset"] == "digits" and info["n_probe"] == 50
    steps = db.steps(run_id)
    assert steps[0] == 0 and len(steps) == 2  # the random init, then the end of the epoch
    # Lightning's checkpoints sit beside the db; the db records its own per-step copy (a hard link) of
    # each one saved at a snapshot step, never last.ckpt, which the next epoch overwrites.
    ckpt_dir = trained["db"].parent / "checkpoints" / run_id
    assert (ckpt_dir / "last.ckpt").is_file()
    recorded = db.checkpoints(run_id)
    assert set(recorded) == {steps[-1]}
    assert all(Path(p) == (db.checkpoint_dir(run_id) / f"step={s}.ckpt").absolute() for s, p in recorded.items())


def test_runs_formats_agree(capsys, trained):
    code, table, _ = run_main(capsys, "runs", trained["db"])
    assert code == 0
    code, csv_text, _ = run_main(capsys, "runs", trained["db"], "--format", "csv")
    assert code == 0
    code, json_text, _ = run_main(capsys, "runs", trained["db"], "--format", "json")
    assert code == 0
    rows = json.loads(json_text)
    frame = pd.read_csv(io.StringIO(csv_text))
    assert len(rows) == len(frame) == 1
    row = rows[0]
    assert row["run_id"] in table and row["n_steps"] == 2 and 0 <= row["final_acc"] <= 1
    assert frame.loc[0, "run_id"] == row["run_id"] and frame.loc[0, "n_steps"] == 2
    assert table.splitlines()[0].split()[:3] == ["run_id", "name", "model"]


def test_an_os_error_is_one_line_not_a_traceback(capsys, trained, tmp_path):
    """A derived table that cannot be written (here a file stands where its folder goes, as a full disk
    would refuse it): `deepviz analyze` says so in one line and exits 1."""
    import shutil

    copy = tmp_path / "db"
    shutil.copytree(trained["db"], copy)
    shutil.rmtree(copy / "data_map", ignore_errors=True)
    (copy / "data_map").write_text("in the way")
    code, _, err = run_main(capsys, "analyze", copy)
    assert_error(code, err, r"\[Errno \d+\] .*data_map.*\. Free space, fix permissions or the path, then run")


def test_demo_without_serving(capsys, tmp_path):
    db = tmp_path / "demo_db"
    code, out, _ = run_main(capsys, "demo", "--no-serve", "--epochs", "1", "--max-train", "100",
                            "--probe-size", "20", "--db", db, "--no-progress")
    assert code == 0
    assert f"Browse it: deepviz serve {db}" in out
    assert StatsDB(db).run_info()["name"] == "demo"


def test_train_as_a_module(tmp_path):
    """``python -m deepviz train`` in a fresh process, with a relative db path and Lightning's progress bar."""
    proc = subprocess.run(
        [sys.executable, "-m", "deepviz", "train", "--dataset", "digits", "--epochs", "1", "--probe-size", "50",
         "--max-train", "300", "--db", "rel_db"],
        cwd=tmp_path, env=env_with_repo(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"run_id=\S+ val_acc=[0-9.]+", proc.stdout)
    assert "Epoch 0" in proc.stdout  # Lightning's progress bar writes to stdout
    assert "Tip:" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert StatsDB(tmp_path / "rel_db").steps() == [0, 10]  # ceil(300 / 32) optimizer steps
    assert (tmp_path / "checkpoints").is_dir()


@pytest.mark.skipif(not CIFAR_SUBSET.is_dir(), reason="the CIFAR-10 subset in ../shared is absent")
def test_train_on_the_cifar_subset(capsys, tmp_path):
    code, out, err = run_main(capsys, "train", "--dataset", "cifar10", "--data-dir", CIFAR_SUBSET, "--epochs", "1",
                              "--max-train", "128", "--probe-size", "40", "--db", tmp_path / "db", "--no-progress")
    assert code == 0, err
    db = StatsDB(tmp_path / "db")
    info = db.run_info()
    assert info["dataset"] == "cifar10" and info["model_class"].endswith(":AlexNetSmall")
    assert info["class_names"][0] == "airplane" and list(info["input_shape"]) == [3, 32, 32]
    assert db.steps() == [0, 2]  # 128 images in batches of 64


# --------------------------------------------------------------------------- serve


def test_loopback_detection():
    assert cli._is_loopback("127.0.0.1") and cli._is_loopback("localhost") and cli._is_loopback("::1")
    assert not cli._is_loopback("0.0.0.0") and not cli._is_loopback("192.168.1.7")
    assert not cli._is_loopback("example.org")


def start_server(db, *extra):
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepviz", "serve", str(db), "--port", "0", *extra],
        env=env_with_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    m = re.search(r"at (http://\S+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no URL in {line!r}: {proc.stderr.read()[-2000:]}")
    return proc, m.group(1)


def test_serve_lists_runs(trained):
    proc, url = start_server(trained["db"])
    try:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        base = url.rstrip("/")
        with urllib.request.urlopen(f"{base}/api/runs", timeout=30) as response:
            payload = json.loads(response.read())
        runs = payload if isinstance(payload, list) else payload.get("runs", payload.get("data"))
        assert [r["run_id"] for r in runs] == StatsDB(trained["db"]).run_ids()
        assert runs[0]["steps"] in (2, [0, StatsDB(trained["db"]).steps()[-1]])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_beyond_loopback_requires_a_token(trained):
    proc, url = start_server(trained["db"], "--host", "0.0.0.0")
    try:
        assert re.search(r"\?token=[A-Za-z0-9_\-]{16,}$", url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_on_a_busy_port(capsys, trained):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_main(capsys, "serve", trained["db"], "--port", port)
    assert_error(code, err, rf"Cannot listen on 127\.0\.0\.1:{port} .*--port")


def test_bare_command_prints_the_help(capsys):
    code, _, err = run_main(capsys)
    assert code == 2
    assert "usage: deepviz" in err and "train" in err and "serve" in err and "sql" in err


def test_demo_checks_the_port_before_training(capsys, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, out, err = run_main(capsys, "demo", "--db", tmp_path / "db", "--port", port)
    assert_error(code, err, rf"Cannot listen on 127\.0\.0\.1:{port} .*--port 0 picks a free one")
    assert not (tmp_path / "db").exists()  # nothing was trained


@pytest.mark.parametrize("token", ["", "short"])
def test_serve_refuses_an_empty_or_short_token(capsys, trained, token):
    code, _, err = run_main(capsys, "serve", trained["db"], "--host", "0.0.0.0", "--port", "0", "--token", token)
    assert_error(code, err, r"--token must be at least 8 characters")


def test_serve_takes_folders_of_checkpoints_to_trust():
    from deepviz.cli import build_parser

    args = build_parser().parse_args(["serve", "db", "--trust-checkpoints", "/ckpt/a", "--trust-checkpoints", "/ckpt/b"])
    assert args.trust_checkpoints == ["/ckpt/a", "/ckpt/b"]
    assert build_parser().parse_args(["serve", "db"]).trust_checkpoints == []
