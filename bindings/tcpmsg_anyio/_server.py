"""The async server: a reader per connection, requests started in order by a request
worker (a task only for those that wait), events in order."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import ssl
import types
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, ParamSpec

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener, SocketStream, TaskGroup
from anyio.streams.tls import TLSStream
from tcpmsg_sockopts import apply_options, keepalive_options

from sansio_tcpmsg import (
    Codec,
    ConnectionClosed,
    Context,
    Event,
    EventReceived,
    Handler,
    Keepalive,
    Limits,
    PacketDropped,
    ProtocolErrorOccurred,
    RequestReceived,
    Router,
    ServerConnection,
)
from sansio_tcpmsg.defaults import HANDSHAKE_TIMEOUT, LOG
from sansio_tcpmsg.diagnose import handshake_failure, listen_error
from sansio_tcpmsg.handlers import Family, Handlers, Kind, Stream, aclose, close

from ._aio import ProtocolCarrier
from ._link import Link, Mailbox, StreamCarrier, close_stream, running_loop

__all__ = ["Server", "run", "serve"]

logger = logging.getLogger("tcpmsg.server")


# How an item of a streamed result is handed on: True while the stream should go on.
_Send = Callable[[Any], bool]


def _called(handler: Handler) -> Handler:
    """A (async) generator function: calling it runs nothing, so call it in the loop."""

    async def call(data: Any, ctx: Context) -> Any:
        return handler(data, ctx)

    return call


def _discard(item: Any) -> bool:
    return True


class _ServerLink(Link[ServerConnection]):
    def __init__(
        self, conn: ServerConnection, server: Server, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        super().__init__(conn, loop=loop, pause_reading=True, log=logger)
        self.server = server
        self.on_release = server._release
        self.spawn: Callable[..., object] | None = None  # starts a request worker, on trio
        self.tasks: set[asyncio.Task[None]] = set()  # request workers, on asyncio
        # Requests not yet started, in arrival order (made with the first: an empty
        # deque is 0.75 KiB, on every idle connection), and whether a worker owns them.
        self.requests: deque[RequestReceived] | None = None
        self.working = False
        # Each request runs in a copy of this (not of whatever ran before it).
        self.context = contextvars.copy_context()
        self.events = Mailbox(loop)
        self.events_done = anyio.Event()
        # The event worker starts with the first event: most connections never get one,
        # and an idle task costs memory on every connection (about 3.7 KiB on trio).
        self.start_events: Callable[[], object] | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            # (the core holds the requests past its limits: each one here may start)
            requests = self.requests
            if requests is None:
                requests = self.requests = deque()
            requests.append(event)
            if not self.working:
                self.start_worker()
        elif isinstance(event, EventReceived):
            self.events.put(event)
            start, self.start_events = self.start_events, None
            if start is not None:
                start()
        elif isinstance(event, ProtocolErrorOccurred):
            logger.log(*LOG.PROTOCOL_ERROR, self.conn.peer, event.error)
        elif isinstance(event, PacketDropped):
            logger.log(*LOG.PACKET_DROPPED, self.conn.peer, event.reason)
        elif isinstance(event, ConnectionClosed):
            self.events.put(None)  # the event worker ends after what is queued

    def starting(self) -> bool:
        return self.working

    def start_worker(self) -> None:
        """Start a request worker: it owns the queued requests until it hands them on."""
        self.working = True
        if self.loop is not None:  # an asyncio task is far cheaper than start_soon
            self.tasks.add(self.loop.create_task(self.server._request_worker(self)))
        else:
            assert self.spawn is not None
            self.spawn(self.server._request_worker, self)


class Server:
    """A TCP microservice server for ``router`` (``serve`` is this class).

    ``async with`` binds and serves in the background (``port=0`` picks a free port);
    leaving closes gracefully. ``tls`` is a server ``ssl.SSLContext`` (mutual TLS when it
    requires client certificates); ``max_workers`` bounds the threads running
    plain-function handlers.

    ``proxy_protocol=True``: every connection must begin with a PROXY protocol header
    (v1 or v2; read before the TLS handshake), and handlers see the original client as
    ``ctx.peer``. ``reuse_port=True`` sets ``SO_REUSEPORT`` so that several processes
    can listen on one port. ``keepalive`` (on by default) sets TCP keepalive on every
    accepted connection (a :class:`~sansio_tcpmsg.Keepalive` for other timings, False
    for none). On :meth:`aclose` the server first answers health checks with "draining"
    for ``drain_delay`` seconds while serving as usual, so a balancer stops sending it
    connections before they close.
    """

    def __init__(
        self,
        router: Router,
        host: str = "localhost",
        port: int = 3000,
        *,
        tls: ssl.SSLContext | None = None,
        limits: Limits | None = None,
        codec: Codec | None = None,
        grace: float = 5.0,
        max_workers: int = 64,
        proxy_protocol: bool = False,
        reuse_port: bool = False,
        keepalive: Keepalive | bool = True,
        drain_delay: float = 0.0,
    ) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.tls = tls
        self.limits = limits or Limits()
        self.codec = codec
        self.grace = grace
        self.proxy_protocol = proxy_protocol
        self.reuse_port = reuse_port
        self.drain_delay = drain_delay
        #: True once :meth:`aclose` began: health checks are answered with "draining".
        self.draining = False
        self._conn_options = keepalive_options(keepalive)
        self._limiter = anyio.CapacityLimiter(max_workers)
        self._tg: TaskGroup | None = None
        self._listener: anyio.abc.Listener[SocketStream] | None = None
        self._accepting: anyio.CancelScope | None = None
        self._links: set[_ServerLink] = set()
        self._active = 0
        self._changed = anyio.Event()
        self._closing = False
        self._stopped = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aio_servers: list[asyncio.AbstractServer] = []
        # Refuses here, before binding, a middleware this binding cannot run. ``async def``
        # handlers are awaited as they are (no frame more); the others go through these.
        self.handlers = Handlers(router, family=Family.ASYNC, binding="tcpmsg_anyio", invoke={
            Kind.PLAIN: self._in_thread, Kind.GENERATOR: _called, Kind.ASYNC_GENERATOR: _called,
        })
        self._drains: dict[Stream, Callable[[Any, _Send], Awaitable[None]]] = {
            Stream.ITEMS: self._drain_in_thread, Stream.ASYNC_ITEMS: _drain_async,
        }

    @property
    def connections(self) -> int:
        """Connections open now (metrics read it, e.g. ``tcpmsg_prometheus``)."""
        return self._active

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- starting and stopping --------------------------------------------------------

    async def __aenter__(self) -> Server:
        try:
            listener = await anyio.create_tcp_listener(
                local_host=self.host, local_port=self.port, reuse_port=self.reuse_port
            )
        except OSError as exc:
            raise listen_error(exc, self.host, self.port) from exc
        self._listener = listener
        self.port = listener.extra(SocketAttribute.local_port)
        loop = self._loop = running_loop()
        # asyncio: the listening sockets go to the loop's own server, unless a PROXY
        # header must be read before the TLS handshake (the loop's TLS starts at once).
        if loop is not None and not (self.tls and self.proxy_protocol):
            self._listener = None
            tls: dict[str, Any] = {}
            if self.tls is not None:
                tls = {"ssl": self.tls, "ssl_handshake_timeout": HANDSHAKE_TIMEOUT}
            try:
                for one in listener.listeners:
                    sock = one.extra(SocketAttribute.raw_socket).dup()
                    self._aio_servers.append(await loop.create_server(self._protocol, sock=sock, **tls))
            except BaseException:
                for aio_server in self._aio_servers:
                    aio_server.close()
                raise
            finally:
                await listener.aclose()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        if self._listener is not None:
            tg.start_soon(self._accept_all, listener.listeners)
        logger.log(*LOG.LISTENING, self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg = self._tg
        try:
            await self.aclose()
        finally:
            if tg is not None:
                self._tg = None
                # Our tasks are done: exit without the body's exception, so that it
                # propagates as is rather than wrapped in an exception group.
                await tg.__aexit__(None, None, None)

    async def serve_forever(self) -> None:
        """Serve until :meth:`aclose` (binding first if the server is not started)."""
        if self._tg is None and not self._closing:
            async with self:
                await self._stopped.wait()
        else:
            await self._stopped.wait()

    async def aclose(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within ``grace`` seconds
        (default: the server's), then close every connection and wait for them."""
        if self._closing or self.draining:
            await self._stopped.wait()
            return
        self.draining = True
        for link in self._links:
            link.conn.draining = True
        if self.drain_delay > 0:
            logger.info("draining: failing health checks for %g s before closing", self.drain_delay)
            await anyio.sleep(self.drain_delay)
        self._closing = True
        try:
            if self._accepting is not None:
                self._accepting.cancel()
            if self._listener is not None:
                with anyio.CancelScope(shield=True):
                    await self._listener.aclose()
            for aio_server in self._aio_servers:
                aio_server.close()
            for link in list(self._links):  # each closes after its last reply, or once quiet
                link.call(link.conn.close_when_idle, link.time())
            with anyio.move_on_after(self.grace if grace is None else grace):
                while self._active:
                    await self._changed.wait()
            for link in list(self._links):
                link.call(link.conn.close)
            while self._active or self._links:
                await self._changed.wait()
        finally:
            self._stopped.set()
            logger.log(*LOG.SERVER_CLOSED, self.host, self.port)

    # -- connections ------------------------------------------------------------------

    async def _accept_all(self, listeners: Any) -> None:
        async with anyio.create_task_group() as tg:
            self._accepting = tg.cancel_scope
            for listener in listeners:
                tg.start_soon(self._accept_loop, listener)

    async def _accept_loop(self, listener: SocketListener) -> None:
        assert self._tg is not None
        while True:
            try:
                sock = await listener.accept()
            except anyio.ClosedResourceError:
                return
            except (OSError, anyio.BrokenResourceError) as exc:
                logger.log(*LOG.ACCEPT_FAILED, exc)
                await anyio.sleep(0.1)
                continue
            cap = self.limits.max_connections
            if cap is not None and self._active >= cap:
                logger.log(*LOG.REFUSED, sock.extra(SocketAttribute.remote_address), self._active)
                self._tg.start_soon(close_stream, sock)
                continue
            self._active += 1
            self._tg.start_soon(self._serve_stream, sock)

    def _protocol(self) -> ProtocolCarrier:
        assert self._loop is not None
        return ProtocolCarrier(self._loop, on_made=self._accepted)

    def _accepted(self, carrier: ProtocolCarrier) -> None:
        """asyncio: a connection is made (TLS included); serve it."""
        assert carrier.transport is not None and self._tg is not None
        cap = self.limits.max_connections
        peer = carrier.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            peer = tuple(peer[:2])
        if self._closing or cap is not None and self._active >= cap:
            logger.log(*LOG.REFUSED, peer, self._active)
            carrier.transport.close()
            return
        self._active += 1
        self._set_options(carrier.transport.get_extra_info("socket"))
        link = _ServerLink(self._connection(peer), self, self._loop)
        carrier.attach(link)
        self._tg.start_soon(self._serve_link, link)

    def _connection(self, peer: Any) -> ServerConnection:
        conn = ServerConnection(
            self.handlers, peer=peer, limits=self.limits, codec=self.codec, proxy_protocol=self.proxy_protocol
        )
        conn.draining = self.draining
        return conn

    def _set_options(self, sock: Any) -> None:
        try:
            apply_options(sock, self._conn_options)
        except OSError as exc:  # the peer may already be gone
            logger.info("cannot set socket options: %s", exc)

    async def _serve_stream(self, sock: SocketStream) -> None:
        self._set_options(sock.extra(SocketAttribute.raw_socket))
        conn = self._connection(sock.extra(SocketAttribute.remote_address))
        peer = conn.peer
        stream: ByteStream = sock
        try:
            if self.tls is not None:
                with anyio.fail_after(HANDSHAKE_TIMEOUT):
                    if conn.proxy_bytes_needed:
                        await _read_proxy_header(sock, conn)
                    stream = await TLSStream.wrap(
                        sock, server_side=True, ssl_context=self.tls, standard_compatible=False
                    )
        except BaseException as exc:
            self._release()
            await close_stream(sock)
            if not isinstance(exc, Exception):  # cancelled
                raise
            logger.log(*LOG.HANDSHAKE_FAILED, peer, handshake_failure(exc))
            return
        link = _ServerLink(conn, self, self._loop)  # the loop: asyncio with TLS after a PROXY header
        StreamCarrier(link, stream)
        await self._serve_link(link)

    async def _serve_link(self, link: _ServerLink) -> None:
        peer = link.conn.peer
        try:
            self._links.add(link)
            logger.log(*LOG.OPENED, peer)
            async with anyio.create_task_group() as tg:
                link.start_events = functools.partial(tg.start_soon, self._event_worker, link)
                async with _request_tasks(link):
                    await link.run()
                    if link.start_events is None:  # the event worker runs: let it finish
                        with anyio.move_on_after(self.grace):
                            await link.events_done.wait()
                    link.start_events = None
                    tg.cancel_scope.cancel()
                if link.tasks:
                    tasks = list(link.tasks)
                    for task in tasks:
                        task.cancel()
                    with anyio.CancelScope(shield=True):
                        await asyncio.wait(tasks)
        finally:
            link.release()
            self._links.discard(link)
            logger.log(*LOG.CLOSED, peer)
            self._notify()

    def _release(self) -> None:
        """A connection's socket closes: its place is free (before its peer can know)."""
        self._active -= 1
        self._notify()

    # -- handlers: where they run and how we wait (what results mean is the core's) -----

    def _in_thread(self, handler: Handler) -> Handler:
        limiter = self._limiter

        async def call(data: Any, ctx: Context) -> Any:
            return await anyio.to_thread.run_sync(handler, data, ctx, limiter=limiter, abandon_on_cancel=True)

        return call

    async def _drain_in_thread(self, items: Iterator[Any], send: _Send) -> None:
        """Iterate in one worker thread, which owns the iterator (and closes it); each
        item is handed to ``send`` in the loop. Cancelled, we leave at once and the thread
        stops at its next item."""
        stopped = False

        def hand_on(item: Any) -> bool:
            return not stopped and send(item)

        def run() -> None:
            try:
                for item in items:
                    if not anyio.from_thread.run_sync(hand_on, item):
                        return
            finally:
                close(items)

        try:
            await anyio.to_thread.run_sync(run, limiter=self._limiter, abandon_on_cancel=True)
        finally:
            stopped = True

    async def _request_worker(self, link: _ServerLink) -> None:
        """Start the link's queued requests in order, each stepped here in a context of
        its own: a handler that returns without waiting costs no task, and its reply is
        handed to the core at once (one transmit and one clock reading a batch). The
        first handler that waits keeps this task to its end (its cancel scopes and
        timeouts were entered in it) and a new worker goes on with the queue.
        Cancelling the task cancels the request it runs."""
        queue, base, conn = link.requests, link.context, link.conn
        assert queue is not None  # a worker starts with a request
        owner = True
        try:
            while queue:
                now = link.time()
                while queue:
                    event = queue.popleft()
                    request_id, ctx = event.request_id, base.copy()
                    try:
                        coro = event.handler(event.data, event.context)
                        waiting = ctx.run(coro.send, None)
                    except StopIteration as done:
                        try:  # as _returned does, inline: this runs for every request
                            stream = conn.handler_returned(request_id, done.value, now)
                        except Exception as exc:
                            conn.handler_raised(request_id, exc, now)
                            continue
                        if stream is None:
                            continue
                        coro, waiting = self._streamed(link, request_id, done.value, stream), _START
                    except Exception as exc:
                        conn.handler_raised(request_id, exc, now)
                        continue
                    else:
                        stream = None
                    owner = link.working = False
                    if queue:
                        link.start_worker()
                    link.transmit()  # what those before it answered (after: one worker at a time)
                    await self._finish(link, request_id, coro, waiting, ctx, stream is None)
                    return
                link.transmit()  # the replies; requests the core released join the queue
                if self._closing:
                    self._notify()
        finally:
            if owner:  # the queue is empty, or a handler raised past its request
                link.working = False
                if queue and not conn.closed:
                    link.start_worker()
            if link.loop is not None:
                link.tasks.discard(asyncio.current_task())

    async def _finish(
        self, link: _ServerLink, request_id: int, coro: Coroutine[Any, Any, Any], waiting: Any,
        ctx: contextvars.Context, handler: bool,
    ) -> None:
        """The rest of a request that waits, in this task: its ``handler``'s coroutine
        (then its reply), or the streaming of its items."""
        conn = link.conn
        try:
            try:
                result = await _resumed(coro, waiting, ctx)
                if handler:
                    stream = _returned(conn, request_id, result, link.time())
                    if stream is not None:
                        await _resumed(self._streamed(link, request_id, result, stream), _START, ctx)
            except Exception as exc:
                conn.handler_raised(request_id, exc, link.time())
        finally:
            link.transmit()
        if self._closing:
            self._notify()

    async def _streamed(self, link: _ServerLink, request_id: int, items: Any, stream: Stream) -> None:
        """Send each item of a streamed result, then its end."""
        conn = link.conn
        link.transmit()

        def send(item: Any) -> bool:
            link.call(conn.send_item, request_id, item)
            return not conn.closed

        await self._drains[stream](items, send)
        link.call(conn.end_stream, request_id, link.time())

    async def _event_worker(self, link: _ServerLink) -> None:
        conn = link.conn
        try:
            while True:
                event: EventReceived | None = await link.events.get()
                if event is None:
                    return
                started = link.time()
                for handler in event.handlers:
                    try:
                        result = await handler(event.data, event.context)
                        stream = conn.event_returned(result)
                        if stream is not None:
                            await self._drains[stream](result, _discard)
                    except Exception as exc:
                        conn.event_raised(event, exc)
                conn.event_done(event, started, link.time())
        finally:
            link.events_done.set()


