"""A run's model with the weights it had at one step, read from a stats db treated as untrusted input.

Weights are per step by construction. The state dict stored with a snapshot
*is* that step's weights, so it comes first. A checkpoint is used only when
the file itself says it holds that step (its ``global_step``): ``last.ckpt``
and a best-k file are overwritten as training goes on, so the path a db
recorded against a past step may hold a later one.

A db may come from elsewhere, so nothing in it is run:

- the run's ``model_class`` must name a subclass of ``torch.nn.Module``
  (a LightningModule is one) before it is called; a module not imported yet
  is imported only once its source is seen to define a class of that name,
  and only from where Python already imports modules (nothing in the db
  changes ``sys.path``);
- the hparams passed to it must be JSON values;
- every ``torch.load`` uses ``weights_only=True``; Lightning's
  ``load_from_checkpoint`` is not used;
- a checkpoint path outside the db's own checkpoint folder (see
  :func:`own_checkpoint_dir`) is refused unless the caller trusts its folder.

docs/reliability.md ("Threat model") says what this protects against and what it does not.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pickle
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import ConfigurationError, NotFoundError, UntrustedDataError

if TYPE_CHECKING:
    from .store import StatsDB

__all__ = ["StepModel", "check_hparams", "load_model", "load_weights", "own_checkpoint_dir", "resolve_model_class",
           "steps_with_weights"]

#: What a damaged or foreign file makes ``torch.load`` raise.
_UNREADABLE = (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError)
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", re.ASCII)
#: A run id that can be one folder name (no separator, no leading dot: never "." or "..").
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class StepModel:
    """A rebuilt model (eval mode) and where its weights came from."""

    model: nn.Module
    source: str  # "state" (stored with the snapshot) or "checkpoint"
    step: int  # the step the weights are from
    path: str | None
    note: str | None = None  # e.g. why the stored state dict was not used

    def describe(self) -> dict:
        """Where the weights came from, for a JSON response."""
        return {"source": self.source, "step": self.step, "path": self.path, "note": self.note}


def load_weights(db: StatsDB, step: int, run: str | None = None, *,
                 allow_checkpoints_from: Iterable[str | os.PathLike] = ()) -> StepModel:
    """The run's model with the weights it had at ``step``, in eval mode.

    ``allow_checkpoints_from``: folders (or files) outside the db's own
    checkpoint folder whose checkpoints may be read.
    """
    run_id = db.resolve_run(run)
    step = db.require_step(run_id, step)
    trust = _Trust.of(db, run_id, allow_checkpoints_from)
    state, source, path, note = _weights_at(db, run_id, step, trust)
    info = db.run_info(run_id)
    cls = resolve_model_class(info["model_class"], run_id)
    model = _build(cls, check_hparams(info["hparams"], run_id), info["model_class"], state)
    return StepModel(model, source, step, path, note)


def load_model(db: StatsDB, step: int, run: str | None = None) -> nn.Module:
    """:func:`load_weights`'s model alone."""
    return load_weights(db, step, run).model


def steps_with_weights(db: StatsDB, run: str | None = None, *,
                       allow_checkpoints_from: Iterable[str | os.PathLike] = ()) -> list[int]:
    """Steps with a readable stored state dict, or a trusted checkpoint that holds that step."""
    run_id = db.resolve_run(run)
    trust = _Trust.of(db, run_id, allow_checkpoints_from)
    return [s for s in db.steps(run_id)
            if _stored_state(db.state_path(s, run_id))[0] is not None
            or any(_checkpoint_state(path, s, trust)[0] is not None for path in _checkpoint_candidates(db, run_id, s))]


def own_checkpoint_dir(db: StatsDB, run_id: str) -> Path | None:
    """The db's own folder of the run's per-step checkpoints (``StatsDB.checkpoint_dir``), symlinks resolved.

    The callback keeps each checkpoint saved at a snapshot step there as
    ``step=<step>.ckpt``. None, so that no folder is trusted by default, for a
    run id that is not a plain folder name or a folder that a link leads out
    of the db.
    """
    if not _FOLDER_NAME.match(run_id):
        return None
    own = Path(db.checkpoint_dir(run_id)).absolute().resolve()
    return own if own.is_relative_to(Path(db.root).absolute().resolve()) else None


