"""The app's one job runner and cache: bounded work, deduplicated by key, and a cap on distinct projection seeds."""

from __future__ import annotations

import threading
import time

import pytest

from deepviz.cache import Cache
from webui.state import Busy, JobRunner

from .conftest import assert_api_error
from .polling import settled


def test_a_key_already_queued_or_running_is_one_job():
    runner = JobRunner("test", workers=1, max_queued=2)
    gate, calls = threading.Event(), []
    first = runner.submit("a", lambda job: (calls.append("a"), gate.wait(10)))
    again = runner.submit("a", lambda job: calls.append("a twice"))
    assert again is first
    gate.set()
    assert first.wait(10) and first.state == "done" and calls == ["a"]
    # once finished, the key may run again
    rerun = runner.submit("a", lambda job: calls.append("a again"))
    assert rerun is not first and rerun.wait(10) and calls == ["a", "a again"]


def test_the_queue_is_bounded_and_the_workers_fixed():
    runner = JobRunner("bounded-test", workers=2, max_queued=3)
    gate = threading.Event()
    jobs = [runner.submit(i, lambda job: gate.wait(10)) for i in range(5)]
    with pytest.raises(Busy, match=r"5 bounded-test jobs are running or queued \(at most 2 at once and 3 waiting\)"):
        runner.submit(5, lambda job: None)
    # Counted by name: other tests' threads may come and go meanwhile.
    assert sum(t.name.startswith("deepviz-bounded-test-") for t in threading.enumerate()) == 2
    deadline = time.monotonic() + 10
    while sum(j.state == "running" for j in jobs) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the two workers pick up their jobs
    assert sorted(j.state for j in jobs) == ["queued"] * 3 + ["running"] * 2
    gate.set()
    assert all(j.wait(10) for j in jobs) and {j.state for j in jobs} == {"done"}
    assert runner.submit(5, lambda job: 42).wait(10)


def test_a_failing_job_reports_its_error_and_the_worker_goes_on():
    runner = JobRunner("test", workers=1, max_queued=2)
    bad = runner.submit("bad", lambda job: 1 / 0)
    good = runner.submit("good", lambda job: "fine")
    assert bad.wait(10) and good.wait(10)
    assert bad.state == "failed" and bad.error == "ZeroDivisionError: division by zero" and isinstance(bad.exception, ZeroDivisionError)
    assert good.result == "fine"


def test_a_queued_job_can_be_cancelled_and_a_running_one_cannot():
    runner = JobRunner("test", workers=1, max_queued=2)
    gate = threading.Event()
    running = runner.submit("run", lambda job: gate.wait(10))
    queued = runner.submit("wait", lambda job: pytest.fail("a cancelled job ran"))
    while running.state != "running":
        running.wait(0.01)
    assert runner.cancel(queued) and queued.state == "failed" and queued.error == "cancelled"
    assert not runner.cancel(running)
    gate.set()
    assert running.wait(10)


def test_the_cache_is_bounded_and_computes_a_key_once():
    cache = Cache(2)
    calls = []
    assert cache.get_or_compute("a", lambda: calls.append("a") or 1) == (1, False)
    assert cache.get_or_compute("a", lambda: calls.append("a") or 2) == (1, True)
    cache.put("b", 2)
    cache.put("c", 3)
    assert len(cache) == 2 and cache.get("a") is None and calls == ["a"]


def test_sixteen_seeds_do_not_start_sixteen_jobs(app, client, run_id):
    jobs = app.extensions["deepviz"].jobs
    cap, workers = app.config["PROJECTION_MAX_SEEDS"], app.config["JOB_WORKERS"]
    gate = threading.Event()
    # Keep the workers busy so every projection job stays queued while the requests arrive.
    blockers = [jobs.submit(("block", i), lambda job: gate.wait(30)) for i in range(workers)]
    before = threading.active_count()
    try:
        # seeds no other test has computed, so none is already stored
        seeds = range(1000, 1016)
        statuses = [client.get(f"/api/runs/{run_id}/steps/0/projection?method=tsne&seed={seed}").status_code for seed in seeds]
        refused = client.get(f"/api/runs/{run_id}/steps/0/projection?method=tsne&seed=99")
        assert_api_error(refused, 429, rf"Seed 99 refused: {cap} seeds of tsne on layer 'fc1' are already computing "
                                       rf"\(1000, 1001, 1002, 1003; at most {cap} at once\)")
        assert statuses == [200] * cap + [429] * (16 - cap)
        assert threading.active_count() == before  # no thread per seed
        assert len([j for j in jobs.active() if j.key[0] == "projection"]) == cap
        # asking again for a seed already queued is the same job, not a refusal
        assert client.get(f"/api/runs/{run_id}/steps/0/projection?method=tsne&seed=1002").status_code == 200
    finally:
        for job in jobs.active():  # leave the shared db without the projections
            if job.key[0] == "projection":
                assert jobs.cancel(job)
        gate.set()
        for job in blockers:
            job.wait(30)


def test_clustering_runs_on_the_bounded_compute_runner(webui_db):
    from webui import create_app

    app = create_app(webui_db, test_config={"TESTING": True, "COMPUTE_WORKERS": 1, "COMPUTE_QUEUE": 1})
    client, runner = app.test_client(), app.extensions["deepviz"].compute
    run = app.extensions["deepviz_db"].resolve_run()
    step = app.extensions["deepviz_db"].steps(run)[-1]
    url = f"/api/runs/{run}/steps/{step}/clusters?layer=fc1&k=4&seed=1"
    assert settled(client, url).status_code == 200
    assert [j.state for j in runner.active()] == [] and len(runner._threads) == 1
    assert runner._threads[0].name == "deepviz-compute-0"
    # Both places of the runner taken: a new clustering is refused at once instead of starting more work.
    gate = threading.Event()
    held = [runner.submit(("hold", i), lambda job: gate.wait(10)) for i in range(2)]
    try:
        assert_api_error(client.get(url.replace("seed=1", "seed=2")), 429, r"2 compute jobs are running or queued")
    finally:
        gate.set()
    assert all(j.wait(10) for j in held)
    assert settled(client, url.replace("seed=1", "seed=2")).status_code == 200
