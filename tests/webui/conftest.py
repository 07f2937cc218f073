"""Fixtures for the web UI: a real run trained once per session, the Flask app,
a live server on loopback, and headless Chromium through Playwright."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"


def train_run(db: Path, epochs: int = 2, probe_size: int = 150, ckpt_dir: Path | None = None) -> str:
    """Train the small digits net with the callback; returns the run id."""
    import lightning.pytorch as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    from deepviz import StatsCallback
    from trainers.models import SmallNet

    L.seed_everything(0, verbose=False)
    digits = load_digits()
    x = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    train, val = TensorDataset(x[:1400], y[:1400]), TensorDataset(x[1400:], y[1400:])
    callback = StatsCallback(db, probe=val, probe_size=probe_size, dataset_name="digits", class_names=[str(i) for i in range(10)], run_name="webui-test")
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback, ModelCheckpoint(dirpath=ckpt_dir or db.parent / "ckpt", save_top_k=-1)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(db.parent),
    )
    trainer.fit(SmallNet(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    return callback.run_id


@pytest.fixture(scope="session")
def webui_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("webui")
    db = root / "stats_db"
    train_run(db)
    return db


@pytest.fixture()
def app(webui_db):
    from webui import create_app

    return create_app(webui_db, test_config={"TESTING": True})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def run_id(app) -> str:
    return app.extensions["deepviz_db"].run_ids()[-1]


def assert_api_error(response, status: int, match: str) -> dict:
    """Every API error has one shape: {"ok": false, "error": message, "status": N}."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body is not None, f"not JSON: {response.get_data(as_text=True)[:200]}"
    assert body["ok"] is False and body["status"] == status and isinstance(body["error"], str)
    assert re.search(match, body["error"]), f"{match!r} not in {body['error']!r}"
    return body


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()


class Waitress:
    """The app on waitress with ``deepviz serve``'s settings (``webui.server``), on a loopback port."""

    def __init__(self, app, **overrides):
        from webui.server import make_server

        self.server = make_server(app, "127.0.0.1", 0, **overrides)
        self.port = self.server.effective_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.close()
        self.server.task_dispatcher.shutdown()
        self.thread.join(5)


@pytest.fixture()
def live_server(app):
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); .ci/run does.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors
    yield pg
    context.close()


def screenshot(page, name: str) -> Path:
    """Save a screenshot under tests/_artifacts/ (gitignored) for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