def _checkpoint_candidates(db: StatsDB, run_id: str, step: int) -> list[str]:
    """The recorded checkpoint of a step, then the db's own ``step=<step>.ckpt`` (a copied db keeps its files,
    not the absolute paths it recorded)."""
    recorded = db.checkpoints(run_id).get(step)
    own = db.checkpoint_dir(run_id) / f"step={step}.ckpt"
    candidates = [recorded] if recorded is not None else []
    if os.path.isfile(own) and str(own.absolute()) != recorded:
        candidates.append(str(own.absolute()))
    return candidates


# --------------------------------------------------------------------------- which weights


@dataclass(frozen=True)
class _Trust:
    own: Path | None
    allowed: tuple[Path, ...]

    @classmethod
    def of(cls, db: StatsDB, run_id: str, allowed: Iterable[str | os.PathLike]) -> _Trust:
        return cls(own_checkpoint_dir(db, run_id), tuple(Path(p).absolute().resolve() for p in allowed))

    def refusal(self, recorded: str) -> str | None:
        """Why the checkpoint path a db names may not be read, or None when it may."""
        if not isinstance(recorded, str) or not os.path.isabs(recorded):
            return f"the checkpoint path {recorded!r} is not absolute, so it cannot be placed in a folder"
        try:
            real = Path(recorded).resolve()  # symlinks and ".." resolved before the check
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
            return f"the checkpoint path {recorded!r} cannot be resolved ({exc})"
        if any(real.is_relative_to(d) for d in (self.own, *self.allowed) if d is not None):
            return None
        own = self.own or "(none: the run id is not a folder name, or its folder leads out of the db)"
        return (f"the checkpoint {recorded} is outside the db's checkpoint folder {own}; to read it anyway, "
                "pass its folder in allow_checkpoints_from")


def _weights_at(db: StatsDB, run_id: str, step: int, trust: _Trust) -> tuple[dict, str, str | None, str | None]:
    """(state dict, source, path, note) of the step's weights, or NotFoundError saying why there are none."""
    state_file = db.state_path(step, run_id)
    state, why = _stored_state(state_file)
    if state is not None:
        return state, "state", str(state_file), None
    reasons = [why]
    candidates = _checkpoint_candidates(db, run_id, step)
    if not candidates:
        reasons.append("no checkpoint was recorded at that step")
    for path in candidates:
        state, refusal = _checkpoint_state(path, step, trust)
        if state is not None:
            note = f"{reasons[0][0].upper()}{reasons[0][1:]}; used the checkpoint, which holds step {step}." if state_file else None
            return state, "checkpoint", path, note
        reasons.append(refusal)
    listed = ", ".join(map(str, steps_with_weights(db, run_id, allow_checkpoints_from=trust.allowed))) or "(none)"
    raise NotFoundError(f"Step {step} of run {run_id!r} has no weights: {' and '.join(reasons)}. "
                        f"Steps with weights: {listed}.")


def _stored_state(path: Path | None) -> tuple[dict | None, str | None]:
    """(the state dict stored with a snapshot, None), else (None, why not). Memory-mapped: tensors are read
    only when used, so checking that a state can be loaded is cheap."""
    if path is None:
        return None, "no state dict was stored with it"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except _UNREADABLE as exc:
        return None, f"the stored state dict {path} cannot be read ({exc})"
    if not isinstance(state, dict):
        return None, f"the stored state dict {path} holds a {type(state).__name__}, not a state dict"
    return state, None


def _checkpoint_state(recorded: str, step: int, trust: _Trust) -> tuple[dict | None, str | None]:
    """(the checkpoint's state dict, None) when the db may read it and it holds ``step``, else (None, why not)."""
    refusal = trust.refusal(recorded)
    if refusal is not None:
        return None, refusal
    if not os.path.isfile(recorded):
        return None, f"the checkpoint {recorded} does not exist"
    try:
        ckpt = torch.load(recorded, map_location="cpu", weights_only=True, mmap=True)
    except _UNREADABLE as exc:
        return None, f"the checkpoint {recorded} cannot be read ({exc})"
    held = ckpt.get("global_step") if isinstance(ckpt, dict) else None
    if type(held) is not int or held != step:
        return None, f"the checkpoint {recorded} holds step {held}, not {step}"
    if not isinstance(ckpt.get("state_dict"), dict):
        return None, f"the checkpoint {recorded} has no state_dict"
    return ckpt["state_dict"], None


