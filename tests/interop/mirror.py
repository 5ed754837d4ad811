"""A Python router that mirrors ``js/server.js`` handler for handler.

``build_router(style, sleep)``:

- ``style="sync"``: plain functions and generators (threads, gevent; ``sleep`` is
  ``time.sleep`` or ``gevent.sleep``);
- ``style="async"``: the waiting handlers (``slow``, ``stream``) are ``async def`` /
  async generators using ``anyio.sleep``; the others stay plain functions (anyio runs
  them in a worker thread), so both kinds are exercised.

Differences from server.js that are inherent to Python: a handler returning ``None``
replies like a NestJS handler returning ``undefined`` (no ``response`` key), so
``metadata`` without metadata gives no value (server.js returns ``null``).

Extra handlers (not in server.js), to observe how patterns travel:
``{"cmd": "raw", "k": 1}`` returns the pattern as received (``ctx.pattern``);
``events.raw`` returns the raw patterns of the ``{"evt": "obj", "k": 1}`` events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sansio_tcpmsg import Router, RpcError

UNICODE_PATTERN = "é中😀\u2028"


def build_router(style: str = "sync", sleep: Callable[[float], Any] | None = None) -> Router:
    router = Router()
    events: list[Any] = []
    raw_event_patterns: list[Any] = []
    lock = threading.Lock()

    @router.message("echo")
    def echo(data: Any) -> Any:
        return data

    @router.message({"cmd": "sum"})
    def add(data: Any) -> Any:
        return sum(data or [])

    @router.message({"a": {"b": 1}, "z": "x"})
    def nested(data: Any) -> Any:
        return "nested"

    @router.message(42)
    def forty_two(data: Any) -> Any:
        return "forty-two"

    @router.message(UNICODE_PATTERN)
    def unicode(data: Any) -> Any:
        return data

    @router.message("stream.empty")
    def stream_empty(data: Any) -> Any:
        return
        yield  # pragma: no cover - makes this a generator

    @router.message("error.object")
    def error_object(data: Any) -> Any:
        raise RpcError({"code": 42, "reason": "bad"})

    @router.message("error.string")
    def error_string(data: Any) -> Any:
        raise RpcError("text error")

    @router.message("error.plain")
    def error_plain(data: Any) -> Any:
        raise RuntimeError("secret detail")

    @router.message("big")
    def big(data: Any) -> Any:
        return "x" * int((data or {}).get("size", 0))

    @router.message("metadata")
    def metadata(data: Any, ctx: Any) -> Any:
        return ctx.metadata

    @router.event("note")
    def note_a(data: Any) -> None:
        with lock:
            events.append(["noteA", data])

    @router.event("note")
    def note_b(data: Any) -> None:
        with lock:
            events.append(["noteB", data])

    @router.event({"evt": "obj", "k": 1})
    def obj_event(data: Any, ctx: Any) -> None:
        with lock:
            events.append(["objEvent", data])
            raw_event_patterns.append(ctx.pattern)

    @router.message("events.get")
    def events_get(data: Any) -> Any:
        with lock:
            return list(events)

    @router.message("events.raw")
    def events_raw(data: Any) -> Any:
        with lock:
            return list(raw_event_patterns)

    @router.message("undefined")
    def returns_undefined(data: Any) -> Any:
        return None

    @router.message("pattern")
    def pattern(data: Any, ctx: Any) -> Any:
        return ctx.route

    @router.message({"cmd": "raw", "k": 1})
    def raw(data: Any, ctx: Any) -> Any:
        return ctx.pattern

    if style == "async":
        import anyio

        @router.message("slow")
        async def slow_async(data: Any) -> Any:
            await anyio.sleep(float((data or {}).get("ms", 0)) / 1000)
            return data

        @router.message("stream")
        async def stream_async(data: Any) -> Any:
            count = int((data or {}).get("count", 0))
            gap = (data or {}).get("gap_ms")
            for i in range(count):
                if gap is not None and i:
                    await anyio.sleep(gap / 1000)
                yield i

    else:
        assert sleep is not None

        @router.message("slow")
        def slow(data: Any) -> Any:
            sleep(float((data or {}).get("ms", 0)) / 1000)
            return data

        @router.message("stream")
        def stream(data: Any) -> Any:
            count = int((data or {}).get("count", 0))
            gap = (data or {}).get("gap_ms")
            for i in range(count):
                if gap is not None and i:
                    sleep(gap / 1000)
                yield i

    return router
