"""Properties of the two-run comparison functions (deepviz.analysis.compare)."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from deepviz.analysis import compare as C
from deepviz.analysis.trajectory import first_stable_correct
from deepviz.errors import ConfigurationError


def test_shared_probes_uses_the_intersection_with_rows_of_each_side():
    ids_a = np.array([1, 3, 5, 7, 9, 11])
    ids_b = np.array([0, 3, 4, 5, 11, 12, 13])
    shared, rows_a, rows_b = C.shared_probes(ids_a, ids_b)
    assert shared.tolist() == [3, 5, 11]
    assert ids_a[rows_a].tolist() == shared.tolist() and ids_b[rows_b].tolist() == shared.tolist()


def test_shared_probes_refuses_disjoint_sets_naming_both():
    with pytest.raises(ConfigurationError, match=r"share no probe image: run A has 3 \(ids 0\.\.2\), run B has 2 \(ids 10\.\.11\)"):
        C.shared_probes([0, 1, 2], [10, 11])


def test_shared_probes_refuses_ids_whose_labels_differ():
    with pytest.raises(ConfigurationError, match=r"give 1 of their 2 shared probe ids different labels \(probe 2 for one\)"):
        C.shared_probes([1, 2], [1, 2], labels_a=[0, 4], labels_b=[0, 5])


def test_match_steps_picks_step_epoch_or_fraction():
    mode, pairs = C.match_steps([0, 10, 20], [0, 0, 1], [0, 10, 20], [0, 0, 1])
    assert mode == "step" and pairs.step_a.tolist() == pairs.step_b.tolist() == [0, 10, 20]
    # Other batch size: other steps, same epochs. Snapshot k of an epoch goes with snapshot k.
    mode, pairs = C.match_steps([0, 10, 20], [0, 0, 1], [0, 7, 14], [0, 0, 1])
    assert mode == "epoch" and pairs.step_b.tolist() == [0, 7, 14]
    # Another number of epochs: by fraction of training, every step of A gets B's nearest.
    mode, pairs = C.match_steps([0, 10, 20], [0, 0, 1], [0, 5, 10, 15, 20, 25, 30, 35, 40], [0, 0, 1, 2, 3, 4, 5, 6, 7])
    assert mode == "fraction" and pairs.step_b.tolist() == [0, 20, 40]
    assert np.allclose(pairs.fraction_a, pairs.fraction_b)


def test_match_steps_forced_modes_and_errors():
    _, pairs = C.match_steps([0, 10, 20], [0, 0, 1], [0, 20, 40], [0, 0, 1], by="step")
    assert pairs.step_a.tolist() == [0, 20]
    with pytest.raises(ConfigurationError, match=r"No step of run A matches one of run B by step"):
        C.match_steps([5, 10], [0, 1], [6, 11], [0, 1], by="step")
    with pytest.raises(ConfigurationError, match=r"Unknown match 'time'. Allowed: auto, step, epoch, fraction"):
        C.match_steps([0], [0], [0], [0], by="time")
    with pytest.raises(ConfigurationError, match=r"run B: steps must be strictly increasing"):
        C.match_steps([0, 1], [0, 0], [3, 2], [0, 0])


def test_a_run_agrees_with_itself_and_agreement_is_the_share_of_equal_predictions():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 10, 200)
    assert C.agreement(preds, preds) == 1.0
    other = preds.copy()
    other[:50] = (other[:50] + 1) % 10
    assert C.agreement(preds, other) == pytest.approx(0.75)
    with pytest.raises(ConfigurationError, match="at least one image"):
        C.agreement([], [])


def test_first_stable_steps_is_first_stable_correct_for_every_image():
    rng = np.random.default_rng(1)
    probs = rng.random((6, 40, 3))  # steps, images, classes
    labels = rng.integers(0, 3, 40)
    steps = np.array([0, 5, 9, 30, 31, 50])
    correct = probs.argmax(axis=2) == labels[None, :]
    got = C.first_stable_steps(correct, steps)
    for i in range(40):
        k = first_stable_correct(probs[:, i], int(labels[i]))
        assert (np.isnan(got[i]) and k is None) or got[i] == steps[k]
    assert np.isnan(got).any() and not np.isnan(got).all()  # both kinds occur in this draw
    with pytest.raises(ConfigurationError, match="one step per row"):
        C.first_stable_steps(correct, steps[:3])


def test_confusion_pairs_lists_the_largest_differences_first():
    a = np.array([[5, 1, 0], [2, 5, 3], [0, 0, 9]])
    b = np.array([[5, 4, 0], [2, 5, 0], [1, 0, 9]])
    pairs = C.confusion_pairs(a, b, ["x", "y", "z"])
    assert pairs[["label_name", "pred_name", "diff"]].values.tolist() == [["x", "y", 3], ["y", "z", -3], ["z", "x", 1]]
    assert (pairs.count_b - pairs.count_a == pairs["diff"]).all()
    assert C.confusion_pairs(a, a).empty
    with pytest.raises(ConfigurationError, match="class_names has 2 names for 3 classes"):
        C.confusion_pairs(a, b, ["x", "y"])


def test_cross_cka_of_a_run_with_itself_is_one_on_the_diagonal():
    rng = np.random.default_rng(2)
    acts = {"fc1": rng.normal(size=(50, 12)), "fc2": rng.normal(size=(50, 4))}
    m = C.cross_cka(acts, acts)
    assert m.shape == (2, 2) and np.allclose(np.diag(m), 1.0) and (m <= 1 + 1e-9).all()
    dead = {"fc1": acts["fc1"], "relu": np.zeros((50, 3))}
    assert np.isnan(C.cross_cka(dead, acts)[1]).all()
    with pytest.raises(ConfigurationError, match="needs layers of both runs; got 2 and 0"):
        C.cross_cka(acts, {})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_procrustes_recovers_a_rotated_reflected_scaled_shifted_copy(seed):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(80, 2))
    R = ortho_group.rvs(2, random_state=seed)  # a rotation or a reflection
    copy = 3.7 * ref @ R + np.array([5.0, -2.0])
    a, b, disparity = C.align_layouts(ref, copy)
    assert disparity == pytest.approx(0.0, abs=1e-10)
    assert np.allclose(a, b, atol=1e-5)
    # and a is ref up to centring and unit norm, so B is drawn in A's frame
    centred = ref - ref.mean(axis=0)
    assert np.allclose(a, centred / np.linalg.norm(centred), atol=1e-5)


def test_procrustes_of_unrelated_layouts_has_a_large_disparity_and_refuses_bad_shapes():
    rng = np.random.default_rng(3)
    _, _, disparity = C.align_layouts(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)))
    assert disparity > 0.8
    with pytest.raises(ConfigurationError, match=r"two \(N, 2\) layouts of the same N >= 2; got \(3, 2\) and \(4, 2\)"):
        C.align_layouts(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ConfigurationError, match="not all identical"):
        C.align_layouts(np.zeros((3, 2)), rng.normal(size=(3, 2)))
