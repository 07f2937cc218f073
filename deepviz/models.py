"""The weights of a run at a step (temporary stand-in on branch h-webui for the "models" helper's module).

Only the interface the web UI uses: ``load_weights(db, step, run) -> StepModel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class StepModel:
    model: Any
    source: str  # "state" or "checkpoint"
    step: int
    path: str | None
    note: str | None = None

    def describe(self) -> dict:
        return {"source": self.source, "step": self.step, "path": self.path, "note": self.note}


def load_weights(db, step: int, run: str | None = None) -> StepModel:
    run_id = db.resolve_run(run)
    step = db.require_step(run_id, step)
    model = db.load_model(step, run_id)
    ckpt = db.checkpoints(run_id).get(step)
    if ckpt and Path(ckpt).exists():
        return StepModel(model, "checkpoint", step, str(ckpt))
    state = db.state_path(step, run_id)
    return StepModel(model, "state", step, None if state is None else str(state))


def load_model(db, step: int, run: str | None = None):
    return load_weights(db, step, run).model
