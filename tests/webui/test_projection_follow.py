"""With the UI open during training, a step that lands gets its layout computed, continuing the sequence."""

from __future__ import annotations

import shutil
import time

import numpy as np

from deepviz import StatsDB
from deepviz.analysis.projection import project

from .test_embedding import decode


def _wait(client, url: str, done, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(url).get_json()
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}: not there after {timeout:g} s: {status}")
        time.sleep(0.05)


def test_a_step_that_lands_while_serving_gets_its_aligned_layout(webui_db, tmp_path):
    from webui import create_app

    db = tmp_path / "stats_db"
    shutil.copytree(webui_db, db, ignore=shutil.ignore_patterns("_locks", ".*.tmp"))
    run = StatsDB(db).resolve_run()
    steps = StatsDB(db).steps(run)
    # The last step not yet committed: the writer renames its `steps` folder in last, so without it the
    # step does not exist; renaming it back is that step landing.
    marker = db / "steps" / f"run_id={run}" / f"step={steps[-1]}"
    aside = tmp_path / "aside"
    marker.rename(aside)
    client = create_app(db, test_config={"TESTING": True}).test_client()
    url = f"/api/runs/{run}/projection?layer=fc1&method=pca&seed=0"
    client.post(url)
    status = _wait(client, url, lambda s: not s["running"])
    assert status["cached_steps"] == steps[:-1] and status["total"] == len(steps) - 1

    aside.rename(marker)
    status = _wait(client, url, lambda s: steps[-1] in s["cached_steps"])
    assert status["cached_steps"] == steps and status["total"] == len(steps)
    meta, arrays = decode(client.get(f"/api/runs/{run}/steps/{steps[-1]}/projection?layer=fc1&method=pca&seed=0").data)
    assert meta["provisional"] is False
    prev = decode(client.get(f"/api/runs/{run}/steps/{steps[-2]}/projection?layer=fc1&method=pca&seed=0").data)[1]["xy"]
    # The new layout is the sequence's continuation: this step's activations, aligned to the step before.
    store = StatsDB(db)
    expected = project(store.activations(steps[-1], "fc1", run), "pca", init=prev, random_state=0)
    np.testing.assert_allclose(arrays["xy"], expected, atol=1e-5)
    assert not np.allclose(arrays["xy"], prev, atol=1e-3)  # the step's own data, not the previous layout
