"""Comparing runs outside the UI: comparable runs from deepviz train, StatsDB.compare, the README's examples,
and deepviz runs' hparams and filters. Real runs: four tiny digits trainings and one with disjoint probe ids."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from deepviz import StatsDB
from deepviz.analysis import compare as C
from deepviz.cli import main
from deepviz.errors import ConfigurationError
from tests.compare_support import train_compare_db, train_disjoint_run

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def compare_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("compare") / "stats_db"
    train_compare_db(db)
    train_disjoint_run(db)
    return db


@pytest.fixture
def db(compare_db) -> StatsDB:
    return StatsDB(compare_db)


def test_runs_with_other_seeds_share_their_probe_set(db):
    a, b = db.probes("seed1"), db.probes("seed2")
    assert a.probe_id.tolist() == b.probe_id.tolist() and a.label.tolist() == b.label.tolist()
    assert db.run_info("seed1")["probe_seed"] == db.run_info("seed2")["probe_seed"] == 0
    # ... and yet they are other trainings: their predictions differ somewhere
    assert not db.compare("seed1", "seed2").agree.all()


def test_a_run_compared_with_itself_agrees_everywhere_at_every_step(db):
    for step in db.steps("seed1"):
        table = db.compare("seed1", "seed1", step, step)
        assert table.agree.all() and (table.pred_a == table.pred_b).all()
        assert table.learned_a.equals(table.learned_b)
        assert table.attrs["shared"] == table.attrs["n_a"] == 120


def test_compare_matches_the_numpy_computation_at_two_steps(db):
    ra, rb = db.resolve_run("seed1"), db.resolve_run("seed2")
    ids = db.probes(ra).probe_id.to_numpy()
    results = []
    for step in db.steps(ra)[1:]:
        table = db.compare(ra, rb, step, step)
        pa, pb = db.predictions(step, ra), db.predictions(step, rb)
        assert table.probe_id.tolist() == ids.tolist()
        assert table.agree.to_numpy().tolist() == (pa["pred"] == pb["pred"]).tolist()
        history = [s for s in db.steps(ra) if s <= step]
        for run, column in ((ra, "learned_a"), (rb, "learned_b")):
            correct = np.vstack([db.predictions(s, run)["correct"] for s in history])
            expected = C.first_stable_steps(correct, history)
            got = table[column].astype("float64").to_numpy(na_value=np.nan)
            assert np.array_equal(got, expected, equal_nan=True)
        results.append(table)
    # true at every step: the two steps' tables differ (the runs changed in between)
    assert not results[0].pred_a.equals(results[1].pred_a)


def test_compare_uses_the_shared_probe_ids(db):
    table = db.compare("seed1", "probe80")
    assert (table.attrs["n_a"], table.attrs["n_b"], table.attrs["shared"]) == (120, 80, 80)
    assert set(table.probe_id) == set(db.probes("probe80").probe_id)


def test_compare_refuses_runs_that_share_no_probe_image(db):
    assert not np.intersect1d(db.probes("seed1").probe_id, db.probes("disjoint").probe_id).size  # the premise
    with pytest.raises(ConfigurationError, match=r"\(120 probe images\) and .* \(10\) share no probe image with the same "
                                                 r"label \(0 shared ids\): compare runs of one dataset"):
        db.compare("seed1", "disjoint")


def test_compare_names_an_unknown_step(db):
    with pytest.raises(LookupError, match=r"Unknown step 999 in run .*Available steps: 0, 13, 26"):
        db.compare("seed1", "seed2", step_a=999)


def _section() -> str:
    text = README.read_text()
    return text[text.index("## Compare runs"):text.index("## Commands")]


# The section's Python block (it trains its own two runs) is run as written by tests/test_readme.py.


def test_readme_commands_run_as_written(compare_db, monkeypatch, capsys):
    monkeypatch.chdir(compare_db.parent)
    lines = [ln for ln in re.findall(r"^deepviz (?:sql|runs) .*$", _section(), re.M)]
    assert len(lines) == 3
    outputs = []
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0
        outputs.append(capsys.readouterr().out)
    db = StatsDB(compare_db)
    table = db.compare("seed1", "seed2")
    never_b = set(table.probe_id[table.correct_a]) - {
        int(i) for s in db.steps("seed2") for i, ok in zip(db.predictions(s, "seed2")["probe_id"], db.predictions(s, "seed2")["correct"]) if ok}
    assert [int(x) for x in re.findall(r"^\s*(\d+)\s+\d+\s*$", outputs[0], re.M)] == sorted(never_b)
    agreement = [float(x) for x in re.findall(r"^\s*\d+\s+([\d.]+)\s*$", outputs[1], re.M)]
    assert agreement[-1] == pytest.approx(table.agree.mean(), abs=1e-6)
    assert "fc64" in outputs[2] and "seed1" not in outputs[2]


def test_runs_command_shows_hparams_and_filters_and_sorts(compare_db, capsys):
    assert main(["runs", str(compare_db), "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert {"hp.lr", "hp.in_channels", "hp.image_size", "hp.n_classes"} <= set(header)
    assert main(["runs", str(compare_db), "--where", "model=SmallNet", "--where", "n_probe=120", "--sort", "name", "--desc"]) == 0
    names = [ln.split()[1] for ln in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["seed2", "seed1"]


def test_runs_command_refuses_an_unknown_key_and_a_bad_condition(compare_db, capsys):
    assert main(["runs", str(compare_db), "--where", "colour=red"]) == 1
    assert re.search(r"Unknown column or hparam 'colour'. Available: run_id, .*hp\.lr", capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["runs", str(compare_db), "--where", "lr"])
    assert "expected KEY=VALUE such as lr=0.003" in capsys.readouterr().err
