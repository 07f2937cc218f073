"""The production server: the app on waitress, with settings that hold a few hundred clients.

``deepviz serve`` and the load benchmark both start the server here, so the
settings they measure are the settings people run.
"""

from __future__ import annotations

from flask import Flask

#: Waitress settings (see docs/reliability.md for the load figures they hold).
#: - threads: request workers; the heavy work (projections, clustering, SQL)
#:   runs in the app's own bounded pools. 8, not more: on 2 cores, 16 threads
#:   made the 50-client p99 worse (235-310 ms against 134-199 ms with 8, in one
#:   run each, load average 0.4-1.8), and 200 clients fare alike with both.
#: - connection_limit: open connections before waitress stops accepting;
#:   its default of 100 made 197 of 200 keep-alive clients time out.
#: - backlog: connections the OS queues before accept.
#: - channel_timeout: seconds an idle keep-alive connection is kept.
#: - asyncore_use_poll: poll() rather than select(), which fails past 1,024 sockets.
WAITRESS = {
    "threads": 8,
    "connection_limit": 1000,
    "backlog": 2048,
    "channel_timeout": 60,
    "cleanup_interval": 10,
    "asyncore_use_poll": True,
}


def make_server(app: Flask, host: str, port: int, **overrides):
    """A waitress server for ``app``; bodies over the app's MAX_CONTENT_LENGTH are refused
    (413) from the ``Content-Length`` header, before waitress buffers a byte of them."""
    from waitress import create_server

    settings = WAITRESS | {"max_request_body_size": int(app.config["MAX_CONTENT_LENGTH"])} | overrides
    return create_server(app, host=host, port=port, **settings)
