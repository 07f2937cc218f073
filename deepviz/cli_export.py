"""``deepviz export tensorboard DB --run R (--step S | --all-steps) --layer L OUT``: the projector's files."""

from __future__ import annotations

import argparse

from .store import DEFAULT_DB


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run to another tool's format (TensorBoard's projector)",
                       description="Export a run of a stats db to another tool's format.")
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    t = formats.add_parser(
        "tensorboard",
        help="one layer's activations as TensorBoard projector files",
        description="Write one layer's activations at a step (or at every step, one tensor each) as TensorBoard "
        "projector files: tensors and metadata (class, prediction) per step, the probe thumbnails as a sprite, and "
        "projector_config.pbtxt. Then: tensorboard --logdir OUT, and open the Projector tab.",
    )
    t.add_argument("db", metavar="DB", help=f"stats db folder (e.g. {DEFAULT_DB})")
    t.add_argument("out", metavar="OUT", help="folder to write the files into (made if missing)")
    t.add_argument("--run", metavar="R", help="run id or name (default: the newest run)")
    t.add_argument("--layer", metavar="L", required=True, help="captured layer, e.g. fc1 (deepviz sql \"SELECT layers FROM runs\")")
    when = t.add_mutually_exclusive_group(required=True)
    when.add_argument("--step", metavar="S", type=int, help="the step to export")
    when.add_argument("--all-steps", action="store_true", help="every committed step of the run, one tensor per step")
    t.set_defaults(func=cmd_export_tensorboard)


def cmd_export_tensorboard(args: argparse.Namespace) -> int:
    from .export.tensorboard import export_projector
    from .store import StatsDB

    db = StatsDB(args.db)
    run_id = db.resolve_run(args.run)
    steps = db.steps(run_id) if args.all_steps else [args.step]
    config = export_projector(db, args.out, layer=args.layer, steps=steps, run=run_id)
    shown = f"{len(steps)} steps" if args.all_steps else f"step {args.step}"
    print(f"exported {args.layer} of run {run_id} at {shown} to {config.parent}/; view it: tensorboard --logdir {args.out}")
    return 0
