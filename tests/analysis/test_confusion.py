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
