"""The stats database schema: the one source of truth.

Every table is a directory of Parquet files under the database root, laid out
hive-style (``<table>/run_id=<R>/step=<S>/...``) so that plain DuckDB, pandas
or polars can read it with a glob. Every file also carries its key columns
(``run_id``, ``step``, ``layer``), so a single file is self-describing and a
glob read works with or without hive partitioning.

``stats_db/README.md`` is generated from this module (``python -m
deepviz.schema``) and a test checks that the checked-in copy is current.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

#: Bumped whenever a reader of the previous version would misread new files.
SCHEMA_VERSION = 1

#: Name of the file at the database root that records the schema version.
VERSION_FILE = "deepviz.json"


@dataclass(frozen=True)
class Table:
    name: str
    row: str  # what one row is
    key: tuple[str, ...]
    written_by: str
    layout: str  # path pattern under the database root
    columns: tuple[tuple[str, pa.DataType, str], ...]
    snapshot: bool = False  # part of a step's snapshot: visible only once the step is committed

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(name, dtype) for name, dtype, _ in self.columns])


def _t(*cols):
    return tuple(cols)


RUNS = Table(
    "runs",
    "one training run",
    ("run_id",),
    "StatsCallback, when the run starts (rewritten in place, atomically, when it ends)",
    "runs/run_id=<run_id>/run.parquet",
    _t(
        ("run_id", pa.string(), "unique id, e.g. `20261123-171835-3f2a`"),
        ("name", pa.string(), "the user's name for the run (`--run-name`), or the run id"),
        ("started_at", pa.timestamp("ms", tz="UTC"), "when the run started"),
        ("ended_at", pa.timestamp("ms", tz="UTC"), "when fitting ended; null while training or after a crash"),
        ("schema_version", pa.int32(), "schema version the run was written with"),
        ("deepviz_version", pa.string(), "deepviz version that wrote it"),
        ("model_class", pa.string(), "import path of the LightningModule, `package.module:Class`"),
        ("model_summary", pa.string(), "readable summary of the model's modules"),
        ("n_params", pa.int64(), "number of model parameters"),
        ("hparams", pa.string(), "the module's hyperparameters, as JSON"),
        ("dataset", pa.string(), "dataset name"),
        ("class_names", pa.list_(pa.string()), "class names, indexed by label"),
        ("input_shape", pa.list_(pa.int32()), "shape of one model input, e.g. [3, 32, 32]"),
        ("layers", pa.list_(pa.string()), "captured layers (module names)"),
        ("conv_layers", pa.list_(pa.string()), "Conv2d layers whose weights are stored"),
        ("n_probe", pa.int32(), "number of probe images"),
        ("probe_seed", pa.int64(), "seed of the stratified probe selection"),
        ("world_size", pa.int32(), "number of processes that trained"),
        ("activation_dtype", pa.string(), "`float16` or `float32`"),
    ),
)

PROBES = Table(
    "probes",
    "one probe image of a run",
    ("run_id", "probe_id"),
    "StatsCallback, when the run starts",
    "probes/run_id=<run_id>/probes.parquet",
    _t(
        ("run_id", pa.string(), "run"),
        ("probe_id", pa.int64(), "index of the image in the dataset the user gave as probe; stable across steps"),
        ("label", pa.int32(), "true class"),
        ("class_name", pa.string(), "name of the true class"),
        ("thumbnail", pa.binary(), "PNG thumbnail (at most 64 px a side)"),
        ("input", pa.list_(pa.float32()), "the model input, flattened (reshape with `runs.input_shape`)"),
    ),
)

STEPS = Table(
    "steps",
    "one committed snapshot: the commit marker of a step, written last",
    ("run_id", "step"),
    "StatsCallback, at each snapshot",
    "steps/run_id=<run_id>/step=<step>/step.parquet",
    _t(
        ("run_id", pa.string(), "run"),
        ("step", pa.int64(), "the trainer's global step: the one time key"),
        ("epoch", pa.int32(), "epoch during which the snapshot was taken"),
        ("wall_time", pa.timestamp("ms", tz="UTC"), "when the snapshot was taken"),
        ("trigger", pa.string(), "`start`, `validation`, `epoch`, `train_steps` or `checkpoint`"),
        ("probe_acc", pa.float64(), "accuracy on the probe set"),
        ("probe_loss", pa.float64(), "mean cross-entropy on the probe set"),
        ("n_probe", pa.int32(), "probe rows written for this step"),
        ("layers", pa.list_(pa.string()), "layers written for this step"),
        ("nonfinite_layers", pa.list_(pa.string()), "layers (or `logits`) holding NaN or Inf at this step"),
        ("has_state", pa.bool_(), "a model state dict is stored with this step (`states/`)"),
    ),
    snapshot=True,
)

METRICS = Table(
    "metrics",
    "one logged metric at one step (long format: `train_loss`, `val_acc`, ...)",
    ("run_id", "step", "name"),
    "StatsCallback, at each snapshot and at the end of its epoch",
    "metrics/run_id=<run_id>/step=<step>/<part>.parquet",
    _t(
        ("run_id", pa.string(), "run"),
        ("step", pa.int64(), "step"),
        ("name", pa.string(), "metric name as logged with `self.log`"),
        ("value", pa.float64(), "value"),
    ),
    snapshot=True,
)

PREDICTIONS = Table(
    "predictions",
    "what the network made of one probe image at one step",
    ("run_id", "step", "probe_id"),
    "StatsCallback, at each snapshot",
    "predictions/run_id=<run_id>/step=<step>/predictions.parquet",
    _t(
        ("run_id", pa.string(), "run"),
        ("step", pa.int64(), "step"),
        ("probe_id", pa.int64(), "probe image"),
        ("label", pa.int32(), "true class"),
        ("pred", pa.int32(), "predicted class (argmax)"),
        ("probs", pa.list_(pa.float32()), "softmax probabilities, one per class; sums to 1"),
        ("loss", pa.float32(), "cross-entropy of this image"),
        ("correct", pa.bool_(), "pred = label"),
        ("confidence", pa.float32(), "probability of the predicted class"),
    ),
    snapshot=True,
)

ACTIVATIONS = Table(
    "activations",
    "the output of one captured layer for one probe image at one step (an embedding)",
    ("run_id", "step", "layer", "probe_id"),
    "StatsCallback, at each snapshot",
    "activations/run_id=<run_id>/step=<step>/<layer>.parquet",
    _t(
        ("run_id", pa.string(), "run"),
        ("step", pa.int64(), "step"),
        ("layer", pa.string(), "module name as `named_modules()` reports it"),
        ("probe_id", pa.int64(), "probe image"),
        ("vector", pa.list_(pa.float16()), "flattened layer output; float16 by default (reads as FLOAT[] in DuckDB), float32 on request"),
    ),
    snapshot=True,
)

WEIGHTS = Table(
    "weights",
    "the weight tensor of one Conv2d layer at one step",
    ("run_id", "step", "layer"),
    "StatsCallback, at each snapshot",
    "weights/run_id=<run_id>/step=<step>/weights.parquet",
    _t(
        ("run_id", pa.string(), "run"),
        ("step", pa.int64(), "step"),
        ("layer", pa.string(), "module name"),
        ("shape", pa.list_(pa.int32()), "tensor shape, e.g. [96, 3, 5, 5]"),
        ("values", pa.list_(pa.float32()), "the tensor, flattened in C order"),
    ),
    snapshot=True,
)

CHECKPOINTS = Table(
    "checkpoints",
    "a Lightning checkpoint file saved at a step",
    ("run_id", "step", "path"),
    "StatsCallback, whenever the trainer saves a checkpoint",
    "checkpoints/run_id=<run_id>/step=<step>/<part>.parquet",
    _t(
        ("run_id", pa.string(), "run"),
        ("step", pa.int64(), "global step stored in the checkpoint"),
        ("path", pa.string(), "checkpoint path as the trainer wrote it"),
    ),
)

#: Tables written during training, in the order a snapshot commits them
#: (``steps`` last: it is the commit marker).
CORE_TABLES = (RUNS, PROBES, PREDICTIONS, ACTIVATIONS, WEIGHTS, METRICS, CHECKPOINTS, STEPS)

#: Derived tables: computed from the core tables by analysis code (``deepviz
#: analyze`` or the web UI, lazily) and cached. Each file holds one
#: computation; its key columns are stored in the file and in its path.
DERIVED_TABLES = {
    "projections": Table(
        "projections",
        "the 2-D position of one probe image in one projection of a layer at a step",
        ("run_id", "layer", "method", "seed", "step", "probe_id"),
        "the web UI or `deepviz analyze`, on first request; never recomputed",
        "projections/run_id=<run_id>/<key>/part.parquet",
        _t(
            ("run_id", pa.string(), "run"),
            ("layer", pa.string(), "layer"),
            ("method", pa.string(), "`pca`, `tsne` or `umap`"),
            ("seed", pa.int64(), "random seed"),
            ("step", pa.int64(), "step"),
            ("probe_id", pa.int64(), "probe image"),
            ("x", pa.float32(), "x"),
            ("y", pa.float32(), "y"),
        ),
    ),
    "layer_quality": Table(
        "layer_quality",
        "one measure of how good a layer's representation is at a step",
        ("run_id", "step", "layer", "metric"),
        "`deepviz analyze` or the web UI",
        "layer_quality/run_id=<run_id>/<key>/part.parquet",
        _t(
            ("run_id", pa.string(), "run"),
            ("step", pa.int64(), "step"),
            ("layer", pa.string(), "layer, or `pixels` / `mean_image` for the baselines (stored once, at the run's first step)"),
            ("metric", pa.string(), "`knn_accuracy`, `linear_probe_accuracy`, `silhouette`, `class_purity`, `colour_agreement`, `class_agreement`; `mean_image_accuracy` for the `mean_image` baseline"),
            ("value", pa.float64(), "value"),
        ),
    ),
    "data_map": Table(
        "data_map",
        "the training dynamics of one probe image over a run",
        ("run_id", "probe_id"),
        "`deepviz analyze` or the web UI",
        "data_map/run_id=<run_id>/<key>/part.parquet",
        _t(
            ("run_id", pa.string(), "run"),
            ("probe_id", pa.int64(), "probe image"),
            ("confidence", pa.float64(), "mean probability of the true class over the steps"),
            ("variability", pa.float64(), "standard deviation of that probability"),
            ("correctness", pa.float64(), "fraction of steps where it was classified correctly"),
            ("forgetting_events", pa.int32(), "number of correct -> incorrect transitions"),
            ("n_steps", pa.int64(), "committed steps of the run when the map was computed (a map covering fewer is recomputed)"),
            ("last_step", pa.int64(), "the latest of those steps"),
        ),
    ),
}


def all_tables() -> list[Table]:
    return list(CORE_TABLES) + list(DERIVED_TABLES.values())


def render_markdown() -> str:
    """The schema as Markdown, for ``stats_db/README.md``."""
    out = [
        "# The stats database",
        "",
        "<!-- Generated by `python -m deepviz.schema > stats_db/README.md`; do not edit by hand. -->",
        "",
        "This folder is the default location of the deepviz stats database (its data files are",
        "gitignored). Each table is a folder of Parquet files (zstd-compressed), partitioned",
        "hive-style by run and step. Every file also stores its key columns, so any file, or any",
        "glob of files, can be read on its own with DuckDB, pandas or polars: no deepviz import is",
        "needed.",
        "",
        f"Schema version: **{SCHEMA_VERSION}**, recorded in `{VERSION_FILE}` at the root. deepviz",
        "refuses to read a database written by a newer schema and names both versions.",
        "",
        "## Reading it",
        "",
        "```sh",
        "duckdb -c \"SELECT step, avg(correct::INT) AS acc FROM 'stats_db/predictions/**/*.parquet' GROUP BY step ORDER BY step\"",
        "deepviz sql stats_db \"SELECT * FROM steps ORDER BY step\"",
        "```",
        "",
        "```python",
        "import duckdb",
        "duckdb.sql(\"SELECT layer, count(*) FROM 'stats_db/activations/**/*.parquet' GROUP BY layer\")",
        "",
        "import pandas as pd",
        "# the key columns are stored in the files: tell pyarrow not to add them again from the folder names",
        "steps = pd.read_parquet(\"stats_db/steps\", partitioning=None)",
        "```",
        "",
        "## Snapshots are atomic",
        "",
        "A snapshot is written to `_staging/` and moved into place folder by folder; the `steps`",
        "row is moved last and is the commit marker. `deepviz sql`, `StatsDB` and the web UI only",
        "show snapshot rows whose `(run_id, step)` has a `steps` row. A raw glob can, for a few",
        "microseconds around a commit or after a crash, see a snapshot folder whose `steps` row is",
        "missing; join with `steps` when that matters. Leftovers of a crashed write are removed the",
        "next time that run is opened for writing.",
        "",
        "## Tables",
        "",
    ]
    for table in all_tables():
        kind = "derived" if table.name in DERIVED_TABLES else ("snapshot" if table.snapshot else "core")
        out += [
            f"### `{table.name}` ({kind})",
            "",
            f"- One row: {table.row}.",
            f"- Key: {', '.join(f'`{k}`' for k in table.key)}.",
            f"- Written by: {table.written_by}.",
            f"- Files: `{table.layout}`.",
            "",
            "| column | type | meaning |",
            "|---|---|---|",
        ]
        out += [f"| `{name}` | `{dtype}` | {doc} |" for name, dtype, doc in table.columns]
        out.append("")
    out += [
        "## Other files",
        "",
        "- `states/run_id=<run_id>/step=<step>.pt`: the model's `state_dict` at a step (saved with",
        "  `torch.save`), for models small enough (`save_state` of `StatsCallback`); used by",
        "  `StatsDB.load_model` when no checkpoint was saved at that step.",
        "- `_staging/`: snapshots being written. Never read it.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
