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

import re

#: Bumped whenever a reader of the previous version would misread new files.
#: 2: activation vectors and probe inputs are ``fixed_size_binary`` blobs (they were ``list<float16>`` and
#: ``list<float32>``). A db keeps the version it was created with, and its writers write that format.
SCHEMA_VERSION = 2

#: Name of the file at the database root that records the schema version.
VERSION_FILE = "deepviz.json"


#: Column types, named as Arrow names them (the store maps them to Arrow and
#: DuckDB types): ``string``, ``int32``, ``int64``, ``float16``, ``float32``,
#: ``float64``, ``bool``, ``binary``, ``timestamp[ms, UTC]``, ``list<T>`` and ``fixed_size_binary`` (one row's
#: numbers as raw little-endian bytes: a DuckDB ``BLOB``; its field's metadata names the dtype and width).
#: Kept as names so that importing the schema loads no pyarrow.

#: Files outside the tables, laid out like them.
STATES_LAYOUT = "states/run_id=<run_id>/step=<step>.pt"
#: Per-step copies of checkpoint files, one folder per run (the db's own checkpoints).
CHECKPOINT_FILES_LAYOUT = "checkpoint_files/run_id=<run_id>"
#: Snapshots being written, one folder each: ``<run_id>--<step>--<id>``.
STAGING = "_staging"
#: One lock file per run, held by the process writing that run.
LOCKS_LAYOUT = "_locks/run_id=<run_id>.lock"
#: On object storage (no locks there): a step's claim, created by its one writer before it writes the step.
CLAIMS_LAYOUT = "_claims/run_id=<run_id>/step=<step>.json"

_PLACEHOLDER = re.compile(r"<(\w+)>")


