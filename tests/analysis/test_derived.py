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
import pandas as pd
import pytest
from PIL import Image

from deepviz import derived
from deepviz.derived import BASELINES, QUALITY_METRICS, Derived
from deepviz.errors import ConfigurationError, CorruptDataError, NotFoundError
from deepviz.schema import DERIVED_TABLES
from deepviz.store import StatsDB, StatsWriter

N, C, STEPS = 60, 3, (0, 10, 20, 30)
RUN = "20260101-000000-test"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


LABELS = np.arange(N) % C
CENTRES = np.random.default_rng(0).normal(size=(C, 16)) * 20


def write_run(root, *, ended: bool = True, steps=STEPS, run_id: str = RUN) -> str:
    with StatsWriter(root) as w:
        _write_run_row(w, run_id, ended)
    write_steps(root, steps, run_id=run_id)
    return run_id


def _write_run_row(w: StatsWriter, run_id: str, ended: bool) -> None:
    rng = np.random.default_rng(0)
    # Images whose colour follows the class a little (so colour features are not constant).
    inputs = rng.random((N, 3, 4, 4)).astype(np.float32) * 0.5 + LABELS[:, None, None, None] * 0.2
    info = {
        "run_id": run_id, "name": "derive-test", "started_at": datetime.now(timezone.utc),
        "ended_at": datetime.now(timezone.utc) if ended else None, "model_class": "x:Y", "hparams": "{}",
        "dataset": "synthetic", "class_names": ["a", "b", "c"], "input_shape": [3, 4, 4],
        "layers": ["blobs", "noise"], "conv_layers": [], "n_probe": N,
    }
    w.write_run(info)
    w.write_probes(run_id, np.arange(N) * 7, LABELS, info["class_names"], [_png()] * N, inputs)


def write_steps(root, steps, *, first: int = 0, run_id: str = RUN) -> None:
    """Snapshots at ``steps``, the first being the run's ``first``-th (0-based): image 0 is wrong at every odd one."""
    with StatsWriter(root) as w:
        _write_steps(w, steps, first, run_id)


def _write_steps(w: StatsWriter, steps, first: int, run_id: str) -> None:
    rng = np.random.default_rng(first)
    for i, step in enumerate(steps, start=first):
        probs = np.full((N, C), 0.1, np.float32)
        probs[np.arange(N), LABELS] = 0.8
        if i % 2 == 1:  # image 0 is wrong at steps 10 and 30: forgotten twice
            probs[0] = [0.1, 0.8, 0.1]
        w.write_snapshot(
            run_id, step, epoch=i, trigger="epoch", probe_ids=np.arange(N) * 7, labels=LABELS,
            probs=probs, loss=np.zeros(N), metrics={},
            activations={"blobs": CENTRES[LABELS] + rng.normal(size=(N, 16)) * 0.1,
                         "noise": rng.normal(size=(N, 16))},
            weights={}, activation_dtype="float32",
        )


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


# --------------------------------------------------------------------------- coverage and damaged caches


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def analysed(tmp_path):
    """A fresh db (ended run, steps 0 and 10) with every derived table computed."""
    write_run(tmp_path / "db", steps=STEPS[:2])
    store = StatsDB(tmp_path / "db")
    derived.compute_all(store)
    return store


def test_a_data_map_grows_with_the_run(analysed):
    before = Derived(analysed).data_map()
    assert set(before.n_steps) == {2} and set(before.last_step) == {10}
    assert before.set_index("probe_id").loc[0].forgetting_events == 1
    write_steps(analysed.root, STEPS[2:], first=2)  # the run is resumed: 20 and 30 arrive
    store = StatsDB(analysed.root)
    after = Derived(store).data_map()
    assert set(after.n_steps) == {4} and set(after.last_step) == {30}
    assert after.set_index("probe_id").loc[0].forgetting_events == 2
    assert set(store.get_derived("data_map", {}).n_steps) == {4}  # stored again, not only served
    assert derived.compute_all(store)["data_map"] == "cached"