def _returned(conn: ServerConnection, request_id: int, result: Any, now: float) -> Stream | None:
    """Hand a handler's result to the core: None once replied (or failed, when the
    result cannot be sent), else how it streams."""
    try:
        return conn.handler_returned(request_id, result, now)
    except Exception as exc:  # e.g. a value JSON cannot carry
        conn.handler_raised(request_id, exc, now)
        return None


# What ``_resumed`` is given for a coroutine that has not started.
_START: Any = object()


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, Any], waiting: Any, ctx: contextvars.Context) -> Generator[Any, Any, Any]:
    """Go on stepping ``coro``, which yielded ``waiting`` (or has not started: ``_START``),
    in ``ctx`` until it ends, and return what it returns: what it yields goes to the event
    loop as is, what the loop sends or throws goes back to it. Works on any event loop,
    since nothing here looks at what is yielded."""
    run = ctx.run
    if waiting is _START:
        try:
            waiting = run(coro.send, None)
        except StopIteration as done:
            return done.value
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # a cancellation, most likely: the handler sees it
            step: Callable[[Any], Any] = coro.throw
            arg: Any = exc
        else:
            step, arg = coro.send, sent
        try:
            waiting = run(step, arg)
        except StopIteration as done:
            return done.value
        finally:
            del arg  # no cycle through a thrown exception's traceback


