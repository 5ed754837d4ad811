"""The pooled sync client: several single-connection clients, a core Balancer deciding.

``connect(endpoints=[...])`` (or any pool option) gives a :class:`PooledClient`. It owns
one single-connection :class:`~tcpmsg_sync.Client` per pooled connection (of the same
backend class) and carries out what :class:`sansio_tcpmsg.Balancer` decides: which
connection takes a call, when to open, close or replace one, when to resolve names.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

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

from ._backends.base import FutureLike
from ._calls import DEFAULT, windowed

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["PooledClient", "pooled"]

log = logging.getLogger("tcpmsg.client")

def pooled(member: type[Client], host: str | None, port: int | None,
           options: dict[str, Any]) -> PooledClient | None:
    """The pooled client ``connect(...)`` asked for, or None for one plain connection."""
    targets = pool_targets(host, port, options)
    return None if targets is None else PooledClient(member, targets, **options)


class PooledClient:
    """Calls spread over connections to many endpoints, with failover.

    Made by ``connect(endpoints=[(host, port), ...], pool_size=1, ...)`` (threads and
    gevent); the same methods as the single-connection client, plus ``idempotent=True``
    on ``send`` and :attr:`endpoints`. ``on_status`` receives an
    :class:`~sansio_tcpmsg.EndpointInfo` each time an endpoint changes state.
    """

    def __init__(self, member: type[Client], targets: list[tuple[str, int]], **options: Any) -> None:
        pool = pool_options(targets, inspect.signature(member).parameters, **options)
        b = self._b = member.backend
        self._member = member
        self._options = pool.member_options
        self.timeout, self.connect_timeout = pool.timeout, pool.connect_timeout
        self.on_status = pool.on_status
        self.lazy = pool.lazy
        self._resolve = pool.resolver or b.resolve
        self._new_balancer = pool.new_balancer
        self._balancer = self._new_balancer(now=b.monotonic())
        self._lock = b.lock()
        self._changed = b.event()  # set on every change; callers waiting for a connection
        self._wake = b.event()  # the timer keeper re-reads the timer
        self._keeper: Any = None
        self._tasks = 0  # background connects, closes and lookups still running
        self._idle = b.event()
        self._idle.set()
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
        with self._lock:
            return self._balancer.endpoints

    def __enter__(self) -> PooledClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Start connecting to every endpoint; return once one connection is live (with
        ``lazy=True``, at once: connections are made in the background meanwhile).

        Raises ``ConnectionClosedError`` (an ``OSError``) naming every endpoint if each
        one failed its first attempt (and stops trying: ``connect()`` again starts over).
        """
        if self._balancer.closed:  # closed, or a failed connect: start afresh
            self._balancer = self._new_balancer(now=self._b.monotonic())
            self._closing = False
        if self._keeper is None:
            actions = self._feed(None)
            self._keeper = self._b.spawn(self._keep)
            self._carry(actions)
        if self.lazy:  # calls wait for a connection (or fail) as they do after a loss
            return
        try:
            conn = self._pick(None, None)
        except BaseException:
            self.close()
            raise
        self._release(conn)

    def close(self) -> None:
        """Close every connection; pending calls fail with ``ConnectionClosedError``."""
        with self._lock:
            self._closing = True
            self._balancer.close()
            actions = self._balancer.actions()
            self._changed.set()
        self._wake.set()
        keeper, self._keeper = self._keeper, None
        for action in actions:
            if isinstance(action, Close):
                action.conn.handle.close()
        if keeper is not None:
            keeper.join(5.0)
        self._idle.wait((self.connect_timeout or 10.0) + 5.0)
        self._status = ConnectionStatus.DISCONNECTED

    # -- carrying out the balancer's decisions ---------------------------------------------

    def _feed(self, fn: Callable[..., object] | None, *args: Any) -> list[Action]:
        """Give the balancer an input (under the lock); its actions, to carry out after."""
        with self._lock:
            if fn is not None:
                fn(*args)
            self._balancer.handle_timer(self._b.monotonic())
            actions = self._balancer.actions()
            self._status = self._balancer.status(self._status)
            self._changed.set()
        self._wake.set()
        return actions

    def _carry(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, EndpointChanged):
                self._report(action.endpoint)
            elif isinstance(action, Connect):
                self._task(self._open, action.conn)
            elif isinstance(action, Close):
                if self._closing:  # close() waits for it
                    action.conn.handle.close()
                else:
                    self._task(action.conn.handle.close)
            elif isinstance(action, Resolve):
                self._task(self._lookup, action.host, action.port)

    def _task(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` in the background; ``close`` waits for what still runs."""
        def run() -> None:
            try:
                fn(*args)
            finally:
                with self._lock:
                    self._tasks -= 1
                    if not self._tasks:
                        self._idle.set()

        with self._lock:
            self._tasks += 1
            self._idle.clear()
        self._b.spawn(run)

    def _keep(self) -> None:
        """The timer keeper: wakes when the balancer's timer is due (backoff, age, names)."""
        b = self._b
        while not self._closing:
            with self._lock:
                timer = self._balancer.get_timer()
                self._wake.clear()
            wait = None if timer is None else max(timer - b.monotonic(), 0.0)
            if wait is None or wait > 0:
                self._wake.wait(wait)
            if not self._closing:
                self._carry(self._feed(None))

    def _open(self, conn: PooledConnection) -> None:
        member = self._member(conn.host, conn.port, on_status=functools.partial(self._member_status, conn),
                              **self._options)
        if self._options.get("server_hostname") is None:
            member.server_hostname = conn.name
        member._reconnects = False
        conn.handle = member
        try:
            member.connect()
        except OSError as exc:
            log.info("connecting to %s:%s failed: %s", conn.host, conn.port, exc)
            self._carry(self._feed(self._balancer.connect_failed, conn, self._b.monotonic(),
                                   f"{type(exc).__name__}: {exc}"))
            return
        self._carry(self._feed(self._balancer.connected, conn, self._b.monotonic()))

    def _member_status(self, conn: PooledConnection, status: ConnectionStatus) -> None:
        if status is ConnectionStatus.DISCONNECTED:
            self._lost(conn)

    def _lost(self, conn: PooledConnection) -> None:
        self._carry(self._feed(self._balancer.lost, conn, self._b.monotonic()))

    def _lookup(self, host: str, port: int) -> None:
        try:
            found = list(self._resolve(host, port))
        except OSError as exc:
            log.warning("resolving %s failed: %s", host, exc)
            self._carry(self._feed(self._balancer.resolve_failed, host, port, str(exc),
                                   self._b.monotonic()))
            return
        self._carry(self._feed(self._balancer.resolved, host, port, found, self._b.monotonic()))

    def _report(self, info: EndpointInfo) -> None:
        log.info("endpoint %s:%s %s", info.host, info.port, info.state.value)
        if self.on_status is not None:
            try:
                self.on_status(info)
            except Exception:
                log.exception("status callback failed")

    # -- calls --------------------------------------------------------------------------

    def _pick(self, deadline: float | None, avoid: PooledConnection | None) -> PooledConnection:
        """A live connection for one call, waiting (bounded) while first attempts run."""
        b = self._b
        limit = b.monotonic() + (self.connect_timeout or 10.0) * 2
        if deadline is not None:
            limit = min(limit, deadline)
        while True:
            with self._lock:
                if self._closing:
                    raise ConnectionClosedError("the client is closed")
                conn = self._balancer.pick(b.monotonic(), avoid)
                if conn is not None:
                    return conn
                why = self._balancer.unavailable()
                self._changed.clear()
            if why is not None:
                raise ConnectionClosedError(why)
            left = limit - b.monotonic()
            if left <= 0:
                raise ConnectionClosedError("no connection became live in time")
            self._changed.wait(left)

    def _release(self, conn: PooledConnection) -> None:
        with self._lock:
            self._balancer.release(conn)
            actions = self._balancer.actions()
        if actions:
            self._carry(actions)

    def _released(self, conn: PooledConnection, _future: object) -> None:
        self._release(conn)

    def _begin(self, pattern: Any, data: Any, timeout: Any, metadata: Any, stream: bool,
               avoid: PooledConnection | None = None,
               ) -> tuple[PooledConnection, tuple[Any, str, Any, float | None]]:
        """Send on some connection; a call that cannot be handed to one goes to the next."""
        b = self._b
        if timeout is DEFAULT:
            timeout = self.timeout
        deadline = None if timeout is None else b.monotonic() + timeout
        while True:
            conn = self._pick(deadline, avoid)
            left = None if deadline is None else max(deadline - b.monotonic(), 0.0)
            waiter = b.queue() if stream else b.waiter()
            try:
                session, request_id, call_deadline = conn.handle._start(
                    pattern, data, left, metadata, stream, waiter)
                return conn, (session, request_id, waiter, call_deadline)
            except ConnectionClosedError:
                self._release(conn)
                self._lost(conn)
                avoid = conn
            except BaseException:
                self._release(conn)
                raise

    def send(self, pattern: Any, data: Any = None, *, timeout: Any = DEFAULT, metadata: Any = None,
             idempotent: bool = False) -> Any:
        """Send a request on one live connection and return its reply's value.

        With ``idempotent=True`` a request whose connection dies before the reply is
        sent once more on another connection; otherwise it raises ``ConnectionClosedError``.
        """
        resent = False
        failed = None
        while True:
            conn, (session, request_id, waiter, deadline) = self._begin(
                pattern, data, timeout, metadata, False, failed)
            try:
                kind, value = conn.handle._wait(session, waiter, request_id, deadline)
            finally:
                self._release(conn)
            if kind != "error":
                return value
            if not isinstance(value, ConnectionClosedError) or self._closing:
                raise value
            self._lost(conn)
            if not may_resend(sent=True, idempotent=idempotent, resent=resent):
                raise value
            resent, failed = True, conn
            if deadline is not None:
                timeout = max(deadline - self._b.monotonic(), 0.0)

    def submit(self, pattern: Any, data: Any = None, *, timeout: Any = DEFAULT,
               metadata: Any = None) -> FutureLike:
        """Send a request on one live connection and return at once a future of its
        reply (see the single-connection client's ``submit``); not re-sent if its
        connection dies."""
        avoid = None
        while True:
            conn = self._pick(None, avoid)
            try:
                future: FutureLike = conn.handle.submit(pattern, data, timeout=timeout,
                                                        metadata=metadata)
            except ConnectionClosedError:  # not sent: the next connection takes it
                self._release(conn)
                self._lost(conn)
                avoid = conn
                continue
            except BaseException:
                self._release(conn)
                raise
            future.add_done_callback(functools.partial(self._released, conn))
            return future

    def map(self, pattern: Any, datas: Iterable[Any], *, timeout: Any = DEFAULT,
            metadata: Any = None, window: int = 64) -> Iterator[Any]:
        """Send ``pattern`` with each item of ``datas`` (at most ``window`` in flight, over
        the pool's connections) and yield the replies in order."""
        return windowed(self.submit, pattern, datas, timeout, metadata, window)

    def stream(self, pattern: Any, data: Any = None, *, timeout: Any = DEFAULT,
               metadata: Any = None) -> Iterator[Any]:
        """Send a request and iterate its streamed reply, all on one connection."""
        conn, (session, request_id, waiter, deadline) = self._begin(pattern, data, timeout, metadata, True)
        return self._iterate(conn, conn.handle._iterate(session, request_id, waiter, deadline))

    def _iterate(self, conn: PooledConnection, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        finally:
            self._release(conn)

    def emit(self, pattern: Any, data: Any = None, *, metadata: Any = None) -> None:
        """Send an event on one live connection."""
        avoid = None
        while True:
            conn = self._pick(None, avoid)
            try:
                session = conn.handle._session
                if session is not None and not session.conn.closed:
                    conn.handle.emit(pattern, data, metadata=metadata)
                    return
            finally:
                self._release(conn)
            self._lost(conn)  # not sent: the next connection takes it
            avoid = conn


