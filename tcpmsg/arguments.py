"""Argument types shared by the ``tcpmsg`` commands: each turns one option's text into
its value, or raises ``argparse.ArgumentTypeError`` naming the text (argparse adds the
option)."""

from __future__ import annotations

import argparse
import math

__all__ = ["count", "positive_seconds", "seconds"]


def count(text: str) -> int:
    """A whole number, at least 1 (``--workers``, ``--concurrency``, ``--connections``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (``--grace``, ``--warmup``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < math.inf:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be zero or a positive number of seconds: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0 (``--timeout``, ``--duration``)."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value
