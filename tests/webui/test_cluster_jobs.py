"""Clustering as a de-duplicated background job: the route answers 202 with a job id until the labels are
cached, never clustering (or waiting) on the request's thread; the purity timeline uses the same jobs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from deepviz import analysis as A

from .polling import settled
from .test_embedding import decode


@pytest.fixture()
def held_app(webui_db):
    """An app whose one compute worker can be held busy by the test."""
    from webui import create_app

    return create_app(webui_db, test_config={"TESTING": True, "COMPUTE_WORKERS": 1, "COMPUTE_QUEUE": 4})


def test_clusters_answer_pending_with_one_job_then_the_labels(held_app):
    client, runner = held_app.test_client(), held_app.extensions["deepviz"].compute
    store = held_app.extensions["deepviz_db"]
    run = store.resolve_run()
    step = store.steps(run)[-1]
    url = f"/api/runs/{run}/steps/{step}/clusters?layer=fc1&k=4&seed=3"
    gate = threading.Event()
    hold = runner.submit(("hold",), lambda job: gate.wait(30))
    try:
        # The worker is busy: the request neither clusters nor waits; it names the queued job.
        first, again = client.get(url), client.get(url)
        assert first.status_code == 202 and again.status_code == 202
        meta, arrays = decode(first.data)
        assert meta["pending"] is True and meta["state"] == "queued" and len(arrays["labels"]) == 0
        assert decode(again.data)[0]["job"] == meta["job"]
        assert sum(1 for j in runner.active() if j.key[0] == "clusters") == 1  # de-duplicated
    finally:
        gate.set()
    assert hold.wait(30)
    meta, arrays = decode(settled(client, url).data)
    assert meta["pending"] is False
    np.testing.assert_array_equal(arrays["labels"], A.kmeans(store.activations(step, "fc1", run), 4, random_state=3))


def test_purity_timeline_clusters_every_step_through_the_same_jobs(held_app):
    client, runner = held_app.test_client(), held_app.extensions["deepviz"].compute
    store = held_app.extensions["deepviz_db"]
    run = store.resolve_run()
    steps = store.steps(run)
    url = f"/api/runs/{run}/clusters/purity?layer=fc1&k=8&seed=5"
    gate = threading.Event()
    hold = runner.submit(("hold",), lambda job: gate.wait(30))
    try:
        body = client.get(url)
        assert body.status_code == 202
        pending = body.get_json()
        assert pending["pending"] is True and pending["purity"] == [None] * len(steps) and pending["steps"] == steps
    finally:
        gate.set()
    assert hold.wait(30)
    body = settled(client, url).get_json()
    assert body["pending"] is False and body["errors"] == {}
    # True at every step: each value is that step's own clustering of that step's activations.
    labels = [A.kmeans(store.activations(s, "fc1", run), 8, random_state=5) for s in steps]
    assert body["purity"] == pytest.approx([A.purity(y, store.predictions(s, run)["label"]) for s, y in zip(steps, labels)])
    assert not np.array_equal(labels[0], labels[-1])  # the steps' partitions differ, so a wrong step would show
    # The timeline's job left every step's labels cached: each step's panel answers at once, with them.
    for s, y in zip(steps, labels):
        res = client.get(f"/api/runs/{run}/steps/{s}/clusters?layer=fc1&k=8&seed=5")
        assert res.status_code == 200
        np.testing.assert_array_equal(decode(res.data)[1]["labels"], y)


def test_a_failed_clustering_reports_its_error(held_app):
    client = held_app.test_client()
    store = held_app.extensions["deepviz_db"]
    run = store.resolve_run()
    step = store.steps(run)[0]
    n = len(store.probes(run))
    # HDBSCAN's min_cluster_size above the probe count passes the route's bounds and fails in the job.
    url = f"/api/runs/{run}/steps/{step}/clusters?layer=fc1&method=hdbscan&min_cluster_size={n + 1}"
    res = settled(client, url)
    assert res.status_code == 400 and f"min_cluster_size={n + 1} exceeds the {n} rows" in res.get_json()["error"]
    assert settled(client, url).status_code == 400  # asked again: the same error, not a pending job forever


def test_the_clusters_panel_shows_progress_while_the_job_waits_then_the_clusters(live_server, app, page, run_id):
    from .conftest import screenshot

    runner = app.extensions["deepviz"].compute
    gate = threading.Event()
    holds = [runner.submit(("hold", i), lambda job: gate.wait(60)) for i in range(runner.workers)]
    try:
        page.goto(f"{live_server.url}/runs/{run_id}?view=embedding&method=pca")
        clusters = page.locator("[data-testid=clusters]")
        clusters.locator("[data-testid=cluster-list] .progress").wait_for(timeout=60_000)
        clusters.locator("[data-testid=purity-chart] .progress").wait_for()
        page.wait_for_timeout(1500)  # two polls: still pending, still no cards
        assert clusters.locator(".cluster-card").count() == 0
        screenshot(page, "clusters_pending")
    finally:
        gate.set()
    assert all(job.wait(30) for job in holds)
    clusters.locator("[data-testid=cluster-list] .cluster-card figure").first.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=purity-chart] .progress')", timeout=60_000)
    assert clusters.locator("[data-testid=cluster-list] .cluster-card").count() >= 2
    assert page.locator("[data-testid=purity-chart] svg path.line").count() == 1
