"""Test handlers and protocol logic without sockets.

:class:`ConnectionPair` wires a :class:`ClientConnection` to a :class:`ServerConnection`
in memory, with a :class:`FakeClock`, so a test can push bytes, take events and move
time by hand. :class:`TestClient` builds on it to call a :class:`Router`'s handlers
through the real wire encoding, as a NestJS client would::

    from sansio_tcpmsg.testing import TestClient

    client = TestClient(router)
    assert client.send({"cmd": "sum"}, [1, 2]) == 3

Handlers run synchronously: plain functions and generators, and coroutines or async
generators that finish without waiting on an event loop (``async def`` handlers that
only compute). A handler that really waits needs a binding's server.
"""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
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
from .limits import Limits
from .routing import Router
from .server import ServerConnection

__all__ = ["ConnectionPair", "FakeClock", "TestClient", "run_handler"]


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
        router: Router,
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
    try:
        result = _finish(event.handler(event.data, event.context))
        if inspect.isgenerator(result):
            for item in result:
                server.send_item(event.request_id, item)
            server.end_stream(event.request_id)
        elif inspect.isasyncgen(result):
            while True:
                try:
                    item = _drive(result.__anext__())
                except StopAsyncIteration:
                    break
                server.send_item(event.request_id, item)
            server.end_stream(event.request_id)
        else:
            server.respond(event.request_id, result)
    except Exception as exc:  # the reply says what went wrong, as in any binding
        server.fail(event.request_id, exc)


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


class TestClient:
    """Call a router's handlers through real frames, without sockets or threads."""

    __test__ = False  # not a pytest test class

    def __init__(self, router: Router, *, limits: Limits | None = None) -> None:
        self.pair = ConnectionPair(router, limits=limits)

    def _exchange(self) -> list[Event]:
        for event in self.pair.to_server():
            if isinstance(event, RequestReceived):
                run_handler(self.pair.server, event)
            else:
                assert isinstance(event, EventReceived)  # a well-formed client sends nothing else
                for handler in event.handlers:
                    _finish(handler(event.data, event.context))
        return self.pair.to_client()

    def send(self, pattern: Any, data: Any, *, metadata: Any = None) -> Any:
        """The reply's value, or the :class:`RemoteError` the server answered with."""
        self.pair.client.send_request(pattern, data, metadata=metadata)
        return _outcome(self._exchange())[0]

    def stream(self, pattern: Any, data: Any, *, metadata: Any = None) -> list[Any]:
        """Every value of a streamed reply."""
        self.pair.client.send_request(pattern, data, metadata=metadata, stream=True)
        return _outcome(self._exchange())

    def emit(self, pattern: Any, data: Any, *, metadata: Any = None) -> None:
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

