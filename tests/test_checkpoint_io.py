"""Checkpoints recorded against a step hold that step: what deepviz train's ModelCheckpoint
(best by val_acc, and last.ckpt rewritten at every epoch) leaves in the db, with real Lightning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from deepviz import StatsDB
from deepviz.checkpoint_io import RecordingCheckpointIO

from .test_callback import fit


def train_like_deepviz_train(tmp_path, digits_tensors, epochs=3, ckpt_path=None, **cb_kwargs):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_acc", mode="max", save_top_k=1, save_last=True)
    return fit(tmp_path, digits_tensors, epochs=epochs, callbacks=[ckpt], ckpt_path=ckpt_path, **cb_kwargs)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)  # a file this test made


def test_every_recorded_checkpoint_holds_its_own_step(tmp_path, digits_tensors):
    _, trainer = train_like_deepviz_train(tmp_path, digits_tensors)
    db = StatsDB(tmp_path / "db")
    paths = db.checkpoints()
    assert set(paths) == {5, 10, 15}
    for step, path in paths.items():
        # A per-step file in the db's own folder, never last.ckpt or the best-k file.
        assert Path(path) == (db.checkpoint_dir() / f"step={step}.ckpt").absolute()
        saved = load(path)
        assert saved["global_step"] == step
        np.testing.assert_array_equal(saved["state_dict"]["conv1.weight"].numpy(), db.weights(step, "conv1"))
    assert load(tmp_path / "ckpt" / "last.ckpt")["global_step"] == 15  # Lightning's own file moved on
    # The plug-in is gone once the fit ends.
    assert not isinstance(trainer.strategy.checkpoint_io, RecordingCheckpointIO)


def test_a_resumed_fit_keeps_the_first_checkpoint_of_a_step_it_trains_again(tmp_path, digits_tensors):
    train_like_deepviz_train(tmp_path, digits_tensors, epochs=2)
    db = StatsDB(tmp_path / "db")
    first = {step: load(path)["state_dict"]["conv1.weight"] for step, path in db.checkpoints().items()}
    # Resume from step 5 (the db's own copy): step 10 is trained and saved again, step 15 is new.
    train_like_deepviz_train(tmp_path, digits_tensors, epochs=3, ckpt_path=str(db.checkpoint_dir() / "step=5.ckpt"))
    paths = db.checkpoints()
    assert set(paths) == {5, 10, 15}
    for step in (5, 10):
        torch.testing.assert_close(load(paths[step])["state_dict"]["conv1.weight"], first[step], rtol=0, atol=0)
    assert load(paths[15])["global_step"] == 15


def test_without_stored_states_each_step_loads_its_own_checkpoint(tmp_path, digits_tensors):
    """The recorded files are what the model loader trusts and reads: with no state dicts stored
    (a model too big for save_state="auto"), every step's weights come from its own checkpoint."""
    train_like_deepviz_train(tmp_path, digits_tensors, save_state=False)
    db = StatsDB(tmp_path / "db")
    assert db.steps_with_weights() == [5, 10, 15]
    for step in (5, 10, 15):
        model = db.load_model(step)
        np.testing.assert_array_equal(model.conv1.weight.detach().numpy(), db.weights(step, "conv1"))


def test_checkpoints_on_another_file_system_are_copied(tmp_path, digits_tensors):
    """A hard link cannot cross file systems: the db then keeps a copy, which Lightning's next save leaves alone."""
    import os
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system than the tests' tmp_path")
    elsewhere = Path(tempfile.mkdtemp(dir=shm))
    try:
        ckpt = ModelCheckpoint(dirpath=elsewhere, save_last=True, save_top_k=-1)
        fit(tmp_path, digits_tensors, epochs=2, callbacks=[ckpt])
        db = StatsDB(tmp_path / "db")
        paths = db.checkpoints()
        assert set(paths) == {5, 10}
        for step, path in paths.items():
            assert os.stat(path).st_nlink == 1 and load(path)["global_step"] == step
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
