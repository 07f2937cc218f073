"""Argument types of the ``deepviz`` command: each says what it got and what it expects."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535 (0 picks a free one), got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_schedule_options(p: argparse.ArgumentParser) -> None:
    """When ``deepviz train`` (and ``demo``) snapshot: ``--every-n-steps`` and ``--schedule``."""
    p.add_argument("--every-n-steps", type=positive_int, metavar="N",
                   help="snapshot every N optimizer steps instead of after every epoch")
    p.add_argument("--schedule", choices=["log"],
                   help="log: also snapshot at steps 1, 2, 4, 8, ... before the first regular snapshot")
