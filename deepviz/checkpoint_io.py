"""Where the trainer's checkpoints go, learnt through Lightning's ``CheckpointIO`` interface.

A callback's ``on_save_checkpoint`` sees the checkpoint before it is written and
never its path. The strategy writes every checkpoint through its
``checkpoint_io`` plug-in, so :class:`RecordingCheckpointIO` stands in front of
that plug-in for the length of a fit (installed and removed through the
strategy's public ``checkpoint_io`` property), saves exactly as it does, and
then reports the checkpoint and its path.

A checkpoint file is not evidence of the step it was saved at: Lightning
rewrites ``last.ckpt`` at every save and prunes best-k files.
:func:`stage_step_file` therefore keeps the bytes of the save under a per-step
name in the db's own checkpoint folder, where nothing else writes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable


class RecordingCheckpointIO:
    """A ``CheckpointIO`` that delegates to ``inner`` and reports each save to ``on_saved``.

    ``on_saved(checkpoint, path)`` runs after the file is written. Attributes
    other than the four ``CheckpointIO`` methods are looked up on ``inner``,
    so wrapping, say, an ``AsyncCheckpointIO`` changes nothing else.
    """

    def __init__(self, inner, on_saved: Callable[[dict, Any], None]):
        self.inner = inner
        self.on_saved: Callable[[dict, Any], None] | None = on_saved

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
        if self.on_saved is not None:
            self.on_saved(checkpoint, path)

    def load_checkpoint(self, *args, **kwargs):
        return self.inner.load_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, *args, **kwargs) -> None:
        self.inner.remove_checkpoint(*args, **kwargs)

    def teardown(self) -> None:
        self.inner.teardown()

    def __getattr__(self, name: str):
        # Only reached for names this class lacks; "inner" itself is always set in __init__.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def install(strategy, on_saved: Callable[[dict, Any], None]) -> RecordingCheckpointIO:
    """Put a RecordingCheckpointIO in front of ``strategy``'s checkpoint plug-in and return it."""
    recorder = RecordingCheckpointIO(strategy.checkpoint_io, on_saved)
    strategy.checkpoint_io = recorder
    return recorder


def uninstall(strategy, recorder: RecordingCheckpointIO) -> None:
    """Give ``strategy`` back the plug-in ``recorder`` wrapped.

    When something wrapped the recorder in turn, the chain is left as it is
    and the recorder only stops reporting: removing it would remove that too.
    """
    recorder.on_saved = None
    if strategy.checkpoint_io is recorder:
        strategy.checkpoint_io = recorder.inner


def stage_step_file(src: str | os.PathLike, dest: Path) -> Path:
    """A file beside ``dest``, under a temporary name, holding the bytes ``src`` holds now, whatever later
    happens to ``src``; :func:`publish_step_file` gives it ``dest``'s name.

    A hard link costs no space while ``src`` exists; Lightning replaces a
    checkpoint by writing a new file and renaming it over the old one, so the
    link keeps the old bytes. Where the file system cannot link (another
    device, no hard links), the file is copied.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def publish_step_file(staged: Path, dest: Path) -> Path:
    """Give the file :func:`stage_step_file` made its name ``dest``: it appears whole or not at all."""
    try:
        os.replace(staged, dest)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return dest
