"""deepviz.derived against a real stats db, written through StatsWriter with known structure.

Layer ``blobs`` separates the classes perfectly, layer ``noise`` is unrelated to
them, and image 0 flips right -> wrong -> right -> wrong: the derived tables
must show it.  The synthetic properties of the measures themselves are tested
in the modules' own tests (test_quality, test_cka, test_datamap, test_neighbours).
"""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

from deepviz import derived
from deepviz.derived import BASELINES, QUALITY_METRICS, Derived
from deepviz.errors import NotFoundError
from deepviz.schema import DERIVED_TABLES
from deepviz.store import StatsDB, StatsWriter

N, C, STEPS = 60, 3, (0, 10, 20, 30)
RUN = "20260101-000000-test"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


def write_run(root, *, ended: bool = True, steps=STEPS, run_id: str = RUN) -> str:
    rng = np.random.default_rng(0)
    labels = np.arange(N) % C
    # Images whose colour follows the class a little (so colour features are not constant).
    inputs = rng.random((N, 3, 4, 4)).astype(np.float32) * 0.5 + labels[:, None, None, None] * 0.2
    w = StatsWriter(root)
    info = {
        "run_id": run_id, "name": "derive-test", "started_at": datetime.now(timezone.utc),
        "ended_at": datetime.now(timezone.utc) if ended else None, "model_class": "x:Y", "hparams": "{}",
        "dataset": "synthetic", "class_names": ["a", "b", "c"], "input_shape": [3, 4, 4],
        "layers": ["blobs", "noise"], "conv_layers": [], "n_probe": N,
    }
    w.write_run(info)
    w.write_probes(run_id, np.arange(N) * 7, labels, info["class_names"], [_png()] * N, inputs)
    centres = rng.normal(size=(C, 16)) * 20
    for i, step in enumerate(steps):
        probs = np.full((N, C), 0.1, np.float32)
        probs[np.arange(N), labels] = 0.8
        if i % 2 == 1:  # image 0 is wrong at steps 10 and 30: forgotten twice
            probs[0] = [0.1, 0.8, 0.1]
        w.write_snapshot(
            run_id, step, epoch=i, trigger="epoch", probe_ids=np.arange(N) * 7, labels=labels,
            probs=probs, loss=np.zeros(N), metrics={},
            activations={"blobs": centres[labels] + rng.normal(size=(N, 16)) * 0.1,
                         "noise": rng.normal(size=(N, 16))},
            weights={}, activation_dtype="float32",
        )
    return run_id


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("derive") / "stats_db"
    write_run(root)
    store = StatsDB(root)
    calls = []
    summary = derived.compute_all(store, progress=lambda done, total, message: calls.append((done, total, message)))
    store.summary, store.calls = summary, calls
    return store


@pytest.fixture
def service(db):
    return Derived(db)


def test_compute_all_writes_every_table_with_documented_columns(db):
    assert db.summary["computed"] == 2 + 2 * len(STEPS)  # baselines + 2 layers per step
    assert db.summary["data_map"] == "stored"
    for table in ("layer_quality", "data_map"):
        documented = [name for name, _, _ in DERIVED_TABLES[table].columns]
        frame = db.sql(f"SELECT * FROM {table}")
        assert list(frame.columns) == documented
    q = db.sql("SELECT * FROM layer_quality")
    per_step = q[~q.layer.isin(BASELINES)]
    assert set(per_step.metric) == set(QUALITY_METRICS)
    assert set(zip(per_step.step, per_step.layer)) == {(s, l) for s in STEPS for l in ("blobs", "noise")}
    # Baselines are stored once, at the first step.
    base = q[q.layer.isin(BASELINES)]
    assert set(base.step) == {STEPS[0]}
    assert set(base[base.layer == "mean_image"].metric) == {"mean_image_accuracy"}


def test_progress_counts_up_to_the_total(db):
    done = [d for d, _, _ in db.calls]
    total = db.calls[0][1]
    assert done == sorted(done) and done[0] == 0 and done[-1] == total
    assert db.calls[-1][2] == "done"


def test_values_are_in_range_and_follow_the_structure(db, service):
    q = service.quality_table()
    for metric in ("knn_accuracy", "linear_probe_accuracy", "class_purity", "colour_agreement", "class_agreement", "mean_image_accuracy"):
        v = q[q.metric == metric].value.dropna()
        assert len(v) and ((v >= 0) & (v <= 1)).all(), metric
    sil = q[q.metric == "silhouette"].value.dropna()
    assert ((sil >= -1) & (sil <= 1)).all()
    wide = q[~q.layer.isin(BASELINES)].pivot_table(index="layer", columns="metric", values="value")
    assert wide.loc["blobs", "knn_accuracy"] == pytest.approx(1.0)
    assert wide.loc["blobs", "class_agreement"] > 0.95
    assert wide.loc["noise", "knn_accuracy"] < 0.7  # chance is 1/3
    assert wide.loc["blobs", "silhouette"] > wide.loc["noise", "silhouette"]


