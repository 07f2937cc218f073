"""Snapshots piggy-backed on validation's own forward equal the extra pass's, and take no forward of their own.

Real Lightning training on digits: the same model, weights and batches, once with the probe being the
validation set (``probe="val"``: piggy-back) and once with the same images given as a pair (extra pass).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from .conftest import quiet_trainer
from deepviz import StatsCallback, StatsDB
from trainers.models import SmallNet

VAL = slice(320, 480)  # 160 validation images, in batches of 40
VAL_BATCH = 40


class CountingNet(SmallNet):
    """SmallNet that counts its forward calls."""

    def __init__(self, **hparams):
        super().__init__(**hparams)
        self.forwards = 0

    def forward(self, x):
        self.forwards += 1
        return super().forward(x)


class TwiceNet(CountingNet):
    """A validation_step that runs the model twice per batch (test-time augmentation, say)."""

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        self(torch.flip(x, dims=[3]))
        return super().validation_step(batch, batch_idx)


def initial_state() -> dict:
    torch.manual_seed(0)
    return SmallNet().state_dict()


def train(tmp_path, name, digits_tensors, probe, *, model_cls=CountingNet, val_shuffle=False, epochs=2, **kwargs):
    """Fit from fixed weights with a fixed batch order; returns (db, model, warnings given)."""
    x, y = digits_tensors
    limit = kwargs.pop("limit", None)
    model = model_cls()
    model.load_state_dict(initial_state())
    train_loader = DataLoader(TensorDataset(x[:320], y[:320]), batch_size=64)
    val_loader = DataLoader(TensorDataset(x[VAL], y[VAL]), batch_size=VAL_BATCH, shuffle=val_shuffle)
    callbacks = []
    if probe is not None:
        probe = val_loader.dataset if probe == "dataset" else probe
        callbacks.append(StatsCallback(tmp_path / name, probe=probe, batch_size=VAL_BATCH, **kwargs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(max_epochs=epochs, callbacks=callbacks, limit_val_batches=limit).fit(
            model, train_loader, val_loader)
    return (StatsDB(tmp_path / name) if probe is not None else None), model, [str(w.message) for w in caught]


def deepviz_warnings(caught: list[str]) -> list[str]:
    return [m for m in caught if m.startswith("deepviz:")]


def assert_same_snapshots(a: StatsDB, b: StatsDB, steps: list[int], exact: bool = True) -> None:
    check = np.testing.assert_array_equal if exact else (
        lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6))
    for step in steps:
        sa, sb = a.get_stats(step), b.get_stats(step)
        np.testing.assert_array_equal(sa.probe_ids, sb.probe_ids)
        np.testing.assert_array_equal(sa.labels, sb.labels)
        check(sa.probs_by_image, sb.probs_by_image)
        check(sa.loss, sb.loss)
        assert set(sa.embeddings) == set(sb.embeddings) == set(a.run_info()["layers"])
        for layer in sa.embeddings:
            check(sa.embeddings[layer], sb.embeddings[layer])
        for layer in sa.weights:
            np.testing.assert_array_equal(sa.weights[layer], sb.weights[layer])


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, digits_tensors):
    """The same training without the callback, with the validation set as probe, and with the extra pass."""
    root = tmp_path_factory.mktemp("piggyback")
    x, y = digits_tensors
    _, plain, _ = train(root, "none", digits_tensors, None)
    piggy, piggy_model, piggy_warnings = train(root, "piggy", digits_tensors, "val", probe_size=None)
    extra, extra_model, _ = train(root, "extra", digits_tensors, (x[VAL], y[VAL]), probe_size=None)
    return plain.forwards, (piggy, piggy_model, piggy_warnings), (extra, extra_model)


def test_piggybacked_snapshots_equal_the_extra_pass_value_for_value(three_runs):
    _, (piggy, _, caught), (extra, _) = three_runs
    assert deepviz_warnings(caught) == []
    assert piggy.steps() == extra.steps() == [0, 5, 10]
    # The same weights at each step (the same training), and weights that differ between steps.
    for step in (5, 10):
        a, b = torch.load(piggy.state_path(step), weights_only=True), torch.load(extra.state_path(step), weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not np.allclose(piggy.get_stats(5).probs_by_image, piggy.get_stats(10).probs_by_image, atol=1e-3)
    # Validation's batches of 40 are the extra pass's batches (batch_size=40): the very same numbers.
    assert_same_snapshots(piggy, extra, [0, 5, 10])


def test_each_piggybacked_step_is_what_its_own_weights_give(three_runs):
    _, (piggy, _, _), _ = three_runs
    inputs = torch.from_numpy(piggy.probe_inputs())
    for step in (5, 10):
        model = piggy.load_model(step)
        with torch.no_grad():
            logits = model(inputs)
        np.testing.assert_allclose(piggy.get_stats(step).probs_by_image, torch.softmax(logits, 1).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_piggyback_takes_no_forward_of_its_own(three_runs):
    plain, (_, piggy_model, _), (_, extra_model) = three_runs
    probe_batches = 160 // VAL_BATCH
    # Step 0 comes before any validation: its extra pass is the only forward the piggy-back run adds.
    assert piggy_model.forwards == plain + probe_batches
    assert extra_model.forwards == plain + 3 * probe_batches  # steps 0, 5 and 10


def test_a_probe_subset_given_as_the_validation_dataset_piggybacks(tmp_path, digits_tensors):
    x, y = digits_tensors
    piggy, model, caught = train(tmp_path, "piggy", digits_tensors, "dataset", probe_size=37, probe_seed=3)
    extra, _, _ = train(tmp_path, "extra", digits_tensors, (x[VAL], y[VAL]), probe_size=37, probe_seed=3)
    _, plain, _ = train(tmp_path, "none", digits_tensors, None)
    assert deepviz_warnings(caught) == [] and model.forwards == plain.forwards + 1  # step 0: one batch of 37
    assert len(piggy.get_stats(5).probe_ids) == 37
    # Validation ran the probe rows inside batches of 40 others, the extra pass alone: equal to float rounding.
    assert_same_snapshots(piggy, extra, [5, 10], exact=False)


def test_a_shuffled_validation_loader_is_refused_and_takes_the_extra_pass(tmp_path, digits_tensors):
    x, y = digits_tensors
    piggy, model, caught = train(tmp_path, "piggy", digits_tensors, "val", probe_size=None, val_shuffle=True)
    extra, _, _ = train(tmp_path, "extra", digits_tensors, (x[VAL], y[VAL]), probe_size=None)
    said = deepviz_warnings(caught)
    assert len(said) == 1 and "its sampler is a RandomSampler" in said[0] and "shuffle=False" in said[0]
    assert_same_snapshots(piggy, extra, [0, 5, 10])


def test_validation_that_misses_probe_rows_falls_back_and_says_so(tmp_path, digits_tensors):
    x, y = digits_tensors
    piggy, _, caught = train(tmp_path, "piggy", digits_tensors, "val", probe_size=None, limit=2)
    extra, _, _ = train(tmp_path, "extra", digits_tensors, (x[VAL], y[VAL]), probe_size=None, limit=2)
    said = deepviz_warnings(caught)
    assert len(said) == 1 and "step 5 takes an extra forward pass" in said[0]
    assert "it covered 80 of the 160 probe rows" in said[0]
    assert_same_snapshots(piggy, extra, [5, 10])


def test_a_validation_step_running_the_model_twice_falls_back(tmp_path, digits_tensors):
    x, y = digits_tensors
    piggy, _, caught = train(tmp_path, "piggy", digits_tensors, "val", model_cls=TwiceNet, probe_size=None)
    extra, _, _ = train(tmp_path, "extra", digits_tensors, (x[VAL], y[VAL]), model_cls=TwiceNet, probe_size=None)
    said = deepviz_warnings(caught)
    assert len(said) == 1 and "did not give every layer once per batch" in said[0]
    assert_same_snapshots(piggy, extra, [5, 10])


def test_the_tap_places_every_kind_of_batch_at_its_probe_rows(digits_tensors):
    """Batches wholly of probe rows in one run (written as a slice), probe rows among others, and probe rows out
    of order (picked out and scattered): each row lands at its own probe position, as a forward of the probe
    itself gives it."""
    from deepviz.capture import capture_tensors
    from deepviz.piggyback import ValidationTap

    x, y = digits_tensors
    torch.manual_seed(1)
    model = SmallNet().eval()
    probe_ids = np.arange(40, 100)  # dataset rows 40..99 are the probe
    batches = [np.arange(40, 60),                          # all probe rows, one run
               np.array([0, 1, *range(60, 70), 120]),      # probe rows 60..69 among others
               np.arange(99, 69, -1),                      # all probe rows, in reverse
               np.array([5, 6, 7])]                        # no probe row
    tap = ValidationTap(model, ["fc1"], probe_ids, y[probe_ids], batches)
    with torch.no_grad():
        for b, rows in enumerate(batches):
            tap.begin(b)
            model(x[rows])
            tap.end(b)
    seen, got = tap.result()
    assert seen.all() and tap.broken is None
    want = capture_tensors(model, x[probe_ids], y[probe_ids], ["fc1"], batch_size=7)
    torch.testing.assert_close(got.logits, want.logits)
    torch.testing.assert_close(got.loss, want.loss)
    torch.testing.assert_close(got.activations["fc1"], want.activations["fc1"])


def test_the_tap_refuses_a_probe_label_the_model_has_no_score_for(digits_tensors):
    """Every probe label is checked against the model's class scores at the first batch, not only the batch's."""
    from deepviz.errors import ConfigurationError
    from deepviz.piggyback import ValidationTap

    x, y = digits_tensors
    labels = y[:20].clone()
    labels[-1] = 10  # SmallNet gives 10 scores: 0..9; this label's row is in the second batch
    model = SmallNet().eval()
    tap = ValidationTap(model, ["fc1"], np.arange(20), labels, [np.arange(10), np.arange(10, 20)])
    tap.begin(0)
    with pytest.raises(ConfigurationError, match=r"Probe label 10 is outside \[0, 10\)"):
        with torch.no_grad():
            model(x[:10])
    tap.remove_hooks()  # what the callback does on an exception: the model is left as it was
    assert not model._forward_hooks and not model.fc1._forward_hooks


class FailingValidationNet(CountingNet):
    """A validation_step that fails in the second batch of the first validation, after the model ran."""

    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        if batch_idx == 1:
            raise RuntimeError("validation failed on purpose")
        return out


def test_a_validation_that_fails_mid_batch_leaves_no_hook_on_the_model(tmp_path, digits_tensors):
    x, y = digits_tensors
    model = FailingValidationNet()
    val_loader = DataLoader(TensorDataset(x[VAL], y[VAL]), batch_size=VAL_BATCH)
    callback = StatsCallback(tmp_path / "db", probe="val", probe_size=None, batch_size=VAL_BATCH)
    with pytest.raises(RuntimeError, match="on purpose"):
        quiet_trainer(max_epochs=1, callbacks=[callback]).fit(
            model, DataLoader(TensorDataset(x[:320], y[:320]), batch_size=64), val_loader)
    assert model.forwards > 0  # the tap was on during validation's forwards
    assert [name for name, m in model.named_modules() if m._forward_hooks] == []
