"""Where everything lives in a db folder, derived from ``schema.py``; the version check; the containment guard."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import schema as S
from ..errors import ConfigurationError, CorruptDataError, NotFoundError, SchemaVersionError
from .remote import LISTING_TTL_S, ObjPath, is_uri, open_root

DEFAULT_DB = "stats_db"
STEP_DIR = re.compile(r"^step=(\d+)$")
RUN_DIR = re.compile(r"^run_id=(.+)$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: A temporary file older than this is a crash leftover, not a write in progress.
STALE_TMP_S = 600.0


def check_layer_name(name: str) -> str:
    if not SAFE_NAME.match(name):
        raise ConfigurationError(
            f"Layer name {name!r} cannot be used as a file name. Allowed: letters, digits, '_', '.', '-'."
        )
    return name


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def as_root(path: str | os.PathLike | ObjPath, ttl_s: float = LISTING_TTL_S) -> Path | ObjPath:
    """A db's root: a local ``Path``, or an ``ObjPath`` for ``s3://bucket/prefix`` (listings cached for ``ttl_s``)."""
    if isinstance(path, ObjPath):
        return path
    return open_root(path, ttl_s) if is_uri(path) else Path(path)


def real_root(root: Path | ObjPath) -> str:
    """What the containment guard compares with: the resolved folder (object stores have no links)."""
    return str(root) if isinstance(root, ObjPath) else os.path.realpath(root)


class Layout:
    """The paths of one db folder (or object-store prefix). Each comes from a table's ``layout`` pattern in ``schema.py``."""

    def __init__(self, root: str | os.PathLike | ObjPath):
        self.root = as_root(root)

    def _path(self, pattern: str, n_parts: int | None = None, **values: Any) -> Path:
        parts = pattern.split("/")[:n_parts]
        return self.root.joinpath(*(S.fill(part, **values) for part in parts))

    def run_dir(self, table: S.Table, run_id: str) -> Path:
        """``<table>/run_id=<run_id>``: every file of the run in that table."""
        return self._path(table.layout, 2, run_id=run_id)

    def step_dir(self, table: S.Table, run_id: str, step: int) -> Path:
        """``<table>/run_id=<run_id>/step=<step>``: one step of a per-step table."""
        return self._path(table.layout, 3, run_id=run_id, step=int(step))

    def file(self, table: S.Table, run_id: str, step: int | None = None, part: str = "") -> Path:
        """The table's file of a run (and step); ``part`` fills ``<part>`` or ``<layer>``."""
        return self._path(table.layout, None, run_id=run_id, step=step, part=part, layer=part)

    def state_file(self, run_id: str, step: int) -> Path:
        return self._path(S.STATES_LAYOUT, None, run_id=run_id, step=int(step))

    def states_dir(self, run_id: str) -> Path:
        return self._path(S.STATES_LAYOUT, 2, run_id=run_id)

    def checkpoint_dir(self, run_id: str) -> Path:
        """The db's own folder of per-step checkpoint files of a run."""
        return self._path(S.CHECKPOINT_FILES_LAYOUT, None, run_id=run_id)

    def staging(self) -> Path:
        return self.root / S.STAGING

    def stage_dir(self, run_id: str, step: int) -> Path:
        """A new, unique staging folder for one snapshot of a run."""
        return self.staging() / f"{run_id}--{int(step)}--{uuid.uuid4().hex[:8]}"

    def stage_dirs(self, run_id: str) -> list[Path]:
        return list(self.staging().glob(f"{run_id}--*"))

    def claim_file(self, run_id: str, step: int) -> Path:
        return self._path(S.CLAIMS_LAYOUT, None, run_id=run_id, step=int(step))

    def claim_files(self, run_id: str) -> dict[int, Path]:
        """The claims of a run's steps on object storage, by step (none in a local db)."""
        found = ((STEP_DIR.match(f.stem), f) for f in self._path(S.CLAIMS_LAYOUT, 2, run_id=run_id).glob("step=*.json"))
        return {int(m.group(1)): f for m, f in found if m}

    def lock_file(self, run_id: str) -> Path:
        return self._path(S.LOCKS_LAYOUT, None, run_id=run_id)

    def derived_file(self, table: str, run_id: str, key: Mapping[str, Any]) -> Path:
        if table not in S.DERIVED_TABLES:
            raise ConfigurationError(f"Unknown derived table {table!r}. Available: {', '.join(S.DERIVED_TABLES)}.")
        parts = []
        for k, v in key.items():
            v = str(v)
            if not SAFE_NAME.match(k) or not SAFE_NAME.match(v):
                raise ConfigurationError(f"Derived-table key {k}={v!r} must be letters, digits, '_', '.', '-'.")
            parts.append(f"{k}={v}")
        # No key fills ``<key>`` with nothing, and pathlib drops the empty folder level.
        return self.root / S.fill(S.DERIVED_TABLES[table].layout, run_id=run_id, key="/".join(parts))

    # -- listings

    def run_ids(self) -> list[str]:
        """Run ids that have a run row, sorted (oldest first: run ids start with their start time)."""
        out = []
        for d in (self.root / S.RUNS.name).glob("run_id=*"):
            m = RUN_DIR.match(d.name)
            if m and (d / Path(S.RUNS.layout).name).exists():
                out.append(m.group(1))
        return sorted(out)

    def step_runs(self) -> list[str]:
        """Run ids that have a folder in ``steps`` (committed steps or not)."""
        base = self.root / S.STEPS.name
        return [m.group(1) for d in (base.iterdir() if base.is_dir() else ()) if (m := RUN_DIR.match(d.name))]

    def committed_steps(self, run_id: str) -> list[int]:
        """Steps of a run whose commit marker (its ``steps`` row) is in place."""
        marker = Path(S.STEPS.layout).name
        steps = []
        for f in self.run_dir(S.STEPS, run_id).glob(f"step=*/{marker}"):  # one listing, on an object store too
            m = STEP_DIR.match(f.parent.name)
            if m:
                steps.append(int(m.group(1)))
        return sorted(steps)

    def step_dirs(self, table: S.Table, run_id: str) -> dict[int, Path]:
        """The step folders of a run in a per-step table, by step."""
        found = ((STEP_DIR.match(d.name), d) for d in self.run_dir(table, run_id).glob("step=*"))
        return {int(m.group(1)): d for m, d in found if m}

    def state_files(self, run_id: str) -> dict[int, Path]:
        found = ((STEP_DIR.match(f.stem), f) for f in self.states_dir(run_id).glob("step=*.pt"))
        return {int(m.group(1)): f for m, f in found if m}


