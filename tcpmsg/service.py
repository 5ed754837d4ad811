"""The example service the demo runs: ``tcpmsg serve tcpmsg.service:example_router``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from sansio_tcpmsg import Router, RpcError

from .output import dumps, say

__all__ = ["event_seen", "example_router"]

#: Set when the ``log`` event's handler has run (the demo waits for it).
event_seen = threading.Event()


def example_router() -> Router:
    """The demo's service: ``{"cmd":"sum"}``, ``echo``, ``count`` (streams),
    ``fail`` (an application error) and the ``log`` event.

    Serve it with ``tcpmsg serve tcpmsg.service:example_router``.
    """
    router = Router()

    @router.message({"cmd": "sum"})
    def add(numbers: list[float]) -> float:
        return sum(numbers)

    @router.message("echo")
    def echo(data: Any, ctx: Any) -> Any:
        return data

    @router.message("count")
    def count(n: int) -> Iterator[int]:
        for i in range(int(n)):
            yield i

    @router.message("fail")
    def fail(data: Any) -> None:
        raise RpcError({"status": "error", "message": f"cannot do {data!r}", "code": 422})

    @router.event("log")
    def log_event(data: Any, ctx: Any) -> None:
        say(f"    [server] event handler for 'log' ran with {dumps(data)}")
        event_seen.set()

    return router
