"""The conformance suite's handlers, written once, adapted to every binding.

Handlers are plain Python functions. A handler that must wait does ``yield from
sleep(seconds)``; a streaming handler also yields its values. The binding facade
(``tcpmsg_facade.Binding.adapt``) turns each handler into the binding's own style:

- threads / gevent: a plain function (or plain generator) that calls ``time.sleep`` /
  ``gevent.sleep``;
- anyio: an ``async def`` (or async generator) that ``await anyio.sleep``, so the async
  handler path is what runs on anyio.

``echo_sync`` and ``count_sync`` are registered untouched on every binding, so anyio's
"plain function runs in a worker thread" and "plain generator streams" paths run too.

The same router is served in-process by the tests and out of process by
``serve_router.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sansio_tcpmsg import Router, RpcError


@dataclass(frozen=True)
class Sleep:
    seconds: float


def sleep(seconds: float):
    """``yield from sleep(s)`` inside a handler: wait ``s`` seconds the binding's way."""
    yield Sleep(seconds)


# Event handlers record here; the ``events_seen`` message handler returns the records.
RECORDS: list[list[Any]] = []
_RECORDS_LOCK = threading.Lock()


def _record(item: list[Any]) -> None:
    with _RECORDS_LOCK:
        RECORDS.append(item)


# --- message handlers (single reply) -------------------------------------------------


def echo(data, ctx):
    return data


def none(data, ctx):
    return None


def slow(data, ctx):
    """data: seconds to wait (number) or {"sleep": s, "value": v}."""
    if isinstance(data, dict):
        yield from sleep(data["sleep"])
        return data.get("value")
    yield from sleep(data)
    return data


def boom_dict(data, ctx):
    raise RpcError({"code": 42, "why": "dict payload"})


def boom_text(data, ctx):
    raise RpcError("text payload")


def boom_other(data, ctx):
    raise ValueError("secret details that must not leak")


def bad_reply(data, ctx):
    return float("nan")


def meta(data, ctx):
    return ctx.metadata


def context(data, ctx):
    peer = ctx.peer
    return {
        "pattern": ctx.pattern,
        "route": ctx.route,
        "peer": list(peer) if isinstance(peer, (tuple, list)) else repr(peer),
    }


def total(data, ctx):
    return sum(data)


def forty_two(data, ctx):
    return "forty-two"


def blob(data, ctx):
    return "x" * int(data)


def events_seen(data, ctx):
    """Records of event handlers whose token (first element of data) is ``data``."""
    with _RECORDS_LOCK:
        return [r for r in RECORDS if r[1] == data]


# --- streaming handlers ----------------------------------------------------------------


def count(data, ctx):
    """data: {"n": items, "gap": seconds before each item}."""
    gap = data.get("gap", 0)
    for i in range(data["n"]):
        if gap:
            yield from sleep(gap)
        yield i


def bad_item(data, ctx):
    yield 1
    yield float("nan")


def stream_fail(data, ctx):
    yield 1
    yield from sleep(0.01)
    raise RpcError("mid-stream")


def tracked(data, ctx):
    """data: [token, n]. Records each item and when the generator is closed."""
    token, n = data
    i = -1
    try:
        for i in range(n):
            yield from sleep(0.01)
            _record(["item", token, i])
            yield i
    finally:
        _record(["closed", token, i])


# --- event handlers ---------------------------------------------------------------------


def evt_first(data, ctx):
    """data: [token, n]. Sleeps a little first: order must still hold."""
    yield from sleep(0.005)
    _record(["first", data[0], data[1]])


def evt_second(data, ctx):
    _record(["second", data[0], data[1]])


def evt_meta(data, ctx):
    _record(["meta", data, ctx.metadata, ctx.pattern])


# --- handlers registered as is on every binding ----------------------------------------


# What ``whoami`` answers: ``serve_router.py --name`` sets it (for the balancing tests).
SERVER_NAME = "in-process"


def whoami(data, ctx):
    """This server's name, after ``data`` seconds (if any)."""
    if data:
        yield from sleep(data)
    return SERVER_NAME


def echo_sync(data, ctx):
    return {"sync": data}


def count_sync(data, ctx):
    for i in range(int(data)):
        yield i


MESSAGES: list[tuple[Any, Callable[..., Any]]] = [
    ("whoami", whoami),
    ("echo", echo),
    ("none", none),
    ("slow", slow),
    ("boom_dict", boom_dict),
    ("boom_text", boom_text),
    ("boom_other", boom_other),
    ("bad_reply", bad_reply),
    ("meta", meta),
    ({"cmd": "ctx"}, context),
    ({"cmd": "sum", "v": 2}, total),
    (42, forty_two),
    ("blob", blob),
    ("events_seen", events_seen),
]
STREAMS: list[tuple[Any, Callable[..., Any]]] = [
    ("count", count),
    ("bad_item", bad_item),
    ("stream_fail", stream_fail),
    ("tracked", tracked),
]
EVENTS: list[tuple[Any, Callable[..., Any]]] = [
    ("evt", evt_first),
    ("evt", evt_second),
    ({"cmd": "evt_meta"}, evt_meta),
]
RAW: list[tuple[Any, Callable[..., Any]]] = [
    ("echo_sync", echo_sync),
    ("count_sync", count_sync),
]


def build_router(adapt_message, adapt_stream) -> Router:
    """The suite's router; ``adapt_*`` turn a handler into the binding's style."""
    router = Router()
    for pattern, fn in MESSAGES:
        router.message(pattern)(adapt_message(fn))
    for pattern, fn in STREAMS:
        router.message(pattern)(adapt_stream(fn))
    for pattern, fn in EVENTS:
        router.event(pattern)(adapt_message(fn))
    for pattern, fn in RAW:
        router.message(pattern)(fn)
    return router