def test_data_map_counts_the_forgetting_events(db, service):
    dm = service.data_map()
    assert list(dm.probe_id) == list(np.arange(N) * 7)
    row = dm.set_index("probe_id").loc[0]
    assert row.forgetting_events == 2 and row.correctness == pytest.approx(0.5)
    others = dm[dm.probe_id != 0]
    assert (others.forgetting_events == 0).all() and np.allclose(others.confidence, 0.8, atol=1e-6)
    assert np.allclose(others.variability, 0, atol=1e-6)


def test_second_call_recomputes_nothing(db, service):
    files = [p for t in ("layer_quality", "data_map") for p in (db.root / t).rglob("*.parquet")]
    before = {p: p.stat().st_mtime_ns for p in files}
    summary = derived.compute_all(db)
    assert summary["computed"] == 0 and summary["cached"] == db.summary["computed"]
    assert summary["data_map"] == "cached"
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert service.missing_quality() == []


def test_single_items_return_the_cached_rows(db, service):
    rows = service.layer_quality(10, "blobs")
    assert set(rows.metric) == set(QUALITY_METRICS) and set(rows.step) == {10}
    pixels = service.layer_quality(30, "pixels")  # a baseline, whatever the step
    assert set(pixels.step) == {0} and set(pixels.layer) == {"pixels"}


def test_cka_identical_steps_give_one(db, service):
    steps, m = service.cka_steps("blobs")
    assert steps == list(STEPS) and m.shape == (4, 4)
    assert np.allclose(np.diag(m), 1) and np.allclose(m, m.T)
    assert (m > 0.99).all()  # the blobs barely move between steps
    layers, m2 = service.cka_layers(20)
    assert layers == ["blobs", "noise"] and m2[0, 1] < 0.5


def test_unknown_layer_and_step(db, service):
    with pytest.raises(NotFoundError, match=r"Unknown layer 'fc9' at step 10\. Available: blobs, noise"):
        service.layer_quality(10, "fc9")
    with pytest.raises(NotFoundError, match=r"Unknown step 5 .*Available steps: 0, 10, 20, 30"):
        service.layer_quality(5, "blobs")


def test_a_run_still_training_keeps_its_data_map_in_memory(tmp_path):
    write_run(tmp_path / "db", ended=False, steps=(0, 10))
    store = StatsDB(tmp_path / "db")
    service = Derived(store)
    dm = service.data_map()
    assert len(dm) == N and store.get_derived("data_map", {}) is None
    assert service.data_map() is dm  # same steps: the in-memory copy


def test_a_run_without_steps_has_nothing_to_analyse(tmp_path):
    write_run(tmp_path / "db", steps=())
    with pytest.raises(NotFoundError, match="has no committed steps yet"):
        derived.compute_all(StatsDB(tmp_path / "db"))


def test_compute_all_keeps_its_signature_and_imports_no_flask():
    import inspect
    import subprocess
    import sys

    sig = inspect.signature(derived.compute_all)
    assert list(sig.parameters)[:2] == ["db", "run"]
    assert {"progress", "random_state"} <= {n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}
    code = "import sys, deepviz.derived; sys.exit('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=os.getcwd()).returncode == 0


# --------------------------------------------------------------------------- SearchIndex


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sqeuclidean", "minkowski"])
def test_search_index_agrees_with_nearest(metric):
    from deepviz.analysis import distances, nearest
    from deepviz.analysis.search import SearchIndex

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 24)).astype(np.float32)
    index = SearchIndex(X)
    for row in (0, 17, 299):
        idx, dist, median = index.query(X[row], k=7, metric=metric, p=2.5, exclude=row)
        want_idx, want_dist = nearest(X[row], X, k=7, metric=metric, p=2.5, exclude=[row])
        assert idx.tolist() == want_idx.tolist()
        assert np.allclose(dist, want_dist, atol=1e-5)
        assert median == pytest.approx(np.median(np.delete(distances(X[row], X, metric, 2.5)[0], row)), abs=1e-5)
        # the self-match ranks first when it is not left out
        assert index.query(X[row], k=1, metric=metric, p=2.5)[0][0] == row


def test_search_index_errors():
    from deepviz.analysis.search import SearchIndex

    index = SearchIndex(np.eye(4))
    with pytest.raises(ValueError, match=r"query has 3 features but X has 4"):
        index.query(np.ones(3))
    with pytest.raises(ValueError, match=r"exclude holds index 9, outside 0\.\.3"):
        index.query(np.ones(4), exclude=9)
    with pytest.raises(ValueError, match=r"query contains NaN"):
        index.query(np.array([np.nan, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"Unknown metric 'l1'"):
        index.query(np.ones(4), metric="l1")
    with pytest.raises(ValueError, match=r"k must be an integer >= 1; got 0"):
        index.query(np.ones(4), k=0)
    assert index.query(np.ones(4), k=10, exclude=0)[0].tolist() == [1, 2, 3]
