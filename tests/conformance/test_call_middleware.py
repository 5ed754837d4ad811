"""Client middleware (``sansio_tcpmsg.calls.intercept``) around a real client of every
binding: order, a changed call, a retry, a stream's items, an answer of its own.

On anyio the middleware are ``async def``; on threads and gevent plain functions: each
is written in both styles below, the same logic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from conftest import BINDING_NAME

from sansio_tcpmsg import RemoteError
from sansio_tcpmsg.calls import Call, intercept

ASYNC_BINDING = BINDING_NAME.startswith("anyio")


def middleware(trail: list[str]) -> tuple[Any, Any]:
    """``outer`` notes each call and doubles a ``send``'s data; ``inner`` retries a
    failed call once and answers ``"cached"`` itself."""
    if ASYNC_BINDING:

        async def outer(call: Call, call_next: Any) -> Any:
            trail.append(f"{call.kind} {call.pattern}")
            if call.kind == "send" and isinstance(call.data, int):
                call = dataclasses.replace(call, data=call.data * 2)
            return await call_next(call)

        async def inner(call: Call, call_next: Any) -> Any:
            if call.data == "cached":
                return "from middleware"
            try:
                return await call_next(call)
            except RemoteError:
                trail.append("retry")
                return await call_next(call)
    else:

        def outer(call: Call, call_next: Any) -> Any:
            trail.append(f"{call.kind} {call.pattern}")
            if call.kind == "send" and isinstance(call.data, int):
                call = dataclasses.replace(call, data=call.data * 2)
            return call_next(call)

        def inner(call: Call, call_next: Any) -> Any:
            if call.data == "cached":
                return "from middleware"
            try:
                return call_next(call)
            except RemoteError:
                trail.append("retry")
                return call_next(call)

    return outer, inner


def test_client_middleware_around_every_call(binding, server) -> None:
    trail: list[str] = []
    with binding.connect(server.port) as c:
        c.raw = intercept(c.raw, *middleware(trail))
        assert c.send("echo", 21) == 42
        assert c.send("echo", "cached") == "from middleware"
        assert list(c.stream("count", {"n": 3})) == [0, 1, 2]
        c.emit("evt", ["call-mw", 0])
        with pytest.raises(RemoteError):
            c.send("boom_text", None)
    assert trail == ["send echo", "send echo", "stream count", "emit evt", "send boom_text", "retry"]


def test_client_middleware_of_the_wrong_kind_is_refused(binding, server) -> None:
    def plain(call: Call, call_next: Any) -> Any:
        return call_next(call)

    async def awaiting(call: Call, call_next: Any) -> Any:
        return await call_next(call)

    with binding.connect(server.port) as c:
        with pytest.raises(TypeError, match="cannot wrap"):
            intercept(c.raw, awaiting if not ASYNC_BINDING else plain)
