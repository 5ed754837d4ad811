"""The async client: many calls multiplexed on one connection, reopened when lost."""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import SocketAttribute, TaskGroup
from tcpmsg_sockopts import Keepalive, apply_options, keepalive_options

from sansio_tcpmsg import (
    ClientConnection,
    Codec,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionStatus,
    DispatchHook,
    Event,
    Limits,
    PacketDropped,
    ProtocolErrorOccurred,
    RemoteErrorReceived,
    RequestTimedOut,
    ResponseReceived,
    StreamEnded,
    StreamItemReceived,
)
from sansio_tcpmsg.defaults import LOG, RETRY_DELAY_CAP
from sansio_tcpmsg.diagnose import connect_error

from ._aio import ProtocolCarrier
from ._link import Link, StreamCarrier, running_loop, trio_lowlevel
from ._link import Mailbox as _Mailbox
from ._pool import PooledClient, pooled

__all__ = ["Client", "PooledClient", "connect"]

logger = logging.getLogger("tcpmsg.client")


class _Unset(enum.Enum):
    UNSET = 0


_UNSET = _Unset.UNSET


class _ClientLink(Link[ClientConnection]):
    def __init__(
        self, conn: ClientConnection, client: Client, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        super().__init__(conn, loop=loop, pause_reading=False, log=logger)
        self.client = client
        self.waiters: dict[str, _Mailbox] = {}  # streams: every event of the request
        # ``send``: request id -> its one waiter, popped when it is woken with the reply:
        # a bare future on asyncio, the parked task itself on trio.
        self.futures: dict[str, Any] = {}
        self.lowlevel: Any = None  # trio.lowlevel on trio
        self._reschedule: Any = None
        if loop is None:
            self.lowlevel = lowlevel = trio_lowlevel()
            self._reschedule, self._value = lowlevel.reschedule, _outcome_value()

    def lone(self) -> bool:
        """True while at most one call is in flight: its bytes need not wait for others'."""
        return self.conn.pending < 2

    def wake(self, waiter: Any, event: Event) -> None:
        """Hand ``event`` to the waiter of a ``send`` (popped from ``futures``)."""
        if self._reschedule is not None:
            self._reschedule(waiter, self._value(event))
        elif not waiter.done():  # a future cancelled with its caller is popped later
            waiter.set_result(event)

    def on_event(self, event: Event) -> None:
        cls = type(event)
        if cls is ResponseReceived or cls is RemoteErrorReceived or cls is RequestTimedOut:
            waiter = self.futures.pop(event.request_id, None)  # type: ignore[attr-defined]
            if waiter is not None:
                self.wake(waiter, event)
                return
        if isinstance(event, ConnectionClosed):
            futures, self.futures = self.futures, {}
            for waiter in futures.values():
                self.wake(waiter, event)
            for waiter in self.waiters.values():
                waiter.put(event)
            self.client._lost(self)
        elif isinstance(event, ProtocolErrorOccurred):
            logger.log(*LOG.PROTOCOL_ERROR, (self.client.host, self.client.port), event.error)
        elif isinstance(event, PacketDropped):
            logger.log(*LOG.PACKET_DROPPED, (self.client.host, self.client.port), event.reason)
        else:
            mailbox = self.waiters.get(getattr(event, "request_id", ""))
            if mailbox is not None:
                mailbox.put(event)


def _forget(futures: dict[str, Any], request_id: str, _raise_cancel: Any) -> Any:
    """trio's abort function of a parked ``send``: forget its waiter; the task may go."""
    futures.pop(request_id, None)
    return trio_lowlevel().Abort.SUCCEEDED


def _outcome_value() -> Any:
    import outcome  # trio's dependency

    return outcome.Value


def _outcome(event: Event) -> Any:
    """The value an event carries for the caller, or the exception it means."""
    if isinstance(event, (ResponseReceived, StreamItemReceived)):
        return event.value
    assert isinstance(event, (RemoteErrorReceived, RequestTimedOut, ConnectionClosed)), event
    raise event.exception()


class _Call:
    """One request in flight on one link; ``close`` forgets it (idempotent)."""

    def __init__(self, link: _ClientLink, request_id: str) -> None:
        self.link = link
        self.request_id = request_id
        self.mailbox = _Mailbox(link.loop)
        link.waiters[request_id] = self.mailbox

    def close(self) -> None:
        link = self.link
        if link.waiters.pop(self.request_id, None) is not None:
            link.call(link.conn.cancel, self.request_id)


class _StreamCall:
    """What ``Client.stream`` returns: an async iterator over a streamed reply.

    Leaving the loop early (``break``) cancels the request locally as soon as the
    iterator is dropped; ``aclose()`` or ``async with`` does it at a known point.
    """

    def __init__(self, client: Client, args: tuple[Any, Any, float | None | _Unset, Any]) -> None:
        self._client = client
        self._args = args
        self._call: _Call | None = None
        self._done = False

    def __aiter__(self) -> _StreamCall:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            if self._call is None:
                pattern, data, timeout, metadata = self._args
                self._call = await self._client._start(pattern, data, timeout, metadata, True)
            event = await self._call.mailbox.get()
            if isinstance(event, StreamEnded):
                raise StopAsyncIteration
            return _outcome(event)
        except BaseException:
            self._done = True
            self.close()
            raise

    def close(self) -> None:
        """Stop waiting for the rest of the stream (synchronous)."""
        self._done = True
        if self._call is not None:
            self._call.close()

    async def aclose(self) -> None:
        """Stop waiting for the rest of the stream."""
        self.close()

    async def __aenter__(self) -> _StreamCall:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class Client:
    """A connection to one NestJS-compatible TCP microservice (``connect`` is this class).

    Use it as ``async with connect(...) as client:``, or call ``await client.connect()``
    and later ``await client.aclose()`` from the same task: the client's reader runs in
    a task group opened there, so the client's lifetime nests in the enclosing task
    groups' (structured concurrency).

    ``timeout`` is the default per-call timeout (None waits forever); ``retries`` extra
    connection attempts back off exponentially from ``retry_delay`` (capped at
    ``sansio_tcpmsg.defaults.RETRY_DELAY_CAP``, 2 s);
    ``tls`` is a client ``ssl.SSLContext`` (``server_hostname`` defaults to ``host``).
    """

    def __new__(cls, host: str | None = None, port: int | None = None, **options: Any) -> Any:
        """One connection to ``host:port``, or a :class:`PooledClient` (see ``__init__``)."""
        pool = pooled(cls, host, port, dict(options))
        return super().__new__(cls) if pool is None else pool

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        retries: int = 0,
        retry_delay: float = 0.1,
        limits: Limits | None = None,
        codec: Codec | None = None,
        on_status: Callable[[ConnectionStatus], None] | None = None,
        on_dispatch: DispatchHook | None = None,
        endpoints: Sequence[tuple[str, int]] | None = None,
        pool_size: int = 1,
        max_connection_age: float | None = None,
        resolve_interval: float | None = None,
        balance: str = "round_robin",
        backoff_max: float = 5.0,
        resolver: Callable[[str, int], Sequence[str]] | None = None,
        keepalive: Keepalive | bool | None = True,
        lazy: bool = False,
    ) -> None:
        # The pool's options (endpoints ... resolver) made a PooledClient in __new__
        # unless they are all at their defaults: one connection has no use for them.
        host = host or "localhost"
        self.host = host
        self.port = 3000 if port is None else port
        self.tls = tls
        self.server_hostname = server_hostname or host
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.limits = limits
        self.codec = codec
        self.on_status = on_status
        self.on_dispatch = on_dispatch
        self.keepalive = keepalive
        self.lazy = lazy
        self._sockopts = keepalive_options(keepalive)
        self._status = ConnectionStatus.DISCONNECTED
        self._listeners: set[_Mailbox] = set()
        self._link: _ClientLink | None = None
        self._tg: TaskGroup | None = None
        self._in_context = False
        self._closed = True
        self._connect_lock = anyio.Lock()
        self._reconnects = True  # False in a pool: a lost connection is replaced, not reopened

    # -- status -----------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        """The current connection status."""
        return self._status

    def _set_status(self, status: ConnectionStatus) -> None:
        if status is self._status:
            return
        self._status = status
        for listener in self._listeners:
            listener.put(status)
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                logger.exception("on_status callback failed")

    async def statuses(self) -> AsyncIterator[ConnectionStatus]:
        """Every status change from now on; ends once the client is closed."""
        mailbox = _Mailbox(running_loop())
        self._listeners.add(mailbox)
        try:
            while True:
                status = await mailbox.get()
                if status is None:  # the client was closed
                    return
                yield status
        finally:
            self._listeners.discard(mailbox)

    # -- connecting -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection now (``async with`` does it), or raise ``OSError``; with
        ``lazy=True``, only get ready (the client's task group): the first call opens
        it. Calls need one or the other first; a lost connection is reopened by the
        next call either way."""
        self._closed = False
        if self._tg is None:
            tg = anyio.create_task_group()
            await tg.__aenter__()
            self._tg = tg
            if self.lazy:
                return
            try:
                await self._ensure()
            except BaseException:
                self._tg = None
                await tg.__aexit__(None, None, None)  # no child yet; re-raise unwrapped
                raise
        elif not self.lazy:
            await self._ensure()

    async def _open(self, link: _ClientLink) -> None:
        delay = self.retry_delay
        loop = link.loop
        for attempt in range(self.retries + 1):
            try:
                with anyio.fail_after(self.connect_timeout):
                    if loop is not None:
                        carrier = ProtocolCarrier(loop, link, eager=link.lone)
                        tls: dict[str, Any] = {}
                        if self.tls is not None:
                            tls = {"ssl": self.tls, "server_hostname": self.server_hostname}
                        transport, _ = await loop.create_connection(carrier, self.host, self.port, **tls)
                        apply_options(transport.get_extra_info("socket"), self._sockopts)
                        return
                    if self.tls is None:
                        stream: Any = await anyio.connect_tcp(self.host, self.port)
                    else:
                        stream = await anyio.connect_tcp(
                            self.host,
                            self.port,
                            ssl_context=self.tls,
                            tls_hostname=self.server_hostname,
                            tls_standard_compatible=False,
                        )
                    sock = stream.extra(SocketAttribute.raw_socket)
                    apply_options(sock, self._sockopts)
                    StreamCarrier(link, stream, (sock, link.lone) if self.tls is None else None)
                    return
            # TimeoutError and ssl.SSLError are OSErrors; a TLS handshake cut short on trio
            # ends with anyio's EndOfStream or BrokenResourceError.
            except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
                error = connect_error(exc, self.host, self.port, tls=self.tls is not None,
                                      timeout=self.connect_timeout)
                if attempt == self.retries:
                    raise error from exc
                logger.log(*LOG.RETRYING, error)
                await anyio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_CAP)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ensure(self) -> _ClientLink:
        link = self._link
        if link is not None and not link.conn.closed:
            return link
        async with self._connect_lock:
            link = self._link
            if link is not None and not link.conn.closed:
                return link
            tg = self._tg
            if tg is None or self._closed:
                raise ConnectionClosedError("the client is closed (use `async with connect(...)`)")
            if link is not None and not self._reconnects:
                raise ConnectionClosedError(f"connection to {self.host}:{self.port} closed")
            if link is not None:
                self._set_status(ConnectionStatus.RECONNECTING)
            conn = ClientConnection(limits=self.limits, codec=self.codec, on_dispatch=self.on_dispatch)
            new = _ClientLink(conn, self, running_loop())
            try:
                await self._open(new)
            except BaseException:
                self._set_status(ConnectionStatus.DISCONNECTED)
                raise
            link = self._link = new
            tg.start_soon(link.run)
            logger.log(*LOG.CONNECTED, self.host, self.port)
            self._set_status(ConnectionStatus.CONNECTED)
            return link

    def _join_pool(self, tg: TaskGroup, server_hostname: str) -> None:
        """Run as one connection of a pool: in the pool's task group, never reopened
        once lost (the pool opens a fresh one), closed without closing the group."""
        self._tg, self._closed, self._in_context = tg, False, True
        self._reconnects = False
        self.server_hostname = server_hostname

    def _lost(self, link: _ClientLink) -> None:
        if link is self._link:
            self._set_status(ConnectionStatus.DISCONNECTED)

    # -- calls ------------------------------------------------------------------------

    async def _start(
        self, pattern: Any, data: Any, timeout: float | None | _Unset, metadata: Any, stream: bool
    ) -> _Call:
        link = await self._ensure()
        if timeout is _UNSET:
            timeout = self.timeout
        deadline = None if timeout is None else link.time() + timeout
        request_id = link.call(link.conn.send_request, pattern, data, deadline, timeout, metadata, stream)
        return _Call(link, request_id)

    async def send(
        self,
        pattern: Any,
        data: Any = None,
        *,
        timeout: float | None | _Unset = _UNSET,
        metadata: Any = None,
    ) -> Any:
        """Send a request and return its reply's value.

        Raises :class:`~sansio_tcpmsg.RemoteError` (``NoHandlerError`` for an unknown
        pattern), :class:`~sansio_tcpmsg.RequestTimeout`,
        :class:`~sansio_tcpmsg.ConnectionClosedError`,
        :class:`~sansio_tcpmsg.UnserializableError` (nothing sent) or ``OSError``.
        """
        link = self._link
        if link is None or link.conn.closed:
            link = await self._ensure()
        if timeout is _UNSET:
            timeout = self.timeout
        deadline = None if timeout is None else link.time() + timeout
        request_id = link.call(link.conn.send_request, pattern, data, deadline, timeout, metadata)
        futures = link.futures
        loop = link.loop
        if loop is not None:
            future = futures[request_id] = loop.create_future()
            try:
                event = await future
            finally:
                if futures.pop(request_id, None) is not None:  # left before the reply
                    link.call(link.conn.cancel, request_id)
        else:  # trio: park this task; the reader reschedules it with the reply
            lowlevel = link.lowlevel
            futures[request_id] = lowlevel.current_task()
            try:
                event = await lowlevel.wait_task_rescheduled(partial(_forget, futures, request_id))
            except BaseException:  # cancelled (``_forget`` ran): drop the late reply
                link.call(link.conn.cancel, request_id)
                raise
        if type(event) is ResponseReceived:
            return event.value
        return _outcome(event)

    def stream(
        self,
        pattern: Any,
        data: Any = None,
        *,
        timeout: float | None | _Unset = _UNSET,
        metadata: Any = None,
    ) -> _StreamCall:
        """Send a request and iterate its reply's values: ``async for v in client.stream(...)``.

        ``timeout`` bounds the whole stream; leaving the loop early cancels the request.
        """
        return _StreamCall(self, (pattern, data, timeout, metadata))

    async def emit(self, pattern: Any, data: Any = None, *, metadata: Any = None) -> None:
        """Send an event (no reply); returns once the frame is handed to the socket."""
        link = await self._ensure()
        link.call(lambda: link.conn.emit(pattern, data, metadata=metadata))
        await link.wait_sent(link.carrier.queued + link.conn.bytes_to_send)

    # -- closing ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection; every pending call fails with ConnectionClosedError.

        Returns once the connection's tasks are done. With ``async with`` the task
        group closes when the block ends; after ``await client.connect()`` it closes
        here, so call both from the same task.
        """
        self._closed = True
        link = self._link
        if link is not None:
            link.call(link.conn.close)
            await link.done.wait()
        self._set_status(ConnectionStatus.DISCONNECTED)
        for listener in self._listeners:
            listener.put(None)
        if not self._in_context:
            await self._exit_task_group(None, None, None)

    async def _exit_task_group(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        if tg is not None:
            await tg.__aexit__(exc_type, exc, tb)

    async def __aenter__(self) -> Client:
        await self.connect()
        self._in_context = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            self._in_context = False
            # Our tasks are done: exit without the body's exception, so that it
            # propagates as is rather than wrapped in an exception group.
            await self._exit_task_group(None, None, None)



# What ``inspect.signature(connect)`` and the docs show: __init__'s options, not __new__'s.
Client.__signature__ = inspect.signature(Client.__init__).replace(  # type: ignore[attr-defined]
    parameters=list(inspect.signature(Client.__init__).parameters.values())[1:])

connect = Client
"""``connect(host, port, ...)``: a :class:`Client`; ``async with`` it to connect and close."""
