"""``deepviz runs``: the runs of a stats db with their hparams, filtered by ``--where KEY=VALUE`` and sorted."""

from __future__ import annotations

import argparse
import sys

from .cli_format import FORMATS, print_frame
from .errors import ConfigurationError
from .store import DEFAULT_DB

COLUMNS = ["run_id", "name", "model", "dataset", "n_probe", "n_steps", "last_step", "final_acc", "started_at"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "runs", help="list the runs in a stats db",
        description="List the runs in a stats db with their hparams (columns hp.<name>), number of steps and the "
        "probe accuracy at the last step. Filter with --where and sort with --sort; then compare two of them in "
        "the web UI (/compare?runs=A,B) or with StatsDB.compare.",
    )
    p.add_argument("db", nargs="?", default=DEFAULT_DB, metavar="DB", help=f"stats db folder (default: ./{DEFAULT_DB})")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", type=_condition,
                   help="keep runs whose column or hparam KEY equals VALUE (lr=0.003, model=SmallNet, hp.lr=0.003); "
                        "repeat to combine")
    p.add_argument("--sort", metavar="COLUMN", help="sort by a column or hparam, ascending (final_acc, lr)")
    p.add_argument("--desc", action="store_true", help="sort descending")
    p.set_defaults(func=cmd_runs)


def _condition(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as lr=0.003 or model=SmallNet, got {text!r}")
    return key, value


def runs_table(db):
    """``db.runs()`` with one ``hp.<name>`` column per hparam any run has."""
    import pandas as pd

    frame = db.runs()
    hparams = [{} if isinstance(err, str) else db.run_info(rid)["hparams"]
               for rid, err in zip(frame["run_id"], frame.get("error", [None] * len(frame)))]
    hp = pd.DataFrame([{f"hp.{k}": v for k, v in h.items()} for h in hparams], index=frame.index)
    return pd.concat([frame, hp.reindex(sorted(hp.columns), axis=1)], axis=1)


def _column(frame, key: str) -> str:
    for name in (key, f"hp.{key}"):
        if name in frame.columns:
            return name
    raise ConfigurationError(f"Unknown column or hparam {key!r}. Available: {', '.join(map(str, frame.columns))}.")


def select(frame, where=(), sort: str | None = None, descending: bool = False):
    """Rows matching every (key, value) (compared as text), sorted by the column or hparam ``sort``."""
    for key, value in where:
        col = _column(frame, key)
        frame = frame[frame[col].map(lambda v: v is not None and str(v) == value)]
    if sort:
        frame = frame.sort_values(_column(frame, sort), ascending=not descending, kind="stable")
    return frame


def cmd_runs(args) -> int:
    from .cli import _open_db

    db = _open_db(args.db)
    frame = runs_table(db)
    if frame.empty:
        print(f"No runs in {args.db} yet. Train one: deepviz train --db {args.db}", file=sys.stderr)
        return 0
    frame = select(frame, args.where, args.sort, args.desc)
    cols = COLUMNS + [c for c in frame.columns if str(c).startswith("hp.")] + (["error"] if "error" in frame else [])
    print_frame(frame[cols], args.format)
    return 0
