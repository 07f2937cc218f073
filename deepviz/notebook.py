"""deepviz inside a notebook: ``show(db)`` serves the UI from the kernel and displays it inline.

The first ``show`` of a db starts the real server (``webui.server.make_server``, the waitress settings of
``deepviz serve``) in a daemon thread of the kernel, bound to 127.0.0.1: the same security model as
``deepviz serve`` on loopback (no token; the Host allow-list of loopback names; state-changing requests
only from its own pages). The one difference: its pages may be framed by pages served from loopback (the
notebook's own), which ``deepviz serve`` forbids. Later calls for the same db reuse the server, so each
cell opens another view of one UI. The servers live as long as the kernel (or until ``stop``).
"""

from __future__ import annotations

import os
import threading
from urllib.parse import quote, urlencode

from .errors import ConfigurationError

HOST = "127.0.0.1"
#: The run page's tabs (webui/static/js/views/index.js; a test checks they match).
VIEWS = ("embedding", "confusion", "metrics", "inspect", "analysis", "sql")
#: Pages that may frame the UI: the notebook's, served from this machine on any port.
FRAME_ANCESTORS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")


class NotebookServer:
    """The UI over one db, served from a thread of this process."""

    def __init__(self, db: str | os.PathLike, port: int = 0):
        from webui import create_app
        from webui.server import make_server

        from .store import prepare_db

        prepare_db(db)  # a db that does not exist yet: the runs page waits for its first run
        app = create_app(db, frame_ancestors=FRAME_ANCESTORS)
        self.db = app.extensions["deepviz_db"]
        try:
            self._server = make_server(app, HOST, port)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot listen on {HOST}:{port} ({exc.strerror or exc}). Pick another port, or port=0 for a free one."
            ) from exc
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name=f"deepviz-ui-{self.port}", daemon=True)
        self._thread.start()

    def url(self, run: str | None = None, view: str | None = None, step: int | None = None) -> str:
        """The UI's URL at a run (default: the newest; the runs page while there is none), view and step."""
        base = f"http://{HOST}:{self.port}/"
        if run is None and not self.db.run_ids():
            if view is not None or step is not None:
                raise ConfigurationError(f"{self.db.root} holds no runs yet, so it has no view or step to open; "
                                         "call show(db) without them to watch for the first run.")
            return base
        run_id = self.db.resolve_run(run)
        query = {}
        if step is not None:
            query["step"] = self.db.require_step(run_id, step)
        if view is not None:
            if view not in VIEWS:
                raise ConfigurationError(f"Unknown view {view!r}. Available: {', '.join(VIEWS)}.")
            query["view"] = view
        return f"{base}runs/{quote(run_id, safe='')}" + (f"?{urlencode(query)}" if query else "")

    def stop(self) -> None:
        self._server.close()
        self._server.task_dispatcher.shutdown()
        self._thread.join(5)

    def __repr__(self) -> str:
        return f"deepviz UI for {str(self.db.root)!r} at http://{HOST}:{self.port}/"


# One server per db per kernel: show() is called cell after cell, and each call must find the last one.
_SERVERS: dict[str, NotebookServer] = {}
_LOCK = threading.Lock()


def server(db: str | os.PathLike = "stats_db", port: int = 0) -> NotebookServer:
    """The running server of ``db`` in this kernel, started on ``port`` (0: a free one) the first time."""
    key = os.path.realpath(db)
    with _LOCK:
        running = _SERVERS.get(key)
        if running is not None and port not in (0, running.port):
            raise ConfigurationError(
                f"The UI for {str(db)!r} already runs on port {running.port}, not {port}. Call show() with "
                f"port=0 (or {running.port}) to reuse it, or deepviz.notebook.stop({str(db)!r}) first.")
        if running is None:
            running = _SERVERS[key] = NotebookServer(db, port)
        return running


def show(db: str | os.PathLike = "stats_db", run: str | None = None, port: int = 0, view: str | None = None,
         step: int | None = None, height: int = 800) -> NotebookServer:
    """Display the UI of ``db`` inline (an IFrame) at ``run`` (default: the newest), ``view`` and ``step``.

    ``view`` is one of ``VIEWS``; an unknown run or step raises ``NotFoundError`` naming those that exist.
    Returns the server (its ``url(...)`` gives links to other views).
    """
    try:
        from IPython.display import IFrame, display
    except ImportError as exc:
        raise ConfigurationError("deepviz.notebook needs IPython: pip install 'deepviz[notebook]' (or ipython).") from exc
    running = server(db, port)
    display(IFrame(running.url(run, view, step), width="100%", height=height))
    return running


def stop(db: str | os.PathLike = "stats_db") -> None:
    """Stop the UI server of ``db`` in this kernel, if one runs."""
    with _LOCK:
        running = _SERVERS.pop(os.path.realpath(db), None)
    if running is not None:
        running.stop()


__all__ = ["show", "server", "stop", "NotebookServer", "VIEWS"]