# --------------------------------------------------------------------------- what to build


def resolve_model_class(spec: Any, run_id: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass named by a run's ``"module:Qualname"``; nothing else is returned or called."""
    module_name, _, qualname = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not (_DOTTED.match(module_name) and _DOTTED.match(qualname)):
        raise UntrustedDataError(
            f"Run {run_id!r} names the model class {spec!r}; expected 'package.module:Class', "
            "e.g. 'trainers.models:SmallNet'. Fix the run's model_class in the db."
        )
    if module_name not in sys.modules:
        _require_class_in_source(module_name, qualname, spec, run_id)
    obj = _lookup(module_name, qualname, spec, run_id)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        kind = "a class" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise UntrustedDataError(
            f"Run {run_id!r} names {spec!r} as its model class, but that is {kind}, not a subclass of "
            "torch.nn.Module: deepviz refuses to call it. A stats db is data; fix its model_class to the "
            "run's LightningModule (e.g. 'trainers.models:SmallNet'), or open a db you trust."
        )
    return obj


def _require_class_in_source(module_name: str, qualname: str, spec: str, run_id: str) -> None:
    """Importing a module runs it: first read its source for a class of that name (parent packages do get imported)."""
    try:
        found = importlib.util.find_spec(module_name)
        source = found.loader.get_source(module_name) if found and hasattr(found.loader, "get_source") else None
    except (ImportError, ValueError) as exc:
        raise _not_importable(spec, run_id, exc) from exc
    if found is None:
        raise _not_importable(spec, run_id, f"no module named {module_name!r}")
    if source is None:
        return  # compiled or built in: nothing to read; the subclass check after import still applies
    name = qualname.rsplit(".", 1)[-1]
    try:
        declared = any(isinstance(node, ast.ClassDef) and node.name == name for node in ast.walk(ast.parse(source)))
    except SyntaxError as exc:
        raise _not_importable(spec, run_id, exc) from exc
    if not declared:
        raise UntrustedDataError(
            f"Run {run_id!r} names {spec!r} as its model class, but module {module_name} defines no class "
            f"{name}: deepviz does not import it. Fix the run's model_class in the db, or open a db you trust."
        )


def _lookup(module_name: str, qualname: str, spec: str, run_id: str) -> Any:
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise _not_importable(spec, run_id, exc) from exc
    return obj


def _not_importable(spec: str, run_id: str, why) -> NotFoundError:
    return NotFoundError(
        f"Cannot import the model class {spec!r} of run {run_id!r} ({why}). "
        "Make it importable (install its package, or run from the folder that holds it)."
    )


def check_hparams(hparams: Any, run_id: str) -> dict:
    """``hparams`` itself when it is a JSON object of JSON values (what json.loads gives), else UntrustedDataError."""
    if not isinstance(hparams, dict):
        raise _bad_hparams(run_id, f"got {type(hparams).__name__}")
    todo: list[tuple[str, Any]] = [("", hparams)]
    while todo:  # no recursion: a deeply nested value cannot exhaust the stack
        where, value = todo.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _bad_hparams(run_id, f"got a key {key!r}" + (f" at {where}" if where else ""))
                todo.append((f"{where}.{key}" if where else key, item))
        elif isinstance(value, list):
            todo.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
        elif not isinstance(value, _JSON_SCALARS):
            raise UntrustedDataError(
                f"The hparams of run {run_id!r} hold a {type(value).__name__} at {where}: only JSON values (strings, "
                "numbers, booleans, null, lists and objects) are passed to the model class."
            )
    return hparams


def _bad_hparams(run_id: str, got: str) -> UntrustedDataError:
    return UntrustedDataError(
        f"The hparams of run {run_id!r} must be a JSON object (a dict of names to values), {got}. "
        "Fix the run's hparams in the db."
    )


def _build(cls: type[nn.Module], hparams: dict, spec: str, state: dict) -> nn.Module:
    try:
        model = cls(**hparams)
    except TypeError as exc:
        raise ConfigurationError(
            f"Cannot rebuild {spec} from its stored hparams {hparams} ({exc}). "
            "Call self.save_hyperparameters() in the module's __init__."
        ) from exc
    model.load_state_dict(state)
    return model.eval()
