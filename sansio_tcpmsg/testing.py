"""Test handlers and protocol logic without sockets.

:class:`ConnectionPair` wires a :class:`ClientConnection` to a :class:`ServerConnection`
in memory, with a :class:`FakeClock`, so a test can push bytes, take events and move
time by hand. :class:`TestClient` builds on it to call a :class:`Router`'s handlers
through the real wire encoding, as a NestJS client would::

    from sansio_tcpmsg.testing import TestClient

    client = TestClient(router)
    assert client.send({"cmd": "sum"}, [1, 2]) == 3

Handlers mean what they mean on every binding (:mod:`sansio_tcpmsg.handlers`): a router
with an ``async def`` handler or middleware is run as ``tcpmsg_anyio`` runs it, any other
as ``tcpmsg_threads`` does, refusing what that binding refuses. Handlers run
synchronously: coroutines and async generators must finish without waiting on an event
loop (``async def`` handlers that only compute). A handler that really waits needs a
binding's server. As on a server, an event handler's exception is logged, not raised.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from .client import ClientConnection
from .events import (
    Event,
    EventReceived,
    RemoteErrorReceived,
    RequestReceived,
    ResponseReceived,
    StreamItemReceived,
)
from .handlers import Family, Handlers, Kind, Stream, family_of
from .limits import Limits
from .routing import Context, Handler, Router
from .server import ServerConnection

__all__ = ["ConnectionPair", "FakeClock", "TestClient", "run_event", "run_handler"]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` and return the new time."""
        self.now += seconds
        return self.now


class ConnectionPair:
    """A client and a server connection joined in memory, with a fake clock."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        router: Router | Handlers,
        *,
        limits: Limits | None = None,
        clock: FakeClock | None = None,
        peer: Any = ("memory", 0),
    ) -> None:
        self.clock = clock or FakeClock()
        self.client = ClientConnection(limits=limits)
        self.server = ServerConnection(router, peer=peer, limits=limits)

    def to_server(self) -> list[Event]:
        """Deliver what the client queued; return the server's new events."""
        self.server.receive_data(self.client.data_to_send(), self.clock.now)
        return self.server.events_received()

    def to_client(self) -> list[Event]:
        """Deliver what the server queued; return the client's new events."""
        self.client.receive_data(self.server.data_to_send(), self.clock.now)
        return self.client.events_received()

    def advance(self, seconds: float) -> tuple[list[Event], list[Event]]:
        """Move the clock; return the (client, server) events the timers produced."""
        now = self.clock.advance(seconds)
        self.client.handle_timer(now)
        self.server.handle_timer(now)
        return self.client.events_received(), self.server.events_received()


def run_handler(server: ServerConnection, event: RequestReceived) -> None:
    """Run a request's handler to the end and queue its reply, as a binding would."""
    request_id = event.request_id
    try:
        result = _CALL[server.family](event.handler(event.data, event.context))
        stream = server.handler_returned(request_id, result)
        if stream is not None:
            for item in _DRAIN[stream](result):
                server.send_item(request_id, item)
            server.end_stream(request_id)
    except Exception as exc:  # the reply says what went wrong, as in any binding
        server.handler_raised(request_id, exc)


def run_event(server: ServerConnection, event: EventReceived) -> None:
    """Run an event's handlers in order, as a binding would (failures are logged)."""
    for handler in event.handlers:
        try:
            result = _CALL[server.family](handler(event.data, event.context))
            stream = server.event_returned(result)
            if stream is not None:
                for _ in _DRAIN[stream](result):
                    pass
        except Exception as exc:
            server.event_raised(event, exc)
    server.event_done(event)


def _finish(result: Any) -> Any:
    if not inspect.iscoroutine(result):
        return result
    return _drive(result)


def _drive(coro: Coroutine[Any, Any, Any] | Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the handler waited on an event loop; test it with a binding's server")


def _value(result: Any) -> Any:
    return result


# What a call gives: on the async family always a coroutine (run it to its end); on the
# sync family the result itself; with a bare router, a coroutine is run.
_CALL: dict[Family | None, Callable[[Any], Any]] = {Family.ASYNC: _drive, Family.SYNC: _value, None: _finish}


def _async_items(items: AsyncIterator[Any]) -> Iterator[Any]:
    while True:
        try:
            yield _drive(items.__anext__())
        except StopAsyncIteration:
            return


_DRAIN: dict[Stream, Callable[[Any], Iterator[Any]]] = {Stream.ITEMS: iter, Stream.ASYNC_ITEMS: _async_items}


def _awaitable(handler: Handler) -> Handler:
    """For async middleware: ``call_next`` gives an awaitable whatever the handler's kind."""

    async def call(data: Any, ctx: Context) -> Any:
        return handler(data, ctx)

    return call


_AWAITABLE: dict[Kind, Callable[[Handler], Handler]] = {kind: _awaitable for kind in Kind if kind is not Kind.ASYNC}


class TestClient:
    """Call a router's handlers through real frames, without sockets or threads."""

    __test__ = False  # not a pytest test class

    def __init__(self, router: Router, *, limits: Limits | None = None, family: Family | None = None) -> None:
        family = family_of(router) if family is None else family
        name = "tcpmsg_anyio" if family is Family.ASYNC else "tcpmsg_threads"
        invoke = _AWAITABLE if family is Family.ASYNC else None
        self.handlers = Handlers(router, family=family, binding=name, invoke=invoke)
        self.pair = ConnectionPair(self.handlers, limits=limits)

    def _exchange(self) -> list[Event]:
        for event in self.pair.to_server():
            if isinstance(event, RequestReceived):
                run_handler(self.pair.server, event)
            else:
                assert isinstance(event, EventReceived)  # a well-formed client sends nothing else
                run_event(self.pair.server, event)
        return self.pair.to_client()

    def send(self, pattern: Any, data: Any = None, *, metadata: Any = None) -> Any:
        """The reply's value, or the :class:`RemoteError` the server answered with."""
        self.pair.client.send_request(pattern, data, metadata=metadata)
        return _outcome(self._exchange())[0]

    def stream(self, pattern: Any, data: Any = None, *, metadata: Any = None) -> list[Any]:
        """Every value of a streamed reply."""
        self.pair.client.send_request(pattern, data, metadata=metadata, stream=True)
        return _outcome(self._exchange())

    def emit(self, pattern: Any, data: Any = None, *, metadata: Any = None) -> None:
        """Send an event; its handlers have run when this returns."""
        self.pair.client.emit(pattern, data, metadata=metadata)
        self._exchange()


def _outcome(events: list[Event]) -> list[Any]:
    values: list[Any] = []
    for event in events:
        if isinstance(event, (ResponseReceived, StreamItemReceived)):
            values.append(event.value)
        elif isinstance(event, RemoteErrorReceived):
            raise event.exception()
    return values

