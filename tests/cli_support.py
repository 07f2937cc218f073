"""What the CLI tests share: run ``main`` in-process, a subprocess environment, one trained db per module."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pytest

from deepviz.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr), whether it returns or argparse exits."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def env_with_repo() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A db holding one 1-epoch digits run, trained through ``deepviz train`` in-process."""
    base = tmp_path_factory.mktemp("cli")
    db = base / "stats_db"
    argv = ["train", "--dataset", "digits", "--epochs", "1", "--probe-size", "50", "--db", str(db),
            "--run-name", "first", "--no-progress"]
    out = io.StringIO()
    old = sys.stdout
    sys.stdout = out
    try:
        code = main(argv)
    finally:
        sys.stdout = old
    return {"db": db, "code": code, "out": out.getvalue()}


def assert_error(code, err, message):
    assert code == 1
    assert err.startswith("deepviz: error: ")
    assert re.search(message, err), err
    assert "Traceback" not in err
