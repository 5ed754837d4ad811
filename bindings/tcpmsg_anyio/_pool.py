"""The pooled async client: several single-connection clients, a core Balancer deciding.

``connect(endpoints=[...])`` (or any pool option) gives a :class:`PooledClient`. It owns
one single-connection :class:`~tcpmsg_anyio.Client` per pooled connection, all in the
pool's task group, and carries out what :class:`sansio_tcpmsg.Balancer` decides: which
connection takes a call, when to open, close or replace one, when to resolve names.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import anyio
from anyio.abc import TaskGroup

from sansio_tcpmsg import ConnectionClosedError, ConnectionStatus
from sansio_tcpmsg.balancing import (
    Action,
    Close,
    Connect,
    EndpointChanged,
    EndpointInfo,
    PooledConnection,
    Resolve,
    may_resend,
    pool_options,
    pool_targets,
)

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["PooledClient", "pooled"]

logger = logging.getLogger("tcpmsg.client")


class _Default(enum.Enum):
    DEFAULT = 0


_DEFAULT = _Default.DEFAULT


def pooled(member: type[Client], host: str | None, port: int | None,
           options: dict[str, Any]) -> PooledClient | None:
    """The pooled client ``connect(...)`` asked for, or None for one plain connection."""
    targets = pool_targets(host, port, options)
    return None if targets is None else PooledClient(member, targets, **options)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PooledClient:
    """Calls spread over connections to many endpoints, with failover.

    Made by ``connect(endpoints=[(host, port), ...], pool_size=1, ...)``; the same
    methods as the single-connection client, plus ``idempotent=True`` on ``send`` and
    :attr:`endpoints`. ``on_status`` and :meth:`statuses` report an
    :class:`~sansio_tcpmsg.EndpointInfo` each time an endpoint changes state. A
    ``resolver`` is a plain function ``(host, port) -> [address, ...]`` (run in a worker
    thread); by default names are resolved with ``anyio.getaddrinfo``.
    """

    def __init__(self, member: type[Client], targets: list[tuple[str, int]], **options: Any) -> None:
        pool = pool_options(targets, inspect.signature(member).parameters, **options)
        self._member = member
        self._options = pool.member_options
        self.timeout = pool.timeout
        self.connect_timeout = cast(float, pool.connect_timeout)  # anyio's Client takes a number
        self.on_status = pool.on_status
        self.lazy = pool.lazy
        self._resolver = pool.resolver
        # Time 0 is "due now": names and first connects happen at connect().
        self._new_balancer = functools.partial(pool.new_balancer, now=0.0)
        self._balancer = self._new_balancer()
        self._tg: TaskGroup | None = None
        self._changed: anyio.Event | None = None  # replaced on every change
        self._wake: anyio.Event | None = None  # the timer keeper re-reads the timer
        self._listeners: set[Any] = set()
        self._closing = False
        self._status = ConnectionStatus.DISCONNECTED

    # -- life cycle ---------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        """``connected`` while some connection is live, else ``reconnecting`` (or
        ``disconnected`` before connecting and after closing)."""
        return self._status

    @property
    def endpoints(self) -> list[EndpointInfo]:
        """Each endpoint: address, state, calls in flight, live connections."""
        return self._balancer.endpoints

    async def statuses(self) -> AsyncIterator[EndpointInfo]:
        """Every endpoint change from now on; ends once the client is closed."""
        send, receive = anyio.create_memory_object_stream[EndpointInfo](256)
        self._listeners.add(send)
        try:
            async with receive:
                async for info in receive:
                    yield info
        finally:
            self._listeners.discard(send)

    async def __aenter__(self) -> PooledClient:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Start connecting to every endpoint; return once one connection is live (with
        ``lazy=True``, at once: connections are made in the background meanwhile).

        Raises ``ConnectionClosedError`` (an ``OSError``) naming every endpoint if each
        one failed its first attempt (and stops trying: ``connect()`` again starts over).
        Call :meth:`aclose` from the same task later.
        """
        if self._balancer.closed:  # closed, or a failed connect: start afresh
            self._balancer = self._new_balancer()
            self._closing = False
        if self._tg is None:
            tg = anyio.create_task_group()
            await tg.__aenter__()
            self._tg = tg
            self._changed, self._wake = anyio.Event(), anyio.Event()
            self._carry(self._feed(None))
            tg.start_soon(self._keep)
        if self.lazy:  # calls wait for a connection (or fail) as they do after a loss
            return
        try:
            conn = await self._pick(None, None)
        except BaseException:
            await self.aclose()
            raise
        self._release(conn)

    async def aclose(self) -> None:
        """Close every connection; pending calls fail with ``ConnectionClosedError``."""
        self._closing = True
        self._balancer.close()
        self._signal()
        for action in self._balancer.actions():
            if isinstance(action, Close):
                await action.conn.handle.aclose()
        for listener in list(self._listeners):
            listener.close()
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()  # connects still under way, the keeper
            await tg.__aexit__(None, None, None)
        self._status = ConnectionStatus.DISCONNECTED

    # -- carrying out the balancer's decisions ---------------------------------------------

    def _signal(self) -> None:
        """Wake callers waiting for a connection and the timer keeper."""
        for event in (self._changed, self._wake):
            if event is not None:
                event.set()
        if self._changed is not None:
            self._changed = anyio.Event()

    def _feed(self, fn: Callable[..., object] | None, *args: Any) -> list[Action]:
        """Give the balancer an input; its actions, to carry out after."""
        balancer = self._balancer
        if fn is not None:
            fn(*args)
        balancer.handle_timer(anyio.current_time())
        self._signal()
        self._status = balancer.status(self._status)
        return balancer.actions()

    def _carry(self, actions: list[Action]) -> None:
        tg = self._tg
        for action in actions:
            if isinstance(action, EndpointChanged):
                self._report(action.endpoint)
            elif tg is None:
                continue
            elif isinstance(action, Connect):
                tg.start_soon(self._guarded, self._open, action.conn)
            elif isinstance(action, Close):
                tg.start_soon(self._guarded, action.conn.handle.aclose)
            elif isinstance(action, Resolve):
                tg.start_soon(self._guarded, self._lookup, action.host, action.port)

    @staticmethod
    async def _guarded(fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """A background task that must not take the pool's task group down with it."""
        try:
            await fn(*args)
        except Exception:
            logger.exception("pool task %s failed", getattr(fn, "__name__", fn))

    async def _keep(self) -> None:
        """The timer keeper: wakes when the balancer's timer is due (backoff, age, names)."""
        while not self._closing:
            wake = self._wake = anyio.Event()
            timer = self._balancer.get_timer()
            if timer is None:
                await wake.wait()
            else:
                with anyio.move_on_after(timer - anyio.current_time()):
                    await wake.wait()
            if not self._closing:
                self._carry(self._feed(None))

    async def _open(self, conn: PooledConnection) -> None:
        options = self._options
        member = self._member(conn.host, conn.port,
                              on_status=functools.partial(self._member_status, conn), **options)
        assert self._tg is not None
        member._join_pool(self._tg, options.get("server_hostname") or conn.name)
        conn.handle = member
        try:
            await member._ensure()
        except OSError as exc:
            logger.info("connecting to %s:%s failed: %s", conn.host, conn.port, exc)
            self._carry(self._feed(self._balancer.connect_failed, conn, anyio.current_time(),
                                   f"{type(exc).__name__}: {exc}"))
            return
        self._carry(self._feed(self._balancer.connected, conn, anyio.current_time()))

    def _member_status(self, conn: PooledConnection, status: ConnectionStatus) -> None:
        if status is ConnectionStatus.DISCONNECTED:
            self._lost(conn)

    def _lost(self, conn: PooledConnection) -> None:
        self._carry(self._feed(self._balancer.lost, conn, anyio.current_time()))

    async def _lookup(self, host: str, port: int) -> None:
        try:
            if self._resolver is None:
                found = await _getaddrinfo(host, port)
            else:
                found = list(await anyio.to_thread.run_sync(self._resolver, host, port))
        except OSError as exc:
            logger.warning("resolving %s failed: %s", host, exc)
            self._carry(self._feed(self._balancer.resolve_failed, host, port, str(exc),
                                   anyio.current_time()))
            return
        self._carry(self._feed(self._balancer.resolved, host, port, found, anyio.current_time()))

    def _report(self, info: EndpointInfo) -> None:
        logger.info("endpoint %s:%s %s", info.host, info.port, info.state.value)
        for listener in list(self._listeners):
            try:
                listener.send_nowait(info)
            except anyio.WouldBlock:  # a listener that does not read loses changes
                pass
        if self.on_status is not None:
            try:
                self.on_status(info)
            except Exception:
                logger.exception("on_status callback failed")

    # -- calls --------------------------------------------------------------------------

    async def _pick(self, deadline: float | None, avoid: PooledConnection | None) -> PooledConnection:
        """A live connection for one call, waiting (bounded) while first attempts run."""
        balancer = self._balancer
        limit = anyio.current_time() + self.connect_timeout * 2
        if deadline is not None:
            limit = min(limit, deadline)
        while True:
            if self._closing:
                raise ConnectionClosedError("the client is closed")
            conn = balancer.pick(anyio.current_time(), avoid)
            if conn is not None:
                return conn
            why = balancer.unavailable()
            if why is not None:
                raise ConnectionClosedError(why)
            changed = self._changed
            if changed is None:
                raise ConnectionClosedError("the client is not connected (use `async with connect(...)`)")
            with anyio.move_on_after(limit - anyio.current_time()):
                await changed.wait()
            if anyio.current_time() >= limit:
                raise ConnectionClosedError("no connection became live in time")

    def _release(self, conn: PooledConnection) -> None:
        self._balancer.release(conn)
        actions = self._balancer.actions()
        if actions:
            self._carry(actions)

    async def _take(self, deadline: float | None,
                    avoid: PooledConnection | None = None) -> PooledConnection:
        """A connection whose link is open now: a call handed to it is sent; one that
        cannot be handed to a connection goes to the next."""
        while True:
            conn = await self._pick(deadline, avoid)
            link = conn.handle._link
            if link is not None and not link.conn.closed:
                return conn
            self._release(conn)
            self._lost(conn)
            avoid = conn

    async def send(self, pattern: Any, data: Any = None, *, timeout: float | None | _Default = _DEFAULT,
                   metadata: Any = None, idempotent: bool = False) -> Any:
        """Send a request on one live connection and return its reply's value.

        With ``idempotent=True`` a request whose connection dies before the reply is
        sent once more on another connection; otherwise it raises ``ConnectionClosedError``.
        """
        if timeout is _DEFAULT:
            timeout = self.timeout
        deadline = None if timeout is None else anyio.current_time() + timeout
        resent = False
        failed = None
        while True:
            conn = await self._take(deadline, failed)
            left = None if deadline is None else max(deadline - anyio.current_time(), 0.0)
            try:
                return await conn.handle.send(pattern, data, timeout=left, metadata=metadata)
            except ConnectionClosedError:
                if self._closing:
                    raise
                self._lost(conn)
                if not may_resend(sent=True, idempotent=idempotent, resent=resent):
                    raise
                resent, failed = True, conn
            finally:
                self._release(conn)

    def stream(self, pattern: Any, data: Any = None, *, timeout: float | None | _Default = _DEFAULT,
               metadata: Any = None) -> _PooledStream:
        """Iterate a streamed reply, all on one connection: ``async for v in client.stream(...)``."""
        return _PooledStream(self, pattern, data, self.timeout if timeout is _DEFAULT else timeout,
                             metadata)

    async def emit(self, pattern: Any, data: Any = None, *, metadata: Any = None) -> None:
        """Send an event on one live connection."""
        conn = await self._take(None)
        try:
            await conn.handle.emit(pattern, data, metadata=metadata)
        finally:
            self._release(conn)


class _PooledStream:
    """``PooledClient.stream``: the stream of one connection, released when it ends."""

    def __init__(self, pool: PooledClient, pattern: Any, data: Any, timeout: float | None,
                 metadata: Any) -> None:
        self._pool = pool
        self._args = pattern, data, timeout, metadata
        self._conn: PooledConnection | None = None
        self._inner: Any = None

    def __aiter__(self) -> _PooledStream:
        return self

    async def __anext__(self) -> Any:
        if self._inner is None:
            pattern, data, timeout, metadata = self._args
            deadline = None if timeout is None else anyio.current_time() + timeout
            self._conn = await self._pool._take(deadline)
            self._inner = self._conn.handle.stream(pattern, data, timeout=timeout, metadata=metadata)
        try:
            return await self._inner.__anext__()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop waiting for the rest of the stream (synchronous)."""
        if self._inner is not None:
            self._inner.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn)

    async def aclose(self) -> None:
        """Stop waiting for the rest of the stream."""
        self.close()

    async def __aenter__(self) -> _PooledStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