def fill(pattern: str, **values) -> str:
    """A layout pattern with its ``<name>`` placeholders filled in: ``fill("a/run_id=<run_id>", run_id="r")``."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), pattern)


@dataclass(frozen=True)
class Table:
    name: str
    row: str  # what one row is
    key: tuple[str, ...]
    written_by: str
    layout: str  # path pattern under the database root
    columns: tuple[tuple[str, str, str], ...]  # (name, type, meaning)
    snapshot: bool = False  # part of a step's snapshot: visible only once the step is committed

    @property
    def column_names(self) -> list[str]:
        return [name for name, _, _ in self.columns]


def _t(*cols):
    return tuple(cols)


RUNS = Table(
    "runs",
    "one training run",
    ("run_id",),
    "StatsCallback, when the run starts (rewritten in place, atomically, when it ends)",
    "runs/run_id=<run_id>/run.parquet",
    _t(
        ("run_id", "string", "unique id, e.g. `20261123-171835-3f2a`"),
        ("name", "string", "the user's name for the run (`--run-name`), or the run id"),
        ("started_at", "timestamp[ms, UTC]", "when the run started"),
        ("ended_at", "timestamp[ms, UTC]", "when fitting ended; null while training or after a crash"),
        ("schema_version", "int32", "schema version the run was written with"),
        ("deepviz_version", "string", "deepviz version that wrote it"),
        ("model_class", "string", "import path of the LightningModule, `package.module:Class`"),
        ("model_summary", "string", "readable summary of the model's modules"),
        ("n_params", "int64", "number of model parameters"),
        ("hparams", "string", "the module's hyperparameters, as JSON"),
        ("dataset", "string", "dataset name"),
        ("class_names", "list<string>", "class names, indexed by label"),
        ("input_shape", "list<int32>", "shape of one model input, e.g. [3, 32, 32]"),
        ("layers", "list<string>", "captured layers (module names)"),
        ("conv_layers", "list<string>", "Conv2d layers whose weights are stored"),
        ("n_probe", "int32", "number of probe images"),
        ("probe_seed", "int64", "seed of the stratified probe selection"),
        ("world_size", "int32", "number of processes that trained"),
        ("activation_dtype", "string", "`float16` or `float32`"),
    ),
)

PROBES = Table(
    "probes",
    "one probe image of a run",
    ("run_id", "probe_id"),
    "StatsCallback, when the run starts",
    "probes/run_id=<run_id>/probes.parquet",
    _t(
        ("run_id", "string", "run"),
        ("probe_id", "int64", "index of the image in the dataset the user gave as probe; stable across steps"),
        ("label", "int32", "true class"),
        ("class_name", "string", "name of the true class"),
        ("thumbnail", "binary", "PNG thumbnail (at most 64 px a side)"),
        ("input", "fixed_size_binary", "the model input, flattened (reshape with `runs.input_shape`), stored losslessly: "
                                       "`uint8` codes when every value is `code / 255` or `code` (field metadata "
                                       "`deepviz.divisor`), else `<f2` when float16 holds it exactly, else `<f4`; "
                                       "`list<float32>` in schema 1"),
    ),
)

STEPS = Table(
    "steps",
    "one committed snapshot: the commit marker of a step, written last",
    ("run_id", "step"),
    "StatsCallback, at each snapshot",
    "steps/run_id=<run_id>/step=<step>/step.parquet",
    _t(
        ("run_id", "string", "run"),
        ("step", "int64", "the trainer's global step: the one time key"),
        ("epoch", "int32", "epoch during which the snapshot was taken"),
        ("wall_time", "timestamp[ms, UTC]", "when the snapshot was taken"),
        ("trigger", "string", "`start`, `validation`, `epoch`, `train_steps` or `checkpoint` from StatsCallback; "
                              "`snapshot` (or the caller's own word) from `Recorder.snapshot`"),
        ("probe_acc", "float64", "accuracy on the probe set"),
        ("probe_loss", "float64", "mean cross-entropy on the probe set"),
        ("n_probe", "int32", "probe rows written for this step"),
        ("layers", "list<string>", "layers written for this step"),
        ("nonfinite_layers", "list<string>", "layers (or `logits`) holding NaN or Inf at this step"),
        ("has_state", "bool", "a model state dict is stored with this step (`states/`)"),
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
        ("run_id", "string", "run"),
        ("step", "int64", "step"),
        ("name", "string", "metric name as logged with `self.log`"),
        ("value", "float64", "value"),
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
        ("run_id", "string", "run"),
        ("step", "int64", "step"),
        ("probe_id", "int64", "probe image"),
        ("label", "int32", "true class"),
        ("pred", "int32", "predicted class (argmax)"),
        ("probs", "list<float32>", "softmax probabilities, one per class; sums to 1"),
        ("loss", "float32", "cross-entropy of this image"),
        ("correct", "bool", "pred = label"),
        ("confidence", "float32", "probability of the predicted class"),
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
        ("run_id", "string", "run"),
        ("step", "int64", "step"),
        ("layer", "string", "module name as `named_modules()` reports it, or `<conv>.gap`: that conv's output averaged over its positions"),
        ("probe_id", "int64", "probe image"),
        ("vector", "fixed_size_binary", "flattened layer output as little-endian `<f2` (float16, the default) or `<f4` "
                                        "(`runs.activation_dtype`); DuckDB reads a BLOB of `octet_length(vector) / 2` "
                                        "float16 values; `list<float16>` in schema 1"),
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
        ("run_id", "string", "run"),
        ("step", "int64", "step"),
        ("layer", "string", "module name"),
        ("shape", "list<int32>", "tensor shape, e.g. [96, 3, 5, 5]"),
        ("values", "list<float32>", "the tensor, flattened in C order"),
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
        ("run_id", "string", "run"),
        ("step", "int64", "global step stored in the checkpoint"),
        ("path", "string", "checkpoint path as the trainer wrote it"),
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
            ("run_id", "string", "run"),
            ("layer", "string", "layer"),
            ("method", "string", "`pca`, `tsne` or `umap`"),
            ("seed", "int64", "random seed"),
            ("step", "int64", "step"),
            ("probe_id", "int64", "probe image"),
            ("x", "float32", "x"),
            ("y", "float32", "y"),
        ),
    ),
    "layer_quality": Table(
        "layer_quality",
        "one measure of how good a layer's representation is at a step",
        ("run_id", "step", "layer", "metric"),
        "`deepviz analyze` or the web UI",
        "layer_quality/run_id=<run_id>/<key>/part.parquet",
        _t(
            ("run_id", "string", "run"),
            ("step", "int64", "step"),
            ("layer", "string", "layer, or `pixels` / `mean_image` for the baselines (stored once, at the run's first step)"),
            ("metric", "string", "`knn_accuracy`, `linear_probe_accuracy`, `silhouette`, `class_purity`, `colour_agreement`, `class_agreement`; `mean_image_accuracy` for the `mean_image` baseline"),
            ("value", "float64", "value"),
        ),
    ),
    "data_map": Table(
        "data_map",
        "the training dynamics of one probe image over a run",
        ("run_id", "probe_id"),
        "`deepviz analyze` or the web UI",
        "data_map/run_id=<run_id>/<key>/part.parquet",
        _t(
            ("run_id", "string", "run"),
            ("probe_id", "int64", "probe image"),
            ("confidence", "float64", "mean probability of the true class over the steps"),
            ("variability", "float64", "standard deviation of that probability"),
            ("correctness", "float64", "fraction of steps where it was classified correctly"),
            ("forgetting_events", "int32", "number of correct -> incorrect transitions"),
            ("n_steps", "int64", "committed steps of the run when the map was computed (a map covering fewer is recomputed)"),
            ("last_step", "int64", "the latest of those steps"),
        ),
    ),
}


def all_tables() -> list[Table]:
    return list(CORE_TABLES) + list(DERIVED_TABLES.values())


def _table_markdown(table: Table) -> list[str]:
    kind = "derived" if table.name in DERIVED_TABLES else ("snapshot" if table.snapshot else "core")
    out = [
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
    return out + [f"| `{name}` | `{dtype}` | {doc} |" for name, dtype, doc in table.columns] + [""]


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
    ]
    out += _vectors_section()
    out += [
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
        out += _table_markdown(table)
    return "\n".join(out + _other_files())


def _vectors_section() -> list[str]:
    return [
        "## Vectors are blobs",
        "",
        "Since schema version 2 an activation vector (and a probe input) is one `fixed_size_binary`",
        "cell per row: the row's numbers as raw little-endian bytes. DuckDB reads it as a `BLOB`; its",
        "field's metadata names the numpy dtype (`deepviz.dtype`: `<f2`, `<f4` or `|u1`) and the number of",
        "values (`deepviz.width`), so one file is enough to decode it. Read the rows into one array:",
        "",
        "```python",
        "import numpy as np, pyarrow.parquet as pq",
        "t = pq.read_table(\"stats_db/activations/run_id=R/step=0/fc1.parquet\")",
        "meta = t.schema.field(\"vector\").metadata  # {b'deepviz.dtype': b'<f2', b'deepviz.width': b'64'}",
        "x = np.frombuffer(t.column(\"vector\").combine_chunks().buffers()[1], meta[b\"deepviz.dtype\"].decode())",
        "x = x.reshape(len(t), int(meta[b\"deepviz.width\"]))",
        "```",
        "",
        "or from SQL, e.g. `duckdb.sql(\"SELECT probe_id, vector FROM ...\").df()` and",
        "`np.frombuffer(b\"\".join(df.vector), \"<f2\").reshape(len(df), -1)`; `octet_length(vector) / 2` is the",
        "width of a float16 layer. A db created with schema version 1 keeps `list<float16>` vectors",
        "(`FLOAT[]` in DuckDB), and deepviz reads both.",
        "",
    ]


def _other_files() -> list[str]:
    return [
        "## Other files",
        "",
        f"- `{STATES_LAYOUT}`: the model's `state_dict` at a step (saved with",
        "  `torch.save`), for models small enough (`save_state` of `StatsCallback`); used by",
        "  `StatsDB.load_model` when no checkpoint was saved at that step.",
        f"- `{STAGING}/`: snapshots being written. Never read it.",
        f"- `{LOCKS_LAYOUT}`: held by the process writing that run, so a second writer",
        "  of the same run stops at once and names the holder. A lock is released when its process exits.",
        f"- `{CLAIMS_LAYOUT}`: on object storage, where there are no locks, the one",
        "  writer of a step creates this first (a conditional put); a second writer of that step stops.",
        "  See `docs/object-storage.md`.",
        "",
    ]


if __name__ == "__main__":
    print(render_markdown(), end="")