def test_a_data_map_in_memory_follows_a_run_still_training(tmp_path):
    write_run(tmp_path / "db", ended=False, steps=STEPS[:2])
    service = Derived(StatsDB(tmp_path / "db"))
    assert set(service.data_map().n_steps) == {2}
    write_steps(tmp_path / "db", STEPS[2:], first=2)
    assert set(service.data_map().n_steps) == {4}


def test_a_truncated_data_map_is_recomputed(analysed):
    path = next((analysed.root / "data_map").rglob("*.parquet"))
    _truncate(path)
    dm = Derived(StatsDB(analysed.root)).data_map()
    assert len(dm) == N and set(dm.n_steps) == {2}
    assert len(StatsDB(analysed.root).get_derived("data_map", {})) == N  # the file was rewritten


@pytest.mark.parametrize("layer", ["blobs", "pixels"])
def test_a_truncated_layer_quality_file_is_recomputed(analysed, layer):
    step = 10 if layer == "blobs" else 0
    path = next((analysed.root / "layer_quality").rglob(f"step={step}/layer={layer}/*.parquet"))
    _truncate(path)
    store = StatsDB(analysed.root)
    service = Derived(store)
    assert service.missing_quality() == [(step, layer)]
    rows = service.layer_quality(step, layer)
    assert set(rows.metric) == set(QUALITY_METRICS) and set(rows.step) == {step}
    assert service.missing_quality() == []


def test_rows_of_an_older_metric_vocabulary_are_recomputed(analysed):
    old = pd.DataFrame({"step": [10], "layer": ["blobs"], "metric": ["knn_acc"], "value": [1.0]})
    analysed.put_derived("layer_quality", {"step": 10, "layer": "blobs"}, old)
    service = Derived(StatsDB(analysed.root))
    assert service.missing_quality() == [(10, "blobs")]
    assert derived.compute_all(service.db)["computed"] == 1
    assert set(service.layer_quality(10, "blobs").metric) == set(QUALITY_METRICS)


def test_a_truncated_projection_is_a_cache_miss_and_is_recomputed(analysed):
    from webui import DEFAULTS
    from webui.projections import Projections
    from webui.state import AppState

    def computed(store) -> Projections:
        projections = Projections(store, AppState.from_config(DEFAULTS), max_seeds=4)
        projections.start(RUN, "blobs", "pca", 0)
        projections._job(RUN, "blobs", "pca", 0).wait(60)
        return projections

    key = {"layer": "blobs", "method": "pca", "seed": 0, "step": 10}
    computed(analysed)
    path = next((analysed.root / "projections").rglob("step=10/*.parquet"))
    _truncate(path)
    store = StatsDB(analysed.root)
    with pytest.raises(CorruptDataError, match=r"Cannot read .*truncated or corrupt"):
        store.get_derived("projections", key)
    assert derived.read_derived(store, "projections", key) is None
    again = computed(store)
    assert again.status(RUN, "blobs", "pca", 0)["cached_steps"] == [0, 10]
    assert len(derived.read_derived(store, "projections", key)) == N


def test_unit_history_leaves_out_an_unreadable_step_and_says_why(analysed):
    path = next((analysed.root / "activations").rglob("step=10/*.parquet"))
    _truncate(path)
    service = Derived(StatsDB(analysed.root))
    history = service.unit_history("blobs", 3, k=4)
    assert sorted(set(history.step)) == [0] and len(history) == 4
    assert list(history.attrs["skipped"]) == [10] and "truncated or corrupt" in history.attrs["skipped"][10]
    top = service.top_units(0, "blobs", k=4)
    assert list(history["probe_id"]) == list(top[top.unit == 3].probe_id)
    with pytest.raises(ConfigurationError, match=r"unit=16 is out of range for layer 'blobs', which has 16 units"):
        service.unit_history("blobs", 16)


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


def test_unit_history_says_whether_each_image_was_right_at_its_own_step(service):
    # Image 0 flips right -> wrong -> right -> wrong: its row at each step must say so, not repeat the last step.
    history = service.unit_history("blobs", 0, k=N, run=RUN)
    first = history[history["probe_id"] == 0].set_index("step")["correct"]
    assert first.to_dict() == {0: 1, 10: 0, 20: 1, 30: 0}
    assert set(history[history["probe_id"] != 0]["correct"]) == {1}
