"""The deepviz web UI: a Flask app that reads the stats db only through ``deepviz.StatsDB``.

``create_app(db_path)`` is the app factory; ``deepviz serve`` runs it on
waitress (``webui.server``). One blueprint per area; every JSON error has the
shape ``{"ok": false, "error": "...", "status": N}`` (see ``webui.errors``).
What the app keeps in memory (caches, the background job runner, the SQL
pool) lives on ``app.extensions["deepviz"]`` (see ``webui.state``).
"""

from __future__ import annotations

import os
import secrets

from flask import Flask

from deepviz import StatsDB
from deepviz.cache import check_bytes
from deepviz.derived import Derived

from . import analysis, clusters, compare, confusion, embedding, errors, filters, inspect, pages, runs, search, security, snapshots, sql, trajectory
from . import tiles
from .state import AppState

DEFAULTS = {
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,  # uploads (image search) are small
    "ALLOWED_HOSTS": (),  # names beyond localhost/127.0.0.1/[::1] the server answers for
    "TRUSTED_CHECKPOINT_DIRS": (),  # folders outside the db whose checkpoints the db may name (deepviz serve --trust-checkpoints)
    "SQL_MAX_ROWS": 1000,
    "SQL_TIMEOUT_S": 5.0,  # the whole request: queueing, the query and the conversion
    "SQL_MEMORY_LIMIT": "512MB",
    "SQL_THREADS": 1,
    "SQL_WORKERS": 2,  # queries at once; more wait in the queue
    "SQL_QUEUE": 4,  # queries waiting; more are refused with 429
    "JOB_WORKERS": 2,  # background jobs (projections, quality) at once
    "JOB_QUEUE": 8,  # background jobs waiting; more are refused with 429
    "COMPUTE_WORKERS": 2,  # computations a request waits for (clustering) at once
    "COMPUTE_QUEUE": 8,  # such computations waiting; more are refused with 429
    "COMPUTE_WAIT_S": 60.0,  # how long a request waits for its computation before a 503 "ask again"
    "PROJECTION_MAX_SEEDS": 4,  # distinct seeds computing at once, per run, layer and method
    "MODEL_CACHE_SIZE": 4,
    "RESULT_CACHE_SIZE": 1024,
    "LAYOUT_CACHE_SIZE": 512,
    "HEAVY_CACHE_SIZE": 16,
    # Byte caps of the caches (deepviz.cache.Cache): together 1 GiB, so that with the ~400 MB of a started
    # server a 100,000-image run stays within 1.5 GB.
    "DB_CACHE_BYTES": 512 * 2**20,  # the StatsDB's reads: a 100,000 x 512 layer is 205 MB a step
    "MODEL_CACHE_BYTES": 128 * 2**20,
    "RESULT_CACHE_BYTES": 64 * 2**20,
    "LAYOUT_CACHE_BYTES": 64 * 2**20,  # a 100,000-point layout is 0.8 MB
    "HEAVY_CACHE_BYTES": 256 * 2**20,  # search indexes, sprite sheets (127 MB at 100,000 images)
    "INSPECT_TORCH_THREADS": 1,  # torch intra-op threads for the Inspect tab; 0 leaves torch's setting
    "JSON_SORT_KEYS": False,
    "FRAME_ANCESTORS": (),  # origins whose pages may frame the UI (deepviz.notebook); none by default
}


def create_app(db_path: str | os.PathLike = "stats_db", *, token: str | None = None, allowed_hosts=(),
               trusted_checkpoints=(), frame_ancestors=(), test_config: dict | None = None) -> Flask:
    """The app over the stats db at ``db_path``; ``token`` locks every route, ``allowed_hosts``
    adds names to the Host allow-list (``webui.security``), ``trusted_checkpoints`` folders
    outside the db whose checkpoints its runs may name (``deepviz.models``), ``frame_ancestors``
    origins whose pages may frame it (a notebook's)."""
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(DEFAULTS, DB_PATH=os.fspath(db_path), TOKEN=token, SECRET_KEY=secrets.token_hex(32))
    app.config["ALLOWED_HOSTS"] = tuple(allowed_hosts)
    app.config["TRUSTED_CHECKPOINT_DIRS"] = tuple(map(str, trusted_checkpoints))
    app.config["FRAME_ANCESTORS"] = tuple(frame_ancestors)
    if test_config:
        app.config.update(test_config)
    # One StatsDB per app: it caches immutable things (probes, snapshots) and is thread-safe for reads.
    app.extensions["deepviz_db"] = StatsDB(app.config["DB_PATH"], cache_bytes=check_bytes(app.config["DB_CACHE_BYTES"], "DB_CACHE_BYTES"))
    app.extensions["deepviz_derived"] = Derived(app.extensions["deepviz_db"])  # its caches, per db
    app.extensions["deepviz"] = AppState.from_config(app.config)

    errors.register(app)
    security.register(app)
    for module in (pages, runs, compare, snapshots, confusion, trajectory, filters, embedding, clusters, sql, inspect, search, analysis):
        app.register_blueprint(module.bp)
    app.register_blueprint(tiles.bp)  # the mosaic's thumbnail tiles
    return app


__all__ = ["create_app"]
