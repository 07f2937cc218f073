"""The deepviz web UI: a Flask app that reads the stats db only through ``deepviz.StatsDB``.

``create_app(db_path)`` is the app factory; ``deepviz serve`` runs it on waitress.
One blueprint per area: ``pages`` (HTML), ``runs`` (runs and steps), and one
per panel family; every JSON error has the shape
``{"ok": false, "error": "...", "status": N}`` (see ``webui.errors``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask

from deepviz import StatsDB
from deepviz.derived import Derived

from . import errors, security


def create_app(db_path: str | os.PathLike = "stats_db", *, token: str | None = None, test_config: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        DB_PATH=str(Path(db_path)),
        TOKEN=token,
        SECRET_KEY=secrets.token_hex(32),  # only signs nothing sensitive; fresh per process
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,  # uploads (image search) are small
        SQL_MAX_ROWS=1000,
        SQL_TIMEOUT_S=5.0,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    # One StatsDB per app: it caches immutable things (probes, snapshots) and is thread-safe for reads.
    app.extensions["deepviz_db"] = StatsDB(app.config["DB_PATH"])
    app.extensions["deepviz_derived"] = Derived(app.extensions["deepviz_db"])  # its caches, per db

    errors.register(app)
    security.register(app)

    from . import pages, runs, snapshots

    app.register_blueprint(pages.bp)
    app.register_blueprint(runs.bp)
    app.register_blueprint(snapshots.bp)
    for name in ("embedding", "sql", "inspect", "analysis"):
        # Panel blueprints are optional modules: each area lives in its own file.
        try:
            module = __import__(f"webui.{name}", fromlist=["bp"])
        except ModuleNotFoundError as exc:
            if exc.name != f"webui.{name}":
                raise
            continue
        app.register_blueprint(module.bp)
    return app


__all__ = ["create_app"]
