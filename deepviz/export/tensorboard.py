"""One layer's activations as TensorBoard projector files, one tensor per step.

``export_projector(db, out, layer=..., steps=[...])`` writes into ``out``:

- ``tensors_step<S>.tsv``: the (N, D) activations at step S, one probe image per line;
- ``metadata_step<S>.tsv``: a header line, then per image its probe id, class, the prediction at S,
  whether it is right and the confidence (the prediction changes with the step, so each step has its own);
- ``sprite.png``: the probe thumbnails on TensorBoard's grid (``ceil(sqrt(N))`` columns);
- ``projector_config.pbtxt``: one ``embeddings`` entry per step naming those files.

``tensorboard --logdir OUT`` then shows them in its projector. Everything is read through ``StatsDB``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError
from ..sprite import sprite_cols, sprite_sheet

#: TensorBoard's projector refuses sprite images over 8192 px a side; cells shrink to fit.
MAX_SPRITE_PX = 8192
CONFIG_FILE = "projector_config.pbtxt"
SPRITE_FILE = "sprite.png"
METADATA_COLUMNS = ("probe_id", "class", "prediction", "correct", "confidence")


def export_projector(db, out: str | os.PathLike, *, layer: str, steps: list[int], run: str | None = None) -> Path:
    """Write the projector files of ``layer`` at each of ``steps`` of ``run`` (default: the newest) into ``out``.

    Unknown runs, steps and layers raise ``NotFoundError`` naming the ones that exist. Returns the config file.
    """
    run_id = db.resolve_run(run)
    steps = [db.require_step(run_id, s) for s in steps]
    if not steps:
        raise ConfigurationError(f"Run {run_id!r} has no committed steps to export yet; train it first.")
    tensors = {step: _flat(db.activations(step, layer, run_id)) for step in steps}  # every check before a write
    root = _out_dir(out)
    names = [str(c) for c in db.run_info(run_id)["class_names"]]
    ids = db.probes(run_id)["probe_id"].to_numpy()
    cell = _write_sprite(root, db.thumbnails(run_id), ids)
    entries = []
    for step, values in tensors.items():
        tensor_file, metadata_file = f"tensors_step{step}.tsv", f"metadata_step{step}.tsv"
        np.savetxt(root / tensor_file, values, fmt="%.7g", delimiter="\t")
        (root / metadata_file).write_text(_metadata(db.predictions(step, run_id), names), encoding="utf-8")
        entries.append(_entry(f"{run_id} {layer} step {step}", tensor_file, metadata_file, cell))
    config = root / CONFIG_FILE
    config.write_text("".join(entries), encoding="utf-8")
    return config


def _flat(values: np.ndarray) -> np.ndarray:
    """A layer's activations as (N, D): a conv layer's maps are flattened per image."""
    return np.asarray(values, dtype=np.float32).reshape(len(values), -1)


def _out_dir(out: str | os.PathLike) -> Path:
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigurationError(f"The export folder {str(root)!r} is a file. Pass a new or existing folder.")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _clean(text: str) -> str:
    """A value of a TSV cell: no tab or line break can come in from a db from elsewhere."""
    return " ".join(str(text).split()) or "-"


def _metadata(pred: dict, names: list[str]) -> str:
    def name(i: int) -> str:
        return _clean(names[i]) if 0 <= i < len(names) else str(i)

    lines = ["\t".join(METADATA_COLUMNS)]
    for pid, label, guess, right, conf in zip(pred["probe_id"], pred["label"], pred["pred"], pred["correct"], pred["confidence"]):
        lines.append(f"{int(pid)}\t{name(int(label))}\t{name(int(guess))}\t{'yes' if right else 'no'}\t{float(conf):.4f}")
    return "\n".join(lines) + "\n"


def _write_sprite(root: Path, thumbnails: dict[int, bytes], ids: np.ndarray) -> int:
    """The sprite sheet in probe order; returns its cell size (the thumbnails' own, shrunk to TensorBoard's limit)."""
    from PIL import Image

    pngs = [thumbnails[int(pid)] for pid in ids]
    native = 1
    for png in pngs:
        with Image.open(io.BytesIO(png)) as img:
            native = max(native, *img.size)
    cell = max(1, min(native, MAX_SPRITE_PX // sprite_cols(len(pngs))))
    (root / SPRITE_FILE).write_bytes(sprite_sheet(pngs, cell))
    return cell


def _entry(name: str, tensor_file: str, metadata_file: str, cell: int) -> str:
    return (
        "embeddings {\n"
        f'  tensor_name: "{name}"\n'
        f'  tensor_path: "{tensor_file}"\n'
        f'  metadata_path: "{metadata_file}"\n'
        "  sprite {\n"
        f'    image_path: "{SPRITE_FILE}"\n'
        f"    single_image_dim: {cell}\n"
        f"    single_image_dim: {cell}\n"
        "  }\n"
        "}\n"
    )
