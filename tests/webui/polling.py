"""Following the web UI's background jobs from a test client, as the browser does."""

from __future__ import annotations

import time


def settled(client, url, timeout: float = 120.0, **kw):
    """GET ``url`` until the answer is no longer a 202 (a background job at work); returns that answer."""
    deadline = time.monotonic() + timeout
    while True:
        res = client.get(url, **kw)
        if res.status_code != 202:
            return res
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} still pending after {timeout:g} s")
        time.sleep(0.05)
