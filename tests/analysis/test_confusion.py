import numpy as np
import pytest

from deepviz.analysis.confusion import confusion, confusion_delta, flows, per_class_accuracy
from deepviz.errors import ConfigurationError


@pytest.fixture
def steps():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    a = np.where(rng.random(200) < 0.5, labels, rng.integers(0, 4, 200))
    b = np.where(rng.random(200) < 0.8, labels, rng.integers(0, 4, 200))
    return labels, a, b


def test_confusion_counts(steps):
    labels, a, _ = steps
    cm = confusion(labels, a, 4)
    assert cm.shape == (4, 4) and cm.sum() == 200
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(labels, minlength=4))
    np.testing.assert_array_equal(cm.sum(axis=0), np.bincount(a, minlength=4))
    assert np.trace(cm) == (labels == a).sum()


def test_delta_and_per_class_accuracy(steps):
    labels, a, b = steps
    delta = confusion_delta(confusion(labels, a, 4), confusion(labels, b, 4))
    assert delta.sum() == 0 and (delta.sum(axis=1) == 0).all()
    assert np.trace(delta) == (labels == b).sum() - (labels == a).sum()
    acc = per_class_accuracy(labels, b, 5)
    for c in range(4):
        assert acc[c] == pytest.approx((b[labels == c] == c).mean())
    assert np.isnan(acc[4])  # no images of class 4


def test_flows_are_consistent_with_the_two_prediction_vectors(steps):
    labels, a, b = steps
    ids = np.arange(1000, 1200)
    table = flows(a, b, labels, probe_ids=ids)
    assert (table.from_pred != table.to_pred).all()
    assert table["count"].sum() == (a != b).sum()
    assert list(table["count"]) == sorted(table["count"], reverse=True)
    for row in table.itertuples():
        rows = row.probe_ids - 1000
        assert len(rows) == row.count
        assert (a[rows] == row.from_pred).all() and (b[rows] == row.to_pred).all()
        assert row.fixed == ((a[rows] != labels[rows]) & (b[rows] == labels[rows])).sum()
        assert row.broken == ((a[rows] == labels[rows]) & (b[rows] != labels[rows])).sum()
    # Applying every flow to preds_a gives preds_b.
    moved = a.copy()
    for row in table.itertuples():
        moved[row.probe_ids - 1000] = row.to_pred
    np.testing.assert_array_equal(moved, b)
    full = flows(a, b, labels, include_unchanged=True)
    assert full["count"].sum() == 200


def test_errors(steps):
    labels, a, b = steps
    with pytest.raises(ConfigurationError, match=r"preds contains 4, outside 0..3 for n_classes=4"):
        confusion(labels, np.full(200, 4), 4)
    with pytest.raises(ConfigurationError, match=r"labels contains -1, outside 0..3"):
        confusion(np.full(200, -1), a, 4)
    with pytest.raises(ConfigurationError, match=r"n_classes must be an integer >= 1; got 0"):
        confusion(labels, a, 0)
    with pytest.raises(ConfigurationError, match="preds has 3 entries but the data has 200 rows"):
        confusion(labels, a[:3], 4)
    with pytest.raises(ConfigurationError, match=r"two square matrices .* got \(4, 4\) and \(3, 3\)"):
        confusion_delta(np.zeros((4, 4)), np.zeros((3, 3)))
    with pytest.raises(ConfigurationError, match=r"probe_ids has shape \(2,\) but the predictions have \(200,\)"):
        flows(a, b, labels, probe_ids=[1, 2])


def test_confusion_series_is_one_matrix_per_step(steps):
    from deepviz.analysis.confusion import confusion_series

    labels, a, b = steps
    series = confusion_series(labels, np.stack([a, b, a]), 4)
    assert series.shape == (3, 4, 4)
    np.testing.assert_array_equal(series[0], confusion(labels, a, 4))
    np.testing.assert_array_equal(series[1], confusion(labels, b, 4))
    np.testing.assert_array_equal(series[2], series[0])
    assert confusion_series(labels, np.zeros((0, 200), int), 4).shape == (0, 4, 4)
    with pytest.raises(ConfigurationError, match=r"preds_by_step must be \(steps, images\); got shape \(200,\)"):
        confusion_series(labels, a, 4)


def test_pair_changes_lists_the_largest_changes_off_the_diagonal(steps):
    from deepviz.analysis.confusion import pair_changes

    labels, a, b = steps
    before, after = confusion(labels, a, 4), confusion(labels, b, 4)
    table = pair_changes(before, after, limit=50)
    delta = after - before
    off = ~np.eye(4, dtype=bool)
    # every changed off-diagonal pair, and nothing else, with its signed change
    assert len(table) == int(((delta != 0) & off).sum())
    assert (table["true"] != table["pred"]).all() and (table["change"] != 0).all()
    for r in table.itertuples():
        assert (r.before, r.after, r.change) == (before[r.true, r.pred], after[r.true, r.pred], delta[r.true, r.pred])
    sizes = table["change"].abs().to_numpy()
    assert (np.diff(sizes) <= 0).all()  # largest |change| first
    top = pair_changes(before, after, limit=2)
    assert len(top) == 2 and top.equals(table.head(2))
    assert pair_changes(before, before).empty
    with pytest.raises(ConfigurationError, match="limit must be"):
        pair_changes(before, after, limit=0)
