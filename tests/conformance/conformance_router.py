"""The conformance suite's router: written once, served untouched by every binding.

Handlers are plain functions and generator functions, the kinds every binding runs (see
the handler table in docs/bindings-contract.md): on anyio they run in worker threads, on
threads in the pool, on gevent in a greenlet each. A handler that must wait calls
``pause(seconds)``: ``time.sleep``, or ``gevent.sleep`` inside a gevent greenlet, which is
what ``time.sleep`` is after ``gevent.monkey.patch_all()`` (the in-process gevent server
shares its process with threads, so it cannot be monkey-patched).

The same router is served in-process by the tests and out of process by
``serve_router.py``. ``kinds_router()`` adds one handler of every kind, for the tests of
what each binding accepts.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sansio_tcpmsg import Router, RpcError


def pause(seconds: float) -> None:
    """Wait in a handler: ``time.sleep``, as monkey-patched gevent would make it in a greenlet."""
    gevent = sys.modules.get("gevent")
    if gevent is not None and gevent.getcurrent().parent is not None:  # not a thread's main
        gevent.sleep(seconds)
    else:
        time.sleep(seconds)


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
        pause(data["sleep"])
        return data.get("value")
    pause(data)
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


# Tokens ``release`` was called with; ``hold`` waits for its token to appear here.
_RELEASED: set[Any] = set()


def hold(data, ctx):
    """Wait (at most 10 s) until ``release`` is called with the token ``data``; return
    whether it was: True means ``release`` ran while this handler was waiting."""
    deadline = time.monotonic() + 10.0
    while data not in _RELEASED and time.monotonic() < deadline:
        pause(0.005)
    return data in _RELEASED


def release(data, ctx):
    _RELEASED.add(data)
    return data


_VAR: contextvars.ContextVar[Any] = contextvars.ContextVar("conformance_var", default=None)


def var_set(data, ctx):
    """Set a context variable to ``data``; return what it was (None unless a value leaked
    from another request)."""
    previous = _VAR.get()
    _VAR.set(data)
    return previous


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
            pause(gap)
        yield i


def bad_item(data, ctx):
    yield 1
    yield float("nan")


def stream_fail(data, ctx):
    yield 1
    pause(0.01)
    raise RpcError("mid-stream")


def tracked(data, ctx):
    """data: [token, n]. Records each item and when the generator is closed."""
    token, n = data
    i = -1
    try:
        for i in range(n):
            pause(0.01)
            _record(["item", token, i])
            yield i
    finally:
        _record(["closed", token, i])


# --- event handlers ---------------------------------------------------------------------


def evt_first(data, ctx):
    """data: [token, n]. Sleeps a little first: order must still hold."""
    pause(0.005)
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
        pause(data)
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
    ("hold", hold),
    ("release", release),
    ("var_set", var_set),
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


def build_router() -> Router:
    """The suite's router, the same on every binding."""
    router = Router()
    for pattern, fn in [*MESSAGES, *STREAMS, *RAW]:
        router.message(pattern)(fn)
    for pattern, fn in EVENTS:
        router.event(pattern)(fn)
    return router
