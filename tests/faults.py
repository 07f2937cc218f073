"""Fault injection for tests, through the writer's ``_on_written`` seam (no test parameters in production code).

Temporary copy in the callback branch: the store branch owns this file; its version replaces this one.
"""

from __future__ import annotations

import time

from deepviz.store import StatsWriter


def slow_writes(monkeypatch, delay: float) -> None:
    """Every staged file and committed folder takes ``delay`` seconds more."""
    monkeypatch.setattr(StatsWriter, "_on_written", lambda self, path: time.sleep(delay))


def fail_on(monkeypatch, predicate, exc) -> None:
    """Raise ``exc`` after writing a file or folder for which ``predicate(path)`` is true."""

    def on_written(self, path):
        if predicate(path):
            raise exc

    monkeypatch.setattr(StatsWriter, "_on_written", on_written)
