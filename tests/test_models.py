"""deepviz.models: the weights a run had at each step, rebuilt from a real `deepviz train` run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepviz import StatsDB
from deepviz.errors import ConfigurationError, NotFoundError, UntrustedDataError
from deepviz.introspect import saliency
from deepviz.models import (
    StepModel,
    check_hparams,
    load_model,
    load_weights,
    own_checkpoint_dir,
    resolve_model_class,
    steps_with_weights,
)

#: Stored probabilities and weights are float16: about three significant digits.
F16 = {"rtol": 2e-3, "atol": 2e-3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """`deepviz train digits --epochs 2` as the CLI runs it: ModelCheckpoint with save_last, best-k by val_acc."""
    from trainers.train import train

    db = tmp_path_factory.mktemp("models") / "stats_db"
    train("digits", epochs=2, probe_size=120, db=db, progress=False)
    return db


@pytest.fixture()
def db_copy(trained, tmp_path) -> StatsDB:
    """A private copy of the trained db (its checkpoint files included) that records its own files."""
    shutil.copytree(trained, tmp_path / "stats_db")
    db = StatsDB(tmp_path / "stats_db")
    writer = _writer(db)
    for step, path in db.checkpoints().items():  # the copy records the copied files, not the module's
        writer.record_checkpoint(db.resolve_run(), step, path.replace(str(trained), str(db.root)))
    return db


def _writer(db: StatsDB):
    from deepviz.store import StatsWriter

    return StatsWriter(db.root)


def _probs(model, inputs) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(inputs)), 1).numpy()


def test_every_step_loads_that_steps_weights(trained):
    db = StatsDB(trained)
    steps = db.steps()
    assert len(steps) == 3 and db.checkpoints(), "the run has a snapshot per epoch and recorded checkpoints"
    inputs = db.probe_inputs()
    for step in steps:
        model = load_model(db, step)
        assert not model.training
        for layer, stored in db.weights(step).items():
            loaded = dict(model.named_parameters())[f"{layer}.weight"].detach().numpy()
            np.testing.assert_allclose(loaded, stored, **F16, err_msg=f"{layer} at step {step}")
        np.testing.assert_allclose(_probs(model, inputs), db.predictions(step)["probs"], **F16, err_msg=f"step {step}")
        # The store's own entry point gives the same model.
        np.testing.assert_array_equal(db.load_model(step).conv1.weight.detach().numpy(), model.conv1.weight.detach().numpy())


def test_saliency_differs_between_steps(trained):
    db = StatsDB(trained)
    first, last = db.steps()[1], db.steps()[-1]
    image = torch.from_numpy(db.probe_inputs()[0])
    a = saliency(load_model(db, first), image, target=0)
    b = saliency(load_model(db, last), image, target=0)
    assert not np.allclose(a, b, atol=1e-6)


def test_describe_says_which_weights(trained):
    db = StatsDB(trained)
    step = db.steps()[1]
    loaded = load_weights(db, step)
    assert isinstance(loaded, StepModel)
    assert loaded.describe() == {"source": "state", "step": step, "path": str(db.state_path(step)), "note": None}


def _without_states(db: StatsDB) -> None:
    shutil.rmtree(db.root / "states")


def test_checkpoint_used_only_for_the_step_it_holds(db_copy):
    _without_states(db_copy)
    run_id = db_copy.resolve_run()
    ckpts = db_copy.checkpoints()
    past, last = min(ckpts), max(ckpts)
    loaded = load_weights(db_copy, last)
    assert loaded.source == "checkpoint" and loaded.step == last and loaded.note is None
    np.testing.assert_allclose(loaded.model.conv1.weight.detach().numpy(), db_copy.weights(last, "conv1"), **F16)
    # An older db recorded last.ckpt against every epoch's step, and a step file may be overwritten:
    # each now holds the last step only, and is not used for the past one.
    folder = db_copy.checkpoint_dir()
    shutil.copy(ckpts[last], folder / "last.ckpt")
    _writer(db_copy).record_checkpoint(run_id, past, str(folder / "last.ckpt"))
    shutil.copy(ckpts[last], folder / f"step={past}.ckpt")
    for name in ("last", f"step={past}"):
        with pytest.raises(NotFoundError, match=rf"Step {past} of run '{run_id}' has no weights.*{name}\.ckpt holds step {last}, not {past}.*Steps with weights: {last}\."):
            load_weights(db_copy, past)
    assert steps_with_weights(db_copy) == [last]


def test_corrupt_checkpoint_is_not_used(db_copy):
    step = max(db_copy.checkpoints())
    path = Path(db_copy.checkpoints()[step])
    path.write_bytes(path.read_bytes()[:100])  # truncated last.ckpt
    # With the stored state dict, the checkpoint is not even needed: that state is the step's weights.
    assert load_weights(db_copy, step).source == "state"
    _without_states(db_copy)
    with pytest.raises(NotFoundError, match=rf"Step {step} .*has no weights.*{path.name} cannot be read"):
        load_weights(db_copy, step)
    assert step not in steps_with_weights(db_copy)


def test_corrupt_state_falls_back_to_a_checkpoint_of_that_step_with_a_note(db_copy):
    step = max(db_copy.checkpoints())
    state = db_copy.state_path(step)
    state.write_bytes(state.read_bytes()[:50])
    loaded = load_weights(db_copy, step)
    assert loaded.source == "checkpoint" and loaded.step == step
    assert loaded.note is not None and "stored state dict" in loaded.note and "cannot be read" in loaded.note
    np.testing.assert_allclose(loaded.model.conv1.weight.detach().numpy(), db_copy.weights(step, "conv1"), **F16)


def test_checkpoint_outside_the_db_folder_is_refused_unless_allowed(db_copy, tmp_path):
    _without_states(db_copy)
    run_id = db_copy.resolve_run()
    step = max(db_copy.checkpoints())
    folder = own_checkpoint_dir(db_copy, run_id)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)  # the db keeps no checkpoint file; the one of the step lies elsewhere
    moved = elsewhere / "last.ckpt"
    (elsewhere / f"step={step}.ckpt").rename(moved)
    _writer(db_copy).record_checkpoint(run_id, step, str(moved))
    with pytest.raises(NotFoundError, match=rf"{moved} is outside the db's checkpoint folder {folder}.*allow_checkpoints_from"):
        load_weights(db_copy, step)
    assert steps_with_weights(db_copy) == []
    loaded = load_weights(db_copy, step, allow_checkpoints_from=[elsewhere])
    assert loaded.source == "checkpoint" and loaded.path == str(moved)
    assert steps_with_weights(db_copy, allow_checkpoints_from=[elsewhere]) == [step]
    # A link planted in the db's folder, named as the callback names its files, leads out too.
    folder.mkdir(parents=True)
    (folder / f"step={step}.ckpt").symlink_to(moved)
    _writer(db_copy).record_checkpoint(run_id, step, str(folder / f"step={step}.ckpt"))
    with pytest.raises(NotFoundError, match=rf"step={step}\.ckpt is outside the db's checkpoint folder {folder}"):
        load_weights(db_copy, step)
    assert steps_with_weights(db_copy) == []


def test_a_copied_db_reads_its_own_step_files(trained, tmp_path):
    # Copied as is: the recorded absolute paths name the original db, which the copy does not trust.
    db = StatsDB(shutil.copytree(trained, tmp_path / "stats_db"))
    _without_states(db)
    step = max(db.checkpoints())
    assert db.checkpoints()[step].startswith(str(trained))
    loaded = load_weights(db, step)
    assert loaded.source == "checkpoint" and loaded.path == str(db.checkpoint_dir().absolute() / f"step={step}.ckpt")
    assert steps_with_weights(db) == sorted(db.checkpoints())


def test_symlink_and_dotdot_out_of_the_checkpoint_folder_are_refused(db_copy, tmp_path):
    _without_states(db_copy)
    run_id = db_copy.resolve_run()
    step = max(db_copy.checkpoints())
    folder = own_checkpoint_dir(db_copy, run_id)
    outside = tmp_path / "outside.ckpt"
    shutil.move(db_copy.checkpoints()[step], outside)  # the db's own step file would be used instead
    (folder / "link.ckpt").symlink_to(outside)
    for named in (folder / "link.ckpt", folder / ".." / ".." / ".." / "outside.ckpt"):
        _writer(db_copy).record_checkpoint(run_id, step, str(named))
        with pytest.raises(NotFoundError, match=r"is outside the db's checkpoint folder"):
            load_weights(db_copy, step)


def test_no_weights_names_the_steps_that_have_them(db_copy):
    run_id = db_copy.resolve_run()
    first, step, last = db_copy.steps()
    db_copy.state_path(step).unlink()
    Path(db_copy.checkpoints()[step]).unlink()
    with pytest.raises(NotFoundError, match=rf"Step {step} of run '{run_id}' has no weights.*Steps with weights: {first}, {last}\."):
        load_weights(db_copy, step)
    # A step whose state and checkpoint files exist but cannot be read has no weights either.
    for path in (db_copy.state_path(last), Path(db_copy.checkpoints()[last])):
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(NotFoundError, match=rf"Step {step} of run '{run_id}' has no weights.*Steps with weights: {first}\."):
        load_weights(db_copy, step)
    assert steps_with_weights(db_copy) == [first]
    with pytest.raises(NotFoundError, match=r"Unknown step 7 "):
        load_weights(db_copy, 7)


@pytest.mark.parametrize(
    "hparams, match",
    [
        ([1, 2], r"hparams of run 'r' must be a JSON object \(a dict of names to values\), got list"),
        ({1: 2}, r"hparams of run 'r' must be a JSON object .*got a key 1"),
        ({"a": {"b": {1, 2}}}, r"hparams of run 'r' hold a set at a\.b: only JSON values"),
        ({"a": [1, b"x"]}, r"hparams of run 'r' hold a bytes at a\[1\]: only JSON values"),
    ],
)
def test_hparams_must_be_json(hparams, match):
    with pytest.raises(UntrustedDataError, match=match):
        check_hparams(hparams, "r")
    assert issubclass(UntrustedDataError, ValueError)


def test_hparams_that_do_not_fit_the_class(db_copy):
    _writer(db_copy).update_run(db_copy.resolve_run(), hparams='{"no_such_arg": 1}')
    with pytest.raises(ConfigurationError, match=r"Cannot rebuild trainers\.models:SmallNet from its stored hparams"):
        load_weights(db_copy, db_copy.steps()[0])


def test_the_run_class_resolves_to_its_lightning_module():
    from trainers.models import SmallNet

    assert resolve_model_class("trainers.models:SmallNet", "r") is SmallNet


@pytest.mark.parametrize(
    "spec, kind",
    [("subprocess:Popen", "a class"), ("os:system", "a builtin_function_or_method"), ("builtins:eval", "a builtin_function_or_method"),
     ("json:dumps", "a function"), ("torch:nn", "a module")],
)
def test_a_model_class_that_is_no_module_is_refused(spec, kind):
    with pytest.raises(UntrustedDataError, match=rf"Run 'r' names '{spec}' as its model class, but that is {kind}, not a subclass of torch\.nn\.Module: deepviz refuses to call it"):
        resolve_model_class(spec, "r")


@pytest.mark.parametrize("spec", ["SmallNet", "trainers.models:", "os:system()", "../evil:X", 42, None])
def test_a_model_class_that_is_no_import_path_is_refused(spec):
    with pytest.raises(UntrustedDataError, match=r"Run 'r' names the model class .* expected 'package\.module:Class'"):
        resolve_model_class(spec, "r")


def test_a_module_not_imported_yet_is_read_before_it_is_run(tmp_path, monkeypatch):
    # `this` prints the Zen of Python when imported; it defines no class, so it is never imported.
    assert "this" not in sys.modules
    with pytest.raises(UntrustedDataError, match=r"names 'this:Zen' as its model class, but module this defines no class Zen: deepviz does not import it"):
        resolve_model_class("this:Zen", "r")
    assert "this" not in sys.modules
    marker = tmp_path / "ran"
    (tmp_path / "dv_sideeffect.py").write_text(f"open({str(marker)!r}, 'w').close()\n\ndef Net():\n    pass\n")
    (tmp_path / "dv_broken.py").write_text("class Net(:\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(UntrustedDataError, match=r"module dv_sideeffect defines no class Net"):
        resolve_model_class("dv_sideeffect:Net", "r")
    assert not marker.exists()
    with pytest.raises(NotFoundError, match=r"Cannot import the model class 'dv_broken:Net' of run 'r' \(invalid syntax"):
        resolve_model_class("dv_broken:Net", "r")


@pytest.mark.parametrize("spec, why", [("no_such_pkg.models:Net", "No module named 'no_such_pkg'"),
                                       ("no_such_module_dv:Net", "no module named 'no_such_module_dv'"),
                                       ("trainers.models:NoSuchNet", "has no attribute 'NoSuchNet'")])
def test_a_model_class_that_cannot_be_imported(spec, why):
    import trainers.models  # noqa: F401  (imported: its missing attribute is looked up, not its source)

    with pytest.raises(NotFoundError, match=rf"Cannot import the model class '{spec}' of run 'r' \(.*{why}.*\)\. Make it importable"):
        resolve_model_class(spec, "r")


def test_checkpoint_paths_that_name_no_folder_are_refused(db_copy):
    _without_states(db_copy)
    run_id = db_copy.resolve_run()
    step = max(db_copy.checkpoints())
    folder = own_checkpoint_dir(db_copy, run_id)
    Path(db_copy.checkpoints()[step]).unlink()  # else the db's own step file is used instead
    (folder / "loop.ckpt").symlink_to(folder / "loop.ckpt")
    for named, why in [("last.ckpt", r"path 'last\.ckpt' is not absolute"),
                       (f"{folder}/nul\x00.ckpt", r"path '.*nul\\x00\.ckpt' cannot be resolved \(embedded null byte\)"),
                       (f"{folder}/loop.ckpt", r"path '.*loop\.ckpt' cannot be resolved \((Symlink loop|.*[Tt]oo many levels of symbolic links)"),
                       (f"{folder}/gone.ckpt", r"/.*gone\.ckpt does not exist")]:
        _writer(db_copy).record_checkpoint(run_id, step, named)
        with pytest.raises(NotFoundError, match=rf"Step {step} .*has no weights: no state dict was stored with it and the checkpoint {why}"):
            load_weights(db_copy, step)


def test_a_run_id_that_is_no_folder_name_trusts_no_checkpoint_folder(db_copy):
    assert own_checkpoint_dir(db_copy, "..") is None and own_checkpoint_dir(db_copy, ".hidden") is None
    run_id = db_copy.resolve_run()
    assert own_checkpoint_dir(db_copy, run_id) == (db_copy.root / "checkpoint_files" / f"run_id={run_id}").resolve()


def test_a_checkpoint_folder_that_leads_out_of_the_db_is_not_trusted(db_copy, tmp_path):
    _without_states(db_copy)
    run_id = db_copy.resolve_run()
    step = max(db_copy.checkpoints())
    folder = db_copy.checkpoint_dir()
    shutil.move(folder, tmp_path / "outside")
    folder.symlink_to(tmp_path / "outside", target_is_directory=True)
    assert own_checkpoint_dir(db_copy, run_id) is None
    with pytest.raises(NotFoundError, match=rf"step={step}\.ckpt is outside the db's checkpoint folder \(none: .*its folder leads out of the db\)"):
        load_weights(db_copy, step)
    assert steps_with_weights(db_copy) == []
