"""The router the CLI tests serve with ``tcpmsg serve``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from sansio_tcpmsg import Router, RpcError

router = Router()


@router.message({"cmd": "sum"})
def add(numbers: list[int]) -> int:
    return sum(numbers)


@router.message("echo")
def echo(data: Any, ctx: Any) -> Any:
    return {"data": data, "metadata": ctx.metadata}


@router.message("count")
def count(n: int) -> Iterator[int]:
    for i in range(n):
        yield i
        time.sleep(0.05)


@router.message("fail")
def fail(data: Any) -> None:
    raise RpcError({"status": "error", "message": "nope", "data": data})


@router.message("slow")
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "late"


@router.event("note")
def note(data: Any) -> None:
    path = os.environ.get("TCPMSG_TEST_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(repr(data) + "\n")


@router.message("pid")
def pid(data: Any) -> int:
    return os.getpid()
