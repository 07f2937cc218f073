"""deepviz.notebook.show in a real notebook, run through a real kernel (nbclient + ipykernel)."""

from __future__ import annotations

import functools
import html
import http.server
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deepviz.errors import ConfigurationError, NotFoundError
from tests.webui.conftest import screenshot

JS_VIEWS = Path(__file__).resolve().parents[2] / "webui" / "static" / "js" / "views"


def _src(output) -> str:
    """The URL an IFrame output opens (its HTML attribute, unescaped)."""
    return html.unescape(re.search(r'src="([^"]+)"', output.data["text/html"]).group(1))


class _Kernel:
    """The notebook run by nbclient in a real kernel, from a thread of its own (nbclient's asyncio loop stays in that
    thread, away from Playwright's), the kernel kept alive until ``close``."""

    def __init__(self, nb):
        self.outputs, self.error = None, None
        self._ready, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(nb,), daemon=True)
        self._thread.start()
        if not self._ready.wait(240):
            pytest.fail("the notebook did not finish within 240 s")
        if self.error is not None:
            raise self.error

    def _run(self, nb):
        from nbclient import NotebookClient

        client = NotebookClient(nb, timeout=120, kernel_name="python3")
        try:
            with client.setup_kernel():
                for i, cell in enumerate(nb.cells):
                    client.execute_cell(cell, i)
                self.outputs = [cell.outputs for cell in nb.cells]
                self._ready.set()
                self._done.wait(600)
        except Exception as exc:  # handed to the test's thread, which raises it
            self.error = exc
        finally:
            self._ready.set()

    def close(self):
        self._done.set()
        self._thread.join(60)


def _get(url: str, host: str | None = None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


class _Parent:
    """A page on another loopback port that frames the notebook's output, as Jupyter's page does."""

    def __init__(self, folder: Path, body: str):
        (folder / "index.html").write_text(f"<!doctype html><html><body>{body}</body></html>")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://localhost:{self.server.server_port}/index.html"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.browser
def test_show_in_a_kernel_serves_the_ui_inline(db, populated_db, tmp_path, browser):
    import nbformat

    run_id, steps = db.run_ids()[-1], db.steps()
    step = steps[1]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"from deepviz.notebook import show\nui = show({str(populated_db)!r}, view='embedding', step={step})\nui"),
        nbformat.v4.new_code_cell(f"again = show({str(populated_db)!r}, view='confusion')\nprint(again is ui, again.port == ui.port)"),
    ])
    kernel = _Kernel(nb)
    try:
        first, second = kernel.outputs
        frames = [o for o in first if o.output_type == "display_data"]
        assert len(frames) == 1 and "<iframe" in frames[0].data["text/html"]
        src = _src(frames[0])
        port = int(re.match(r"http://127\.0\.0\.1:(\d+)/", src).group(1))
        assert src == f"http://127.0.0.1:{port}/runs/{run_id}?step={step}&view=embedding"
        result = [o for o in first if o.output_type == "execute_result"][0]
        assert result.data["text/plain"] == f"deepviz UI for {str(populated_db)!r} at http://127.0.0.1:{port}/"
        # the second show reuses the kernel's server, at another view
        assert [o.text for o in second if o.output_type == "stream"] == ["True True\n"]
        second_src = _src([o for o in second if o.output_type == "display_data"][0])
        assert second_src == f"http://127.0.0.1:{port}/runs/{run_id}?view=confusion"

        status, headers, body = _get(src)  # the server answers from the kernel, over HTTP
        assert status == 200 and f'data-run="{run_id}"' in body
        assert headers["Content-Security-Policy"] == "frame-ancestors http://localhost:* http://127.0.0.1:* http://[::1]:*"
        assert "X-Frame-Options" not in headers
        status, _, body = _get(f"http://127.0.0.1:{port}/api/runs")
        assert status == 200 and run_id in body
        status, _, body = _get(f"http://127.0.0.1:{port}/api/runs", host="evil.example")  # the Host allow-list holds
        assert status == 421 and "does not answer for Host 'evil.example'" in body

        parent = _Parent(tmp_path, frames[0].data["text/html"])
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        try:
            page = context.new_page()
            page.goto(parent.url)
            frame = page.frame_locator("iframe")
            label = frame.get_by_test_id("step-label")
            label.wait_for(timeout=20_000)  # framed: the loopback parent is an allowed ancestor
            assert label.inner_text().startswith(f"step {step} ")
            assert frame.get_by_test_id("tab-embedding").get_attribute("aria-selected") == "true"
            inner = next(f for f in page.frames if f.url.startswith(src.split("?")[0]))  # its URL now holds the UI state
            inner.wait_for_function(  # the embedding drawn is step S's
                f"() => document.querySelector('[data-testid=scatter]')?.dataset.step === '{step}'", timeout=60_000)
            screenshot(page, "notebook_iframe")
        finally:
            context.close()
            parent.close()
    finally:
        kernel.close()


def test_views_match_the_ui_tabs():
    from deepviz.notebook import VIEWS

    index = (JS_VIEWS / "index.js").read_text()
    listed = re.search(r"export const VIEWS = \[([^\]]*)\]", index).group(1).replace(" ", "").split(",")
    ids = [re.search(r"export const id = '([^']+)'", (JS_VIEWS / f"{name}.js").read_text()).group(1) for name in listed]
    assert list(VIEWS) == ids


def test_urls_and_their_errors(db, populated_db, tmp_path):
    from deepviz import notebook

    ui = notebook.server(populated_db)
    try:
        assert notebook.server(populated_db) is ui  # one server per db
        run_id = db.run_ids()[-1]
        assert ui.url() == f"http://127.0.0.1:{ui.port}/runs/{run_id}"
        with pytest.raises(NotFoundError, match=r"Unknown step 12345 in run '.*'\. Available steps: 0, "):
            ui.url(step=12345)
        with pytest.raises(NotFoundError, match=r"Unknown run 'nope'\. Available: "):
            ui.url(run="nope")
        with pytest.raises(ConfigurationError, match=r"Unknown view 'mosaic'\. Available: embedding, confusion, "):
            ui.url(view="mosaic")
        other = ui.port + 1 if ui.port < 65535 else ui.port - 1
        with pytest.raises(ConfigurationError, match=rf"already runs on port {ui.port}, not {other}\. Call show\(\) with port=0"):
            notebook.server(populated_db, port=other)
    finally:
        notebook.stop(populated_db)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{ui.port}/", timeout=5)  # stopped

    empty = notebook.server(tmp_path / "later")  # before the first run: the runs page, waiting
    try:
        assert empty.url() == f"http://127.0.0.1:{empty.port}/"
        with pytest.raises(ConfigurationError, match=r"holds no runs yet, so it has no view or step to open"):
            empty.url(view="embedding")
        assert _get(empty.url() + "api/runs")[2].strip() == "[]"
    finally:
        notebook.stop(tmp_path / "later")


def test_a_busy_port_is_refused(db, populated_db, tmp_path):
    import socket

    from deepviz import notebook

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError, match=rf"Cannot listen on 127\.0\.0\.1:{port} \(.*\)\. Pick another port"):
            notebook.server(tmp_path / "db", port=port)


def test_show_without_ipython_says_what_to_install(populated_db, monkeypatch):
    import sys

    from deepviz import notebook

    monkeypatch.setitem(sys.modules, "IPython.display", None)  # as where IPython is not installed
    with pytest.raises(ConfigurationError, match=r"deepviz\.notebook needs IPython: pip install 'deepviz\[notebook\]'"):
        notebook.show(populated_db)
