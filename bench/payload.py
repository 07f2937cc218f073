"""Bytes sent to the browser: a step's predictions, and the Embedding view's first paint.

    python bench/payload.py --n 100000          # a synthetic db of n probe images
    python bench/payload.py --db stats_db       # an existing db (its last run, last step)

Three figures, each from one function that ``bench/scale.py`` can call on its db:

- ``predictions_bytes(db)``: the body of the step's predictions as the browser asks for them
  (``format=lean``: uint8 classes, uint16 confidence, bit-packed right/wrong). Target at
  100,000 images: <= 400,000.
- ``first_paint_bytes(db)``: every response body Chromium received on opening the Embedding
  view, from the page itself to the moment the scatter has drawn the step's points (its
  ``data-step`` attribute is set by ``setPositions``): the HTML, the JS and CSS, the run, the
  probes, the predictions, the projection's status and layout. No thumbnail is fetched before
  that. Target at 100,000 images: <= 2,000,000.
- ``step_switch_ms(db)``: server time of what a step change asks for (the step's lean
  predictions and lean layout, one after the other), per step: (p50, p99) in ms over the
  steps visited first (cold: read from the db) and again (warm). Target: p50 <= 20.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def _tiny_png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def synthetic_db(path: Path, n: int, n_steps: int = 2, width: int = 16, n_classes: int = 10, seed: int = 0) -> str:
    """A db of one run with ``n`` probe images and ``n_steps`` snapshots whose predictions
    differ, written with ``StatsWriter``; returns the run id. 64 distinct thumbnails are reused."""
    from deepviz import StatsWriter

    rng = np.random.default_rng(seed)
    run_id = "synthetic"
    labels = rng.integers(0, n_classes, n)
    pngs = [_tiny_png(i) for i in range(64)]
    with StatsWriter(path) as writer:
        writer.write_run({"run_id": run_id, "name": f"synthetic {n}", "model_class": "trainers.models:SmallNet", "hparams": "{}",
                          "class_names": [f"class {i}" for i in range(n_classes)], "input_shape": [1, 2, 2], "layers": ["fc"], "n_probe": n})
        writer.write_probes(run_id, np.arange(n), labels, [f"class {i}" for i in range(n_classes)],
                            [pngs[i % len(pngs)] for i in range(n)], np.zeros((n, 4), np.float32))
        centres = rng.normal(size=(n_classes, width)).astype(np.float32)
        for s in range(n_steps):
            sharp = 1.0 + 2.0 * s  # later steps are more confident and more often right
            logits = rng.normal(size=(n, n_classes)).astype(np.float32) + sharp * np.eye(n_classes, dtype=np.float32)[labels]
            probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            x = centres[labels] * sharp + rng.normal(size=(n, width)).astype(np.float32)
            writer.write_snapshot(run_id, 10 * (s + 1), epoch=s, trigger="epoch", probe_ids=np.arange(n), labels=labels,
                                  probs=probs.astype(np.float32), loss=-np.log(probs[np.arange(n), labels]).astype(np.float32),
                                  activations={"fc": x}, weights={}, metrics={"val_acc": float((probs.argmax(1) == labels).mean())})
    return run_id


def _run_and_step(stats, run, step):
    run = stats.resolve_run(run)
    return run, stats.steps(run)[-1] if step is None else int(step)


def predictions_bytes(db, run: str | None = None, step: int | None = None) -> int:
    """Bytes of the step's predictions as the Embedding view fetches them (``format=lean``)."""
    from webui import create_app

    app = create_app(db, test_config={"TESTING": True})
    run, step = _run_and_step(app.extensions["deepviz_db"], run, step)
    res = app.test_client().get(f"/api/runs/{run}/steps/{step}/predictions?format=lean")
    if res.status_code != 200:
        raise RuntimeError(f"predictions of step {step} answered {res.status_code}: {res.get_data(as_text=True)[:300]}")
    return len(res.data)


# The moment the view has given the scatter the step's points: its User Timing mark
# ``embedding:drawn``, set right after ``setPositions``; and the bodies of the responses
# that had ended by then (Resource Timing, whose end the network stack stamps even while
# the page's thread is busy drawing).
_DRAWN_AT = """(step) => {
  const mark = performance.getEntriesByName('embedding:drawn').find((m) => m.detail && m.detail.step === step);
  return mark ? mark.startTime : null;
}"""
_RECEIVED_BEFORE = """(t) => {
  const out = {};
  const [page] = performance.getEntriesByType('navigation');
  out[page.name] = page.encodedBodySize;
  for (const e of performance.getEntriesByType('resource')) {
    if (e.responseEnd <= t) out[e.name] = (out[e.name] || 0) + e.encodedBodySize;
  }
  return out;
}"""