async def _drain_async(items: AsyncIterator[Any], send: _Send) -> None:
    try:
        async for item in items:
            if not send(item):
                return
    finally:
        await aclose(items)


async def _read_proxy_header(sock: SocketStream, conn: ServerConnection) -> None:
    """Read the PROXY header, never past it: the TLS handshake that follows must find
    its first byte on the stream."""
    while conn.proxy_bytes_needed:
        try:
            data = await sock.receive(conn.proxy_bytes_needed)
        except anyio.EndOfStream:
            conn.receive_eof()
        else:
            conn.receive_data(data, anyio.current_time())
    if conn.closed:
        error = next((e.error for e in conn.events_received() if isinstance(e, ProtocolErrorOccurred)), None)
        raise OSError(f"no valid PROXY protocol header ({error})")


@asynccontextmanager
async def _request_tasks(link: _ServerLink) -> AsyncIterator[None]:
    """Where a link's request workers start: plain asyncio tasks (``start_worker``), or a
    trio nursery, since anyio's ``start_soon`` costs about a third of a small request on trio."""
    if link.loop is not None:
        yield
        return
    import trio

    async with trio.open_nursery() as nursery:
        link.spawn = nursery.start_soon
        yield


serve = Server
"""``serve(router, host, port, ...)``: a :class:`Server`; ``async with`` it to serve."""


_P = ParamSpec("_P")


def _runner(server_class: Callable[_P, Server]) -> Callable[_P, Coroutine[Any, Any, None]]:
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        """Serve ``router`` until cancelled: ``anyio.run(tcpmsg_anyio.run, router)``."""
        await server_class(*args, **kwargs).serve_forever()

    functools.update_wrapper(run, server_class, assigned=(), updated=())  # help() shows Server's parameters
    return run


run = _runner(Server)
"""``run(router, host, port, ...)``, with :class:`Server`'s parameters: serve until cancelled."""
