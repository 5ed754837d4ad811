"""A service whose every call burns about 1 ms of pure-Python CPU (bench/workers.py)."""

from __future__ import annotations

import os
import time
from typing import Any

from sansio_tcpmsg import Router

router = Router()


def _spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def _calibrate(target: float = 0.001) -> int:
    """Iterations of ``_spin`` that take about ``target`` seconds on this machine (the
    fastest of a few timings: other processes only ever make one slower)."""
    n = 50_000
    best = min(_timed(n) for _ in range(7))
    return max(1, int(n * target / best))


def _timed(n: int) -> float:
    start = time.perf_counter()
    _spin(n)
    return time.perf_counter() - start


ITERATIONS = int(os.environ.get("TCPMSG_SPIN", "0")) or _calibrate()


@router.message("echo")
def echo(data: Any) -> Any:
    _spin(ITERATIONS)  # holds the GIL: one process serves at most ~1,000 of these a second
    return data