def mtime(path: Path) -> int:
    """A file's mtime in ns, 0 when it is missing: part of a cache key that changes when the file does."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def remove_stale_temps(candidates: Iterable[Path], older_than_s: float = STALE_TMP_S) -> list[Path]:
    """Remove the temporary files (``folder.rglob(".*.tmp")``) that killed writes left.

    Only those older than ``older_than_s``: a younger one may be a write in progress.
    """
    removed = []
    cutoff = time.time() - older_than_s
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_mtime <= cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue  # its writer renamed or removed it meanwhile
    return removed


# --------------------------------------------------------------------------- version


def check_version(root: Path, create: bool) -> int:
    """The db's schema version; a newer one than this deepviz's is refused. ``create``: record ours in a new db."""
    vfile = root / S.VERSION_FILE
    if vfile.exists():
        try:
            version = int(json.loads(vfile.read_text())["schema_version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"{vfile}: expected JSON with an integer 'schema_version' ({exc}).") from exc
        if version > S.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The stats db {str(root)!r} was written with schema version {version}; this deepviz reads "
                f"schema versions up to {S.SCHEMA_VERSION}. Upgrade deepviz (pip install -U deepviz)."
            )
        return version
    if create:
        tmp = root / f".{S.VERSION_FILE}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps({"schema_version": S.SCHEMA_VERSION}) + "\n")
        tmp.replace(vfile)
    return S.SCHEMA_VERSION


def check_is_db(root: Path) -> None:
    """Refuse a path that is not a stats db folder: missing, a file, or a folder with no version file and no runs."""
    given = str(root)
    if not root.is_dir():
        what = "is a file, not a stats db folder" if root.exists() else "does not exist"
        raise NotFoundError(
            f"No stats db at {given!r}: it {what}. Train with StatsCallback({given!r}, ...) "
            "or `deepviz demo` first, or pass the folder that holds it."
        )
    if not (root / S.VERSION_FILE).exists() and not (root / S.RUNS.name).is_dir():
        raise NotFoundError(
            f"{given!r} is a folder but not a stats db (it has no {S.VERSION_FILE} and no {S.RUNS.name}/). "
            "Pass the folder given to StatsCallback or --db; to start a new stats db, train into a new folder "
            "(`deepviz train --db NEW_FOLDER`)."
        )


# --------------------------------------------------------------------------- containment


def inside(root: str, path: Path) -> bool:
    """Does ``path``, with every symlink followed, stay inside the folder ``root`` (itself resolved)?"""
    if isinstance(path, ObjPath):
        return True  # no links on an object store, and every key is built below the db's prefix
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def refuse_outside(root: str, shown_root: Path, path: Path) -> Path:
    """``path`` if it stays inside the db once symlinks are followed; ``CorruptDataError`` otherwise.

    A db folder may be shared or unpacked from an archive: a symlink in it
    must not make the UI or the API serve a file from elsewhere.
    """
    if not inside(root, path):
        raise CorruptDataError(
            f"Refused to read {path}: it is a link that leads outside the db folder {str(shown_root)!r}. "
            "Replace the link with the file itself; other steps stay readable."
        )
    return path