def _layouts_computed(app, run: str, method: str, timeout_s: float) -> None:
    """Compute (or find stored) the projection sequence of the default layer, as the view would."""
    client = app.test_client()
    url = f"/api/runs/{run}/projection?method={method}"
    status = client.post(url).get_json()
    deadline = time.monotonic() + timeout_s
    while status["running"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {method} projection of run {run!r} was still running after {timeout_s:.0f} s: {status}")
        time.sleep(0.2)
        status = client.get(url).get_json()


def first_paint(db, run: str | None = None, step: int | None = None, method: str = "pca", timeout_s: float = 600.0,
                browser=None) -> dict[str, int]:
    """{url: body bytes} of every response Chromium received before the Embedding view drew the
    step's points, its layouts already stored (computed first here, as they are once per db).
    ``method``: the projection (its layout is as many bytes whichever it is). ``browser``: a Playwright
    browser to use (a test's); by default Chromium is started here."""
    from webui import create_app
    from webui.server import make_server

    app = create_app(db)
    run, step = _run_and_step(app.extensions["deepviz_db"], run, step)
    _layouts_computed(app, run, method, timeout_s)
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}/runs/{run}?view=embedding&method={method}&step={step}"
    try:
        if browser is not None:
            drawn = _received(browser, url, int(step), timeout_s)
        else:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                own = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                drawn = _received(own, url, int(step), timeout_s)
                own.close()
        _settle(app, timeout_s)  # the jobs the page started (clusters, purity) end before the caller goes on
    finally:
        # The requests in flight end first (they write through the server's trigger): at 100,000 images a panel's
        # request the page made after its first paint can take longer than waitress's default 5 s.
        server.task_dispatcher.shutdown(timeout=timeout_s)
        server.close()
        thread.join(5)
    return drawn


def _received(browser, url: str, step: int, timeout_s: float) -> dict[str, int]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.add_init_script("performance.setResourceTimingBufferSize(100000)")
        page.goto(url)
        page.wait_for_function(f"() => ({_DRAWN_AT})({step}) !== null", timeout=timeout_s * 1000)
        return page.evaluate(_RECEIVED_BEFORE, page.evaluate(_DRAWN_AT, step))
    finally:
        page.close()


def _settle(app, timeout_s: float) -> None:
    from webui.state import AppState

    state = next(v for v in app.extensions.values() if isinstance(v, AppState))
    deadline = time.monotonic() + timeout_s
    for runner in (state.jobs, state.compute):
        for job in runner.active():
            job.wait(max(0.0, deadline - time.monotonic()))


def first_paint_bytes(db, run: str | None = None, step: int | None = None, method: str = "pca") -> int:
    """Total bytes of ``first_paint``."""
    return sum(first_paint(db, run, step, method).values())


def step_switch_ms(db, run: str | None = None, method: str = "pca", rounds: int = 5) -> dict[str, tuple[float, float]]:
    """(p50, p99) in ms of a step change's two requests: "cold" (each step's first visit) and
    "warm" (the visits after) in wall time, and "warm_cpu" in the server thread's CPU time,
    which a busy shared machine inflates less."""
    from webui import create_app

    app = create_app(db, test_config={"TESTING": True})
    run, _ = _run_and_step(app.extensions["deepviz_db"], run, None)
    _layouts_computed(app, run, method, 600.0)
    client = app.test_client()

    def switch(step: int) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.thread_time()
        for path in (f"steps/{step}/predictions?format=lean", f"steps/{step}/projection?method={method}&format=lean"):
            res = client.get(f"/api/runs/{run}/{path}")
            if res.status_code != 200:
                raise RuntimeError(f"{path} answered {res.status_code}: {res.get_data(as_text=True)[:300]}")
        return 1000 * (time.perf_counter() - t0), 1000 * (time.thread_time() - c0)

    steps = app.extensions["deepviz_db"].steps(run)
    cold = np.array([switch(s) for s in steps])
    warm = np.array([switch(s) for _ in range(rounds) for s in steps])
    pick = {"cold": cold[:, 0], "warm": warm[:, 0], "warm_cpu": warm[:, 1]}
    return {name: (float(np.percentile(v, 50)), float(np.percentile(v, 99))) for name, v in pick.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, help="an existing db (default: a synthetic one of --n images)")
    ap.add_argument("--n", type=int, default=20_000, help="probe images of the synthetic db (default 20,000)")
    ap.add_argument("--width", type=int, default=16, help="activation width of the synthetic db")
    ap.add_argument("--steps", type=int, default=4, help="snapshots of the synthetic db")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "db"
        if args.db is None:
            synthetic_db(db, args.n, n_steps=args.steps, width=args.width)
        paint = first_paint(db)
        for url, size in sorted(paint.items(), key=lambda kv: -kv[1])[:8]:
            print(f"{size:>10,}  {url.split('/', 3)[-1][:100]}")
        n = len(__import__("deepviz").StatsDB(db).probes())
        pred = predictions_bytes(db)
        print(f"n={n} predictions_per_image={pred / n:.2f} (target at 100k: 4.00)")
        for name, (p50, p99) in step_switch_ms(db).items():
            print(f"step_switch_{name}: p50={p50:.1f} ms p99={p99:.1f} ms (target p50 <= 20)")
        print(f"predictions_bytes={pred} first_paint_bytes={sum(paint.values())}")


if __name__ == "__main__":
    main()
