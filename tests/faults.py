"""Fault injection for tests, through the writer's one seam: ``StatsWriter._on_written(path)``.

The writer calls that no-op method after each staged file of a snapshot and
after each folder the commit moves into place (``steps`` last). These helpers
replace it for one test with ``monkeypatch`` (undone when the test ends):

- ``watch_writes(monkeypatch, fn)``: call ``fn(path)`` at each of those points;
  whatever ``fn`` raises, the writer sees.
- ``slow_writes(monkeypatch, delay)``: sleep ``delay`` seconds at each point,
  to widen the windows in which a race or a kill can land.
- ``fail_on(monkeypatch, predicate, exc)``: raise ``exc`` at the first point
  whose path ``predicate(path)`` accepts, and at none after it. Returns the
  list of paths it failed on (empty until it fires).

For a writer in a subprocess (a training to SIGKILL, a second process racing
the first), ``install(fn)`` does the same without monkeypatch; the subprocess
runs ``from tests.faults import install`` with the repo on ``PYTHONPATH``.

Paths: a staged file is ``<db>/_staging/<run>--<step>--<id>/<table>/<file>``
(or ``.../state.pt``); a committed folder is ``<db>/<table>/run_id=<run>/step=<step>``.
``staged_at(step)`` and ``committed_at(step)`` build predicates from them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from deepviz.store import StatsWriter

Hook = Callable[[Path], None]


def _method(fn: Hook):
    def _on_written(self, path):
        fn(Path(path))

    return _on_written


def install(fn: Hook) -> None:
    """Make every ``StatsWriter`` in this process call ``fn(path)`` at each write point (for subprocesses)."""
    StatsWriter._on_written = _method(fn)


def watch_writes(monkeypatch, fn: Hook) -> None:
    monkeypatch.setattr(StatsWriter, "_on_written", _method(fn))


def slow_writes(monkeypatch, delay: float) -> None:
    watch_writes(monkeypatch, lambda path: time.sleep(delay))


def fail_on(monkeypatch, predicate: Callable[[Path], bool], exc: BaseException) -> list[Path]:
    fired: list[Path] = []

    def hook(path: Path) -> None:
        if not fired and predicate(path):
            fired.append(path)
            raise exc

    watch_writes(monkeypatch, hook)
    return fired


def staged_at(step: int) -> Callable[[Path], bool]:
    """A predicate: ``path`` is a staged file of a snapshot of ``step``."""
    return lambda path: f"--{int(step)}--" in str(path)


def committed_at(step: int) -> Callable[[Path], bool]:
    """A predicate: ``path`` is a folder of ``step`` moved into place by the commit."""
    return lambda path: path.name == f"step={int(step)}"
