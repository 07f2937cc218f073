"""``deepviz gc``, ``deepviz sync`` and the ``--endpoint-url`` option: the commands of a db on object storage.

``--endpoint-url`` comes before the command, as in the AWS command line
(``deepviz --endpoint-url http://minio:9000 serve s3://stats/team``); it sets
``AWS_ENDPOINT_URL``, which both pyarrow.fs and boto3 read, for the whole process.
"""

from __future__ import annotations

import argparse
import math
import os
import sys


class _Endpoint(argparse.Action):
    """Sets ``AWS_ENDPOINT_URL`` when parsed, so every filesystem this process opens uses it."""

    def __call__(self, parser, namespace, value, option_string=None):
        if not value.startswith(("http://", "https://")):
            parser.error(f"--endpoint-url must start with http:// or https://, got {value!r} (e.g. http://localhost:9000)")
        os.environ["AWS_ENDPOINT_URL"] = value
        setattr(namespace, self.dest, value)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got {text!r}")
    return value


def register(parser: argparse.ArgumentParser, sub) -> None:
    """Add ``--endpoint-url`` to the ``deepviz`` parser and the ``gc`` and ``sync`` commands to its subparsers."""
    from .store.maintenance import GC_OLDER_THAN_S

    parser.add_argument("--endpoint-url", metavar="URL", action=_Endpoint,
                        help="S3-compatible endpoint (MinIO, a cloud's S3 API) for s3:// dbs; default: AWS_ENDPOINT_URL "
                        "or AWS itself. Credentials come from the standard AWS variables")
    p = sub.add_parser(
        "gc", help="remove what crashed writers left (never a committed step)",
        description="Remove the files of steps that were never committed (a writer killed mid-snapshot), with their "
        "claims and staging folders, when older than --older-than. Committed steps are never touched; a local run "
        "being written is passed over.",
    )
    p.add_argument("db", metavar="DB", help="stats db folder or s3://BUCKET/PREFIX")
    p.add_argument("--older-than", type=seconds, default=GC_OLDER_THAN_S, metavar="SECONDS",
                   help=f"only orphans older than this: younger ones may be a write in progress (default: {GC_OLDER_THAN_S:g})")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser(
        "sync", help="push a local db's committed steps to object storage",
        description="Copy the committed steps of a local stats db to s3://BUCKET/PREFIX. Resumable and idempotent: run "
        "it again after an interruption or after more training; steps already there are skipped. Readers of the "
        "target see only whole steps meanwhile.",
    )
    p.add_argument("local", metavar="LOCAL", help="local stats db folder")
    p.add_argument("target", metavar="URI", help="s3://BUCKET/PREFIX")
    p.set_defaults(func=cmd_sync)


def cmd_gc(args) -> int:
    from .store.maintenance import gc

    report = gc(args.db, older_than_s=args.older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in report.removed:
        print(f"{verb} {path}")
    for why in report.skipped:
        print(f"left {why}", file=sys.stderr)
    print(f"{verb} {len(report.removed)} orphans of uncommitted steps; committed steps untouched")
    return 0


def cmd_sync(args) -> int:
    from .store.maintenance import sync

    report = sync(args.local, args.target)
    for why in report.skipped:
        print(f"left {why}", file=sys.stderr)
    print(f"synced {args.local} -> {args.target}: {len(report.copied)} objects copied")
    return 0
