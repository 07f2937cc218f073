"""Models of a run rebuilt at a step (placeholder: today's code moved out of the store; the models helper's version replaces it)."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigurationError, NotFoundError


def load_model(db, step: int, run: str | None = None):
    """Rebuild the run's LightningModule with the weights it had at ``step``, in eval mode.

    Uses the checkpoint saved at that step when there is one, else the
    state dict stored with the snapshot.
    """
    import importlib

    import torch

    run_id = db.resolve_run(run)
    step = db.require_step(run_id, step)
    info = db.run_info(run_id)
    module_name, _, qualname = info["model_class"].partition(":")
    try:
        cls = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as exc:
        raise NotFoundError(
            f"Cannot import the model class {info['model_class']!r} of run {run_id!r} ({exc}). "
            "Make it importable (install its package, or run from the folder that holds it)."
        ) from exc
    ckpt = db.checkpoints(run_id).get(step)
    state_file = db.state_path(step, run_id)
    if ckpt and Path(ckpt).exists():
        model = cls.load_from_checkpoint(ckpt, map_location="cpu")
    elif state_file is not None:
        try:
            model = cls(**info["hparams"])
        except TypeError as exc:
            raise ConfigurationError(
                f"Cannot rebuild {info['model_class']} from its stored hparams {info['hparams']} ({exc}). "
                "Call self.save_hyperparameters() in the module's __init__."
            ) from exc
        model.load_state_dict(torch.load(state_file, map_location="cpu", weights_only=True))
    else:
        raise NotFoundError(
            f"Step {step} of run {run_id!r} has no weights: no checkpoint was saved at that step and no state "
            "dict was stored with it. Steps with weights: "
            f"{', '.join(map(str, steps_with_weights(db, run_id))) or '(none)'}."
        )
    return model.eval()


def steps_with_weights(db, run: str | None = None) -> list[int]:
    run_id = db.resolve_run(run)
    ckpts = {s for s, p in db.checkpoints(run_id).items() if Path(p).exists()}
    return [s for s in db.steps(run_id) if s in ckpts or db.state_path(s, run_id) is not None]
