"""The ``deepviz`` command: train, demo, serve, runs, sql, analyze, export.

Every subcommand imports what it needs when it runs, so ``deepviz --help``,
``deepviz runs`` and ``deepviz sql`` start without importing torch, Lightning
or Flask. (The CLI is the one place in ``deepviz`` that reaches into
``trainers`` and ``webui``; it does so lazily, inside the commands.)

Exit status: 0 on success, 1 for a deepviz error (printed as
``deepviz: error: <message>``, with no traceback), 2 for bad arguments
(argparse), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import secrets
import socket
import sys
import time
from pathlib import Path

from . import __version__, cli_export, cli_storage
from .cli_args import add_schedule_options, port_number, positive_float, positive_int
from . import cli_runs
from .cli_format import FORMATS, print_frame
from .errors import ConfigurationError, DeepvizError
from .store import DEFAULT_DB, prepare_db

PROG = "deepviz"

# Listed here rather than imported, so that building the parser does not
# import torch (deepviz.datasets) or Lightning (trainers.models);
# tests/test_cli.py checks that they match DATASETS and MODELS.
DATASET_NAMES = ("digits", "cifar10", "mnist", "fashion-mnist", "stl10", "folder")
MODEL_NAMES = ("small", "fc64", "alexnet-small", "mnist-cnn", "resnet18")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
DEFAULT_MAX_ROWS = 1000
DEMO_EPOCHS = 4


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Training-time monitoring for image classifiers: snapshots of a probe set in a "
        "Parquet stats db, replayed in a web UI and queryable in SQL.",
        epilog="Run `deepviz COMMAND --help` for the options of a command. Start with `deepviz demo`.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_training_commands(sub)

    p = sub.add_parser(
        "serve",
        help="serve the web UI over a stats db",
        description="Serve the web UI with waitress. It binds to loopback unless --host says otherwise; on any "
        "other address a token is required, and one is generated (and printed in the URL) if not given.",
    )
    _add_db_argument(p)
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST}, this machine only)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--token", metavar="T", help="access token the UI asks for (generated when binding beyond loopback)")
    p.add_argument("--allowed-host", metavar="NAME", action="append", default=[],
                   help="another name the server answers for in the Host header (repeatable); it always answers for "
                   "the bound address, localhost, 127.0.0.1 and [::1], and refuses others (DNS rebinding)")
    p.add_argument("--trust-checkpoints", metavar="DIR", action="append", default=[],
                   help="a folder outside the db whose checkpoints the db may name (repeatable); by default only the "
                   "db's own checkpoint_files/ are read, as a db from elsewhere may name any file")
    p.set_defaults(func=cmd_serve)

    _add_query_commands(sub)
    cli_storage.register(parser, sub)
    return parser


def _add_training_commands(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a reference model with the StatsCallback",
        description="Train a reference model on a dataset, snapshotting a probe set of test images into the "
        "stats db after every epoch. Checkpoints (best by val_acc, and last) go to "
        "<db>/../checkpoints/<run_id>/ unless --ckpt-dir is given; the db keeps its own per-step hard link "
        "(or copy) of each one saved at a snapshot, since last.ckpt is overwritten at every epoch.",
    )
    p.add_argument("--dataset", choices=DATASET_NAMES, default="digits", help="dataset (default: digits, no download needed)")
    p.add_argument("--data-dir", metavar="D", help="folder holding the dataset files (default: ./data); for 'folder', "
                   "a folder of class sub-folders of images")
    p.add_argument("--download", action="store_true", help="download the dataset into --data-dir if missing")
    p.add_argument("--model", choices=MODEL_NAMES, help="reference model (default: small for digits, alexnet-small for "
                   "cifar10/stl10, mnist-cnn for mnist/fashion-mnist, fc64 for folder)")
    p.add_argument("--epochs", type=positive_int, default=5, metavar="N", help="training epochs (default: 5)")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "demo",
        help="train the default model on digits, then serve the web UI",
        description=f"Train the default model on scikit-learn's digits (no download) into the stats db, "
        f"then serve the web UI at http://{DEFAULT_HOST}:{DEFAULT_PORT}/.",
    )
    p.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS, metavar="N", help=f"training epochs (default: {DEMO_EPOCHS})")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port of the web UI (default: {DEFAULT_PORT})")
    p.add_argument("--no-serve", action="store_true", help="train only; do not start the web UI")
    _add_train_options(p)
    p.set_defaults(func=cmd_demo)


def _add_query_commands(sub) -> None:
    cli_runs.add_parser(sub)

    p = sub.add_parser(
        "sql",
        help="run a SQL query over a stats db",
        description="Run a DuckDB SQL query over the stats db. Each table (runs, steps, probes, predictions, "
        "activations, weights, metrics, ...) is a view of the same name. The query is NOT sandboxed: like the "
        "duckdb shell, it can read and write any file you can (COPY, read_csv, ATTACH). That is meant for your "
        "own machine; for a query from someone else, add --sandbox.",
        epilog='Example: deepviz sql "SELECT step, avg(correct::INT) AS acc FROM predictions GROUP BY step ORDER BY step"',
    )
    _add_db_argument(p)
    p.add_argument("query", metavar="QUERY", help="the SQL query (quote it)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--max-rows", type=positive_int, default=DEFAULT_MAX_ROWS, metavar="N",
                   help=f"fetch and print at most N rows (default: {DEFAULT_MAX_ROWS})")
    p.add_argument("--sandbox", action="store_true",
                   help="apply the web console's rules: one read-only SELECT over the db's own tables, "
                   "no other files, with its time and memory limits")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser(
        "analyze",
        help="compute the derived tables (layer quality, data map, ...) of a run",
        description="Compute the derived analysis tables of a run and store them in the stats db.",
    )
    _add_db_argument(p)
    p.add_argument("--run", metavar="R", help="run id or name (default: the newest run)")
    p.set_defaults(func=cmd_analyze)

    cli_export.add_parser(sub)


def _add_db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("db", nargs="?", default=DEFAULT_DB, metavar="DB", help=f"stats db folder (default: ./{DEFAULT_DB})")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"stats db folder (default: ./{DEFAULT_DB})")
    p.add_argument("--run-name", metavar="R", help="a readable name for the run (default: its run id)")
    p.add_argument("--probe-size", type=positive_int, default=1000, metavar="K",
                   help="probe images, class-stratified from the test split (default: 1000)")
    p.add_argument("--batch-size", type=positive_int, metavar="B", help="training batch size (default: per dataset)")
    p.add_argument("--lr", type=positive_float, help="Adam learning rate (default: the model's own)")
    p.add_argument("--seed", type=int, default=0, help="random seed for weights and shuffling; the probe set stays the same (default: 0)")
    p.add_argument("--image-size", type=positive_int, metavar="S", help="resize images to S x S (default: native size; 32 for folder)")
    p.add_argument("--max-train", type=positive_int, metavar="N", help="train on a class-stratified subset of N images")
    p.add_argument("--ckpt-dir", metavar="D", help="folder for checkpoints (default: <db>/../checkpoints)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar and model summary")
    add_schedule_options(p)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run the ``deepviz`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)  # a bare `deepviz`: show what it can do, not one terse line
        return 2
    args = parser.parse_args(argv)  # exits with status 2 and a usage message on bad arguments
    try:
        return int(args.func(args) or 0)
    except DeepvizError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `deepviz sql ... | head`: the reader left; exit quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        # A full disk, a permission, a vanished file: the system's own words, without a traceback.
        print(f"{PROG}: error: {exc}. Free space, fix permissions or the path, then run the command again.",
              file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- commands


def _train_kwargs(args) -> dict:
    return {
        "db": args.db,
        "run_name": args.run_name,
        "probe_size": args.probe_size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "image_size": args.image_size,
        "max_train": args.max_train,
        "ckpt_dir": args.ckpt_dir,
        "progress": not args.no_progress,
        "every_n_train_steps": args.every_n_steps, "schedule": args.schedule,
    }


def _run_training(**kwargs) -> str:
    from trainers.train import checkpoint_root, final_metrics, train

    start = time.perf_counter()
    run_id = train(**kwargs)
    seconds = time.perf_counter() - start
    metrics = final_metrics(kwargs["db"], run_id)
    val = metrics.get("val_acc")
    summary = f"val_acc={val:.4f}" if val is not None else "val_acc=n/a"
    if "val_loss" in metrics:
        summary += f" val_loss={metrics['val_loss']:.4f}"
    print(f"run_id={run_id} {summary} epochs={kwargs['epochs']} wall_s={seconds:.1f}")
    print(f"stats db: {kwargs['db']}   checkpoints: {checkpoint_root(kwargs['db'], kwargs.get('ckpt_dir')) / run_id}")
    return run_id


def cmd_train(args) -> int:
    _run_training(dataset=args.dataset, data_dir=args.data_dir, download=args.download, model=args.model,
                  epochs=args.epochs, **_train_kwargs(args))
    print(f"Browse it: deepviz serve {args.db}")
    return 0


def cmd_demo(args) -> int:
    create_app = None
    if not args.no_serve:  # fail before training, not after
        create_app = _import_webui()
        _check_port_free(DEFAULT_HOST, args.port)
    kwargs = _train_kwargs(args)
    kwargs["run_name"] = kwargs["run_name"] or "demo"
    _run_training(dataset="digits", epochs=args.epochs, **kwargs)
    if args.no_serve:
        print(f"Browse it: deepviz serve {args.db}")
        return 0
    return _serve(create_app, args.db, DEFAULT_HOST, args.port, token=None)


def cmd_serve(args) -> int:
    if prepare_db(args.db):  # before the first run: the UI waits for it
        print(f"{args.db} holds no runs yet: each run shows in the UI as soon as it starts.", file=sys.stderr)
    _open_db(args.db)
    return _serve(_import_webui(), args.db, args.host, args.port, args.token, args.allowed_host, args.trust_checkpoints)


def cmd_sql(args) -> int:
    if not Path(args.db).exists() and Path(args.query).is_dir() and re.match(r"\s*(select|with|from|describe|show)\b", args.db, re.I):
        raise ConfigurationError(
            f"The db folder comes before the query: deepviz sql {args.query} \"{args.db}\" (you gave the query first)."
        )
    db = _open_db(args.db)
    if args.sandbox:
        frame, truncated = _sandboxed_frame(db, args.query, args.max_rows)
    else:
        # One row more than shown tells whether there were more, without fetching them.
        frame = db.sql(args.query, max_rows=args.max_rows + 1)
        truncated = len(frame) > args.max_rows
    if truncated:
        print(f"(more than {args.max_rows} rows; showing the first {args.max_rows}: raise --max-rows to see more)",
              file=sys.stderr)
        frame = frame.head(args.max_rows)
    print_frame(frame, args.format)
    return 0


def _sandboxed_frame(db, query: str, max_rows: int):
    import pandas as pd

    result = db.sandboxed_sql(query, max_rows=max_rows)
    frame = pd.DataFrame(result["rows"], columns=[c["name"] for c in result["columns"]])
    return frame, result["truncated"]


def cmd_analyze(args) -> int:
    db = _open_db(args.db)
    run_id = db.resolve_run(args.run)
    from deepviz.derived import compute_all

    start = time.perf_counter()
    result = compute_all(db, run_id)
    seconds = time.perf_counter() - start
    if isinstance(result, dict) and result:
        for table, rows in result.items():
            print(f"{table}: {rows}")
    print(f"analyzed run {run_id} in {seconds:.1f} s; derived tables are in {args.db}")
    return 0


# --------------------------------------------------------------------------- helpers


def _open_db(path: str):
    """Open a stats db for reading; StatsDB refuses a missing path, a file or a folder that is not one."""
    from .store import StatsDB

    return StatsDB(path)


def _import_webui():
    # Imported only by the commands that serve, so `deepviz sql` and `runs` start fast.
    from webui import create_app

    return create_app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot listen on {host}:{port} ({exc.strerror or exc}). Pick another port with --port "
                "(--port 0 picks a free one), or stop what is using it."
            ) from exc


def _serve(create_app, db: str, host: str, port: int, token: str | None, allowed_hosts=(), trusted=()) -> int:
    from webui.server import make_server

    if token is not None and len(token) < 8:
        raise ConfigurationError(
            f"--token must be at least 8 characters (got {len(token)}); leave it out to have one generated."
        )
    if token is None and not _is_loopback(host):
        # Anyone who can reach the address could read the db: require a secret.
        token = secrets.token_urlsafe(16)
    # The Host header must name this server: the bound address (the machine's name on a wildcard one).
    names = [host, *([socket.gethostname(), socket.getfqdn()] if host in ("0.0.0.0", "::") else []), *allowed_hosts]
    app = create_app(db, token=token, allowed_hosts=names, trusted_checkpoints=trusted)
    try:
        server = make_server(app, host, port)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}). Pick another port with --port, "
            "or stop what is using it."
        ) from exc
    shown = host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    elif ":" in host:
        shown = f"[{host}]"
    url = f"http://{shown}:{server.effective_port}/" + (f"?token={token}" if token else "")
    print(f"deepviz UI for {db} at {url}  (Ctrl-C to stop)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        print("deepviz: server stopped", file=sys.stderr)
    finally:
        server.close()
    return 0
