"""``deepviz gc`` (a crashed writer's orphans, removed only when asked) and ``deepviz sync`` (a local db pushed to object storage).

Neither ever removes or rewrites a committed step. ``gc`` removes, in every
run, the files of steps without a commit marker (and their claims on object
storage, their staging folders locally) that are older than ``older_than_s``:
a younger one may be a write in progress on another machine. On a local db it
also takes each run's lock and passes over a run a live process is writing.

``sync`` copies a local db's committed steps to object storage with the same
protocol a writer there uses (claim, files in place, marker last), so readers
of the target see only whole steps while it runs. It is resumable and
idempotent: a step whose marker is there is skipped (its later metrics files
are still added), and a step an interrupted sync claimed is taken up again.
Checkpoint files and the paths recorded for them stay local (they name local
files); the state dict of each step goes with it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import schema as S
from ..errors import ConfigurationError, RunLockedError
from .claims import holder_details
from .layout import Layout, as_root, check_is_db, check_version
from .lock import RunLock
from .remote import ObjPath

#: Snapshot tables whose files a step holds, its marker (``steps``) last.
SNAPSHOT_TABLES = [t for t in S.CORE_TABLES if t.snapshot and t is not S.STEPS]
#: Orphans younger than this may be a write in progress: ``gc`` leaves them unless told otherwise.
GC_OLDER_THAN_S = 3600.0


@dataclass
class Report:
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # runs or steps left alone, with why
    copied: list[str] = field(default_factory=list)


def _newest_mtime(path) -> float:
    """The newest modification time of a file or of the files under a folder (0 when there are none)."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    times = []
    for f in files:
        try:
            times.append(f.stat().st_mtime)
        except FileNotFoundError:
            continue
    return max(times, default=0.0)


def _remove(path) -> None:
    if not path.is_dir():
        path.unlink(missing_ok=True)
    elif isinstance(path, ObjPath):
        path.rmtree()
    else:
        shutil.rmtree(path, ignore_errors=True)


def orphans(layout: Layout, run_id: str) -> list:
    """What a run holds of steps never committed: step folders, state files, claims, staging folders."""
    committed = set(layout.committed_steps(run_id))
    found = [d for t in SNAPSHOT_TABLES for s, d in layout.step_dirs(t, run_id).items() if s not in committed]
    found += [f for s, f in layout.state_files(run_id).items() if s not in committed]
    found += [f for s, f in layout.claim_files(run_id).items() if s not in committed]
    if not isinstance(layout.root, ObjPath):
        found += layout.stage_dirs(run_id)
    return found


def _run_ids(layout: Layout) -> list[str]:
    ids = set(layout.run_ids()) | set(layout.step_runs())
    for table in SNAPSHOT_TABLES:
        base = layout.root / table.name
        ids |= {d.name.split("=", 1)[1] for d in base.glob("run_id=*")}
    return sorted(ids)


def gc(path, older_than_s: float = GC_OLDER_THAN_S, dry_run: bool = False) -> Report:
    """Remove the orphans of crashed writers older than ``older_than_s`` seconds (``dry_run``: only list them)."""
    if older_than_s < 0:
        raise ConfigurationError(f"older_than_s must be 0 or more seconds; got {older_than_s!r}.")
    root = as_root(path, ttl_s=0)
    check_is_db(root)
    check_version(root, create=False)
    layout = Layout(root)
    report = Report()
    cutoff = time.time() - older_than_s
    for run_id in _run_ids(layout):
        lock = None if isinstance(root, ObjPath) else RunLock(layout.lock_file(run_id), run_id)
        try:
            if lock is not None:
                lock.acquire()
        except RunLockedError:
            report.skipped.append(f"run {run_id}: being written by a live process")
            continue
        try:
            for orphan in orphans(layout, run_id):
                if _newest_mtime(orphan) > cutoff:
                    report.skipped.append(f"{orphan}: younger than {older_than_s:g} s, maybe a write in progress")
                    continue
                if not dry_run:
                    _remove(orphan)
                report.removed.append(str(orphan))
        finally:
            if lock is not None:
                lock.release()
    return report


# --------------------------------------------------------------------------- sync


def _copy(src: Path, dst: ObjPath, report: Report) -> None:
    dst.write_bytes(src.read_bytes())
    report.copied.append(str(dst))


def _claim_for_sync(claim: ObjPath, source: str) -> None:
    """Claim a step for this sync, or take up the claim an interrupted sync of the same source left."""
    if claim.put_if_absent(json.dumps({**holder_details(), "sync_from": source}).encode()):
        return
    try:
        holder = json.loads(claim.read_bytes())
    except (OSError, ValueError):
        holder = {}
    if holder.get("sync_from") != source:
        raise RunLockedError(
            f"{claim} is claimed by another writer ({holder.get('host', '?')}, pid {holder.get('pid', '?')}): a "
            "training is writing this step of the run on object storage. Sync into another prefix, or wait for it."
        )


def sync(local: str | os.PathLike, target: str) -> Report:
    """Copy the committed steps of the local db ``local`` to the object-store db ``target`` (resumable, idempotent)."""
    from .writer import StatsWriter

    if str(local).startswith("s3://") or not str(target).startswith("s3://"):
        raise ConfigurationError(f"deepviz sync copies a local db to object storage: got {str(local)!r} -> {target!r}. "
                                 "Give a local folder, then an s3://BUCKET/PREFIX.")
    src = Layout(local)
    check_is_db(src.root)
    check_version(src.root, create=False)
    writer = StatsWriter(target)  # checks the target is writable and of our schema version
    dst, report, source = writer.layout, Report(), os.path.realpath(src.root)
    for run_id in src.run_ids():
        for table in (S.RUNS, S.PROBES):  # the run row changes (ended_at): copied each time
            if src.file(table, run_id).exists() and (table is S.RUNS or not dst.file(table, run_id).exists()):
                _copy(src.file(table, run_id), dst.file(table, run_id), report)
        done = set(dst.committed_steps(run_id))
        for step in src.committed_steps(run_id):
            _sync_step(src, dst, run_id, step, step in done, source, report)
    return report


def _sync_step(src: Layout, dst: Layout, run_id: str, step: int, committed: bool, source: str, report: Report) -> None:
    if not committed:
        _claim_for_sync(dst.claim_file(run_id, step), source)
    for table in SNAPSHOT_TABLES:
        there = {f.name for f in dst.step_dir(table, run_id, step).glob("*.parquet")}
        for f in src.step_dir(table, run_id, step).glob("*.parquet"):
            # A committed step's files never change: copy what is missing (metrics added after the commit).
            if not (committed and f.name in there):
                _copy(f, dst.step_dir(table, run_id, step) / f.name, report)
    if committed:
        return
    state = src.state_file(run_id, step)
    if state.exists():
        _copy(state, dst.state_file(run_id, step), report)
    marker = dst.file(S.STEPS, run_id, step)
    if not marker.put_if_absent(src.file(S.STEPS, run_id, step).read_bytes()):
        report.skipped.append(f"{marker}: committed meanwhile by another writer")
        return
    report.copied.append(str(marker))
