"""The sync client, written once against a :class:`Backend` (threads or gevent)."""

from __future__ import annotations

import contextlib
import inspect
import logging
import select
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

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

from ._backends.base import Backend, Empty, FutureLike, QueueLike, Task
from ._calls import DEFAULT, windowed
from ._pool import pooled
from ._tls import TlsLayer

__all__ = ["Client"]

log = logging.getLogger("tcpmsg.client")


_LEAD: tuple[str, Any] = ("lead", None)
"""Put in a waiting caller's queue: the socket has no reader, become it."""

_IDLE = 0.05  # seconds without calls before the background reader watches the socket
_NEVER = float("inf")


class _Sink(Protocol):
    """Where the reader delivers a call's outcomes: a caller's queue, or a future."""

    def put(self, item: Any) -> None: ...


class _Submitted:
    """A submitted call's sink: its outcome resolves its future; no thread waits for it."""

    __slots__ = ("future",)

    def __init__(self, future: FutureLike) -> None:
        self.future = future

    def put(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == "error":
            self.future.set_exception(value)
        else:
            self.future.set_result(value)


def _take(waiter: QueueLike) -> tuple[str, Any] | None:
    """A queued outcome (not a stale ``_LEAD``), or None."""
    while True:
        try:
            outcome: tuple[str, Any] = waiter.get(False)
        except Empty:
            return None
        if outcome is not _LEAD:
            return outcome


class _Session:
    """One socket and the core connection on it; waiters by request id.

    Threads: callers waiting for a reply take turns reading the socket themselves (one
    reader at a time, the others wait on their queue), so a reply wakes no other thread;
    the background reader watches the socket only while no call is waiting. gevent: the
    background reader always reads and switches each reply's caller in. Writes are
    combined: one writer at a time, with what others queued meanwhile; a call submitted
    while others are in flight hands its bytes to the writer task instead of writing
    them, so one thread submitting many calls makes one write per batch.
    """

    def __init__(self, conn: ClientConnection, sock: Any, tls: TlsLayer | None,
                 backend: Backend) -> None:
        self.conn = conn
        self.sock = sock
        self.tls = tls  # used under the client's lock only
        self.waiters: dict[str, _Sink] = {}
        self.submitted: set[_Sink] = set()  # submitted calls still pending (no one waits)
        self.followers: dict[QueueLike, str] = {}  # callers blocked on their queue
        self.reading = False
        #: When the reader wakes at the latest (the core's timer when it began waiting):
        #: a caller whose deadline is not earlier needs no timer of its own.
        self.armed = _NEVER
        self.writing = False
        self.out: list[bytes] = []
        self.handed = False  # the writer task owns the write of ``out``
        self.flush = backend.event()  # wakes the writer task
        self.writer: Task | None = None
        self.last_call = 0.0
        self.lost = False
        self.wake = backend.event()  # wakes the background reader (closing, a submit)
        self.reader: Task | None = None


class Client:
    """A client multiplexing many calls (from many threads or greenlets) on one socket.

    Use ``with connect(...) as client:``; see the bindings contract for every option.
    ``tcpmsg_threads.connect`` and ``tcpmsg_gevent.connect`` are its subclasses, each
    with its backend.
    """

    #: The primitives (sockets, locks, tasks) this client runs on.
    backend: ClassVar[Backend]

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
        connect_timeout: float | None = 10.0,
        retries: int = 0,
        retry_delay: float = 0.1,
        limits: Limits | None = None,
        codec: Codec | None = None,
        on_status: Callable[[ConnectionStatus], object] | None = None,
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
        self.host, self.port = host or "localhost", 3000 if port is None else port
        self.tls, self.server_hostname = tls, server_hostname
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retries, self.retry_delay = retries, retry_delay
        self.limits, self.codec, self.on_status = limits, codec, on_status
        self.on_dispatch = on_dispatch
        self.keepalive = keepalive
        self.lazy = lazy
        self._sockopts = keepalive_options(keepalive)
        backend = self._b = self.backend
        self._lock = backend.lock()  # around every core call
        self._connect_lock = backend.lock()
        self._status_lock = backend.lock()
        self._session: _Session | None = None
        self._status = ConnectionStatus.DISCONNECTED
        self._ever_connected = False
        self._reconnects = True  # False in a pool: a lost connection is replaced, not reopened

    # -- life cycle -------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        """The current connection status."""
        return self._status

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now (``with`` does it), or raise ``OSError``; with
        ``lazy=True``, open nothing: the first call will. A call on a connection that is
        not open, or was lost, opens it first either way."""
        if not self.lazy:
            self._open()

    def close(self) -> None:
        """Close the connection; every pending call fails with ``ConnectionClosedError``."""
        with self._connect_lock:
            session, self._session = self._session, None
        if session is None:
            return
        self._core(session, session.conn.close)
        session.wake.set()
        session.flush.set()
        with contextlib.suppress(OSError):
            session.sock.shutdown(socket.SHUT_RDWR)
        if session.reader is not None:
            session.reader.join(5.0)
        session.sock.close()
        self._set_status(ConnectionStatus.DISCONNECTED)

    def _set_status(self, status: ConnectionStatus, session: _Session | None = None) -> None:
        with self._status_lock:
            if status is self._status or (session is not None and self._session not in (session, None)):
                return
            self._status = status
        log.debug("status: %s", status.value)
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                log.exception("status callback failed")

    def _open(self) -> _Session:
        with self._connect_lock:
            session = self._session
            if session is not None and not session.conn.closed:
                return session
            if self._ever_connected and not self._reconnects:
                raise ConnectionClosedError(f"connection to {self.host}:{self.port} closed")
            if self._ever_connected:
                self._set_status(ConnectionStatus.RECONNECTING)
            delay = self.retry_delay
            for attempt in range(self.retries + 1):
                try:
                    sock = self._b.connect(self.host, self.port, self.connect_timeout)
                    apply_options(sock, self._sockopts)
                    tls = self._start_tls(sock)
                    break
                except OSError as exc:
                    error = connect_error(exc, self.host, self.port, tls=self.tls is not None,
                                          timeout=self.connect_timeout)
                    if attempt == self.retries:
                        self._set_status(ConnectionStatus.DISCONNECTED)
                        raise error from exc
                    log.log(*LOG.RETRYING, error)
                    self._b.sleep(delay)
                    delay = min(delay * 2, RETRY_DELAY_CAP)
            session = _Session(ClientConnection(limits=self.limits, codec=self.codec, on_dispatch=self.on_dispatch), sock, tls,
                               self._b)
            self._session = session
            session.reader = self._b.spawn(self._read_loop, session)
            self._ever_connected = True
            log.log(*LOG.CONNECTED, self.host, self.port)
            self._set_status(ConnectionStatus.CONNECTED)
            return session

    def _start_tls(self, sock: Any) -> TlsLayer | None:
        """With ``tls``: the handshake on the new socket (closed if it fails)."""
        if self.tls is None:
            return None
        layer = TlsLayer(self.tls, server_side=False,
                         server_hostname=self.server_hostname or self.host)
        try:
            layer.handshake(sock, self.connect_timeout)
        except BaseException:
            sock.close()
            raise
        return layer

    # -- the pump ---------------------------------------------------------------------

    def _core(self, session: _Session, fn: Callable[..., object], *args: Any) -> None:
        """Call the core under the lock, then dispatch its events and write its bytes."""
        with self._lock:
            fn(*args)
            out = self._take_out(session)
            events = session.conn.events_received()
        if events:
            self._dispatch(session, events)
        if out:
            self._write(session, out)

    def _take_out(self, session: _Session, defer: bool = False) -> bytes | None:
        """(Under the lock.) The core's bytes if this caller is to write them, else b""
        (queued behind a write in progress), or None: with ``defer``, handed to the
        writer task (the caller then sets ``session.flush``)."""
        out = session.conn.data_to_send()
        if session.tls is not None:
            out = session.tls.encrypt(out, session.conn.closed)
        if out:
            if session.writing:
                session.out.append(out)
                return b""
            session.writing = True
            if defer:
                session.out.append(out)
                self._give_writer(session)
                return None
        return out

    def _give_writer(self, session: _Session) -> None:
        """(Under the lock, owning the write.) Hand the write of ``out`` to the writer
        task, started with the first hand-over; the caller then sets ``session.flush``."""
        session.handed = True
        if session.writer is None:
            session.writer = self._b.spawn(self._write_loop, session)

    def _write_loop(self, session: _Session) -> None:
        """The writer task: writes what deferred writes handed over, until the end."""
        while True:
            session.flush.wait()
            session.flush.clear()
            with self._lock:
                handed, session.handed = session.handed, False
            if handed:
                self._write(session, b"", batch=False)
            if session.conn.closed:
                return

    def _write(self, session: _Session, data: bytes, batch: bool = True) -> bool:
        """Write ``data`` and whatever other callers queued meanwhile; False if it failed."""
        if batch:
            try:
                self._b.before_write()
            except BaseException:  # interrupted (gevent.Timeout, kill): the writer task writes
                with self._lock:
                    session.out.insert(0, data)
                    self._give_writer(session)
                session.flush.set()
                raise
        with self._lock:
            if session.out:
                data = b"".join([data, *session.out])
                session.out.clear()
        while True:
            try:
                sent = session.sock.send(data)  # gevent's sendall asks the OS for SO_SNDBUF first
                if sent < len(data):
                    session.sock.sendall(memoryview(data)[sent:])
            except OSError as exc:
                self._broken(session, exc)
                return False
            except BaseException:  # interrupted mid-write: what reached the peer is unknown
                self._broken(session, "interrupted while writing")
                raise
            with self._lock:
                if not session.out:
                    session.writing = False
                    return True
                data = b"".join(session.out)
                session.out.clear()

    def _broken(self, session: _Session, why: object) -> None:
        """A write failed or stopped midway: the connection is lost, its calls fail."""
        with self._lock:
            session.writing = False
            session.out.clear()
        log.info("connection lost while writing: %s", why)
        self._core(session, session.conn.receive_eof)
        with contextlib.suppress(OSError):
            session.sock.shutdown(socket.SHUT_RDWR)

    def _read_step(self, session: _Session) -> None:
        """(With the reader role.) Read once, or handle the timer, and pump the core."""
        conn, sock, b = session.conn, session.sock, self._b
        with self._lock:
            timer = conn.get_timer()
            if session.submitted:  # a later submit may bring an earlier deadline: look soon
                soon = b.monotonic() + _IDLE
                timer = soon if timer is None else min(timer, soon)
            session.armed = _NEVER if timer is None else timer
        try:
            if timer is not None and not b.wait_readable(sock, timer - b.monotonic()):
                self._core(session, conn.handle_timer, b.monotonic())
                return
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._core(session, conn.receive_eof)
        elif session.tls is None:
            self._core(session, conn.receive_data, data, b.monotonic())
        else:
            self._core(session, session.tls.receive, conn, data, b.monotonic(), log,
                       f"{self.host}:{self.port}")

    def _catch_up(self, session: _Session) -> None:
        """Before a call on a connection nobody is reading: if the server wrote meanwhile
        (its close, typically: a draining server closes right after a reply), read that
        first, so the call goes on a fresh connection rather than into a closed one."""
        with self._lock:
            if session.reading or session.conn.closed:
                return
            session.reading = True
        try:
            if select.select([session.sock], [], [], 0)[0]:  # a check, not a wait: any backend
                self._read_step(session)
        except (OSError, ValueError):  # a closed socket: the read loop reports it
            pass
        finally:
            self._release(session)

    def _release(self, session: _Session) -> None:
        """Give up the reader role; wake a caller still waiting to take it over."""
        with self._lock:
            session.reading = False
            session.last_call = self._b.monotonic()
            nxt = self._next_reader(session)
        if nxt is not None:
            nxt.put(_LEAD)
        elif session.submitted:
            session.wake.set()  # the background reader reads for submitted calls
        if session.conn.closed:
            self._lose(session)

    def _lose(self, session: _Session) -> None:
        """Once the connection is closed: close the socket, report the status."""
        with self._lock:
            lost, session.lost = session.lost, True
        if not lost:
            session.flush.set()  # the writer task ends with the connection
            session.sock.close()
            log.info("disconnected from %s:%s", self.host, self.port)
            self._set_status(ConnectionStatus.DISCONNECTED, session)

    @staticmethod
    def _next_reader(session: _Session) -> QueueLike | None:
        """(Under the lock.) A blocked caller whose reply is still to come, if none reads."""
        if session.reading or session.conn.closed:
            return None
        waiters = session.waiters
        for waiter, request_id in session.followers.items():
            if request_id in waiters:
                return waiter
        return None

    def _read_loop(self, session: _Session) -> None:
        """The background reader: watches the socket while no caller does (gevent:
        always); when it ends, every call still waiting has failed."""
        b = self._b
        always = not b.callers_read
        try:
            while not session.conn.closed:
                with self._lock:
                    lead = not session.reading and (
                        always
                        or bool(session.submitted)
                        or b.monotonic() - session.last_call > _IDLE
                        or self._next_reader(session) is not None)
                    session.reading = session.reading or lead
                if not lead:
                    session.wake.wait(_IDLE)
                    session.wake.clear()  # what set it is looked at on the next turn
                    continue
                try:
                    self._read_step(session)
                finally:
                    self._release(session)
        finally:
            if not session.conn.closed:  # killed: callers that wait on it must not hang
                self._core(session, session.conn.close)
            self._lose(session)

    def _dispatch(self, session: _Session, events: list[Event]) -> None:
        waiters = session.waiters
        for ev in events:
            if isinstance(ev, StreamItemReceived):
                waiter = waiters.get(ev.request_id)
                if waiter is not None:
                    waiter.put(("item", ev.value))
            elif isinstance(ev, ResponseReceived):
                self._resolve(session, ev.request_id, ("value", ev.value))
            elif isinstance(ev, StreamEnded):
                self._resolve(session, ev.request_id, ("end", None))
            elif isinstance(ev, (RemoteErrorReceived, RequestTimedOut)):
                self._resolve(session, ev.request_id, ("error", ev.exception()))
            elif isinstance(ev, ConnectionClosed):
                for request_id in ev.failed:
                    self._resolve(session, request_id, ("error", self._closed(session, ev.exception())))
            elif isinstance(ev, ProtocolErrorOccurred):
                log.log(*LOG.PROTOCOL_ERROR, (self.host, self.port), ev.error)
            elif isinstance(ev, PacketDropped):
                log.log(*LOG.PACKET_DROPPED, (self.host, self.port), ev.reason)

    @staticmethod
    def _closed(session: _Session, exc: ConnectionClosedError) -> ConnectionClosedError:
        """``exc``, naming the TLS error that ended the connection if there was one."""
        tls_error = session.tls.error if session.tls is not None else None
        if tls_error is None:
            return exc
        named = ConnectionClosedError(f"{exc} (TLS: {tls_error})")
        named.__cause__ = tls_error
        return named

    @staticmethod
    def _resolve(session: _Session, request_id: str, outcome: tuple[str, Any]) -> None:
        waiter = session.waiters.pop(request_id, None)
        if waiter is not None:
            session.submitted.discard(waiter)
            waiter.put(outcome)

    # -- calls ------------------------------------------------------------------------

    def _start(self, pattern: Any, data: Any, timeout: float | None, metadata: Any,
               stream: bool, waiter: _Sink) -> tuple[_Session, str, float | None]:
        """Send a request whose outcomes go to ``waiter``; a submitted call's wakes the
        background reader if no one reads, and is written by the writer task if other
        submitted calls are in flight."""
        if timeout is DEFAULT:
            timeout = self.timeout
        submitted = isinstance(waiter, _Submitted)
        defer = False
        current = self._session
        if current is not None and not current.reading:
            self._catch_up(current)
        for attempt in range(2):
            session = current if current is not None and not current.conn.closed else self._open()
            try:
                with self._lock:
                    deadline = None if timeout is None else self._b.monotonic() + timeout
                    request_id = session.conn.send_request(
                        pattern, data, deadline=deadline, timeout=timeout, metadata=metadata,
                        stream=stream)
                    session.waiters[request_id] = waiter
                    if submitted:
                        # Others in flight: their replies will come, and the writer
                        # task writes this one with the next calls submitted meanwhile.
                        defer = bool(session.submitted)
                        session.submitted.add(waiter)
                        submitted = not session.reading
                    out = self._take_out(session, defer)
                break
            except ConnectionClosedError as exc:
                if attempt:
                    named = self._closed(session, exc)
                    raise named from named.__cause__
                current = None
        if submitted:
            session.wake.set()
        if out:
            self._write(session, out)
        elif out is None:
            session.flush.set()
        return session, request_id, deadline

    def _wait(self, session: _Session, waiter: QueueLike, request_id: str,
              deadline: float | None) -> tuple[str, Any]:
        b, lock = self._b, self._lock
        reads = b.callers_read
        while True:
            with lock:
                lead = reads and not session.reading and not session.conn.closed
                if lead:
                    # What the last reader delivered is queued before it let go.
                    outcome = _take(waiter)
                    if outcome is not None:
                        return outcome
                    session.reading = True
                else:
                    if reads:
                        session.followers[waiter] = request_id
                    # The reader wakes by the core's timer: if that comes no later than
                    # this call's deadline, the reader times the call out, no timer here.
                    timed = deadline is not None and deadline < session.armed
            if lead:
                try:
                    self._read_step(session)
                finally:
                    self._release(session)
                outcome = _take(waiter)
                if outcome is None:
                    continue
            else:
                wait = None if not timed or deadline is None else max(deadline - b.monotonic(), 0.0) + 0.002
                try:
                    outcome = waiter.get(timeout=wait)
                except Empty:
                    outcome = _LEAD
                    if session.conn.closed:
                        outcome = "error", ConnectionClosedError("connection closed")
                    else:
                        self._core(session, session.conn.handle_timer, b.monotonic())
                if reads:
                    with lock:
                        del session.followers[waiter]
                        nxt = self._next_reader(session) if outcome is not _LEAD else None
                    if nxt is not None:
                        nxt.put(_LEAD)
            if outcome is not _LEAD:
                return outcome

    def send(self, pattern: Any, data: Any = None, *, timeout: float | None = DEFAULT,
             metadata: Any = None) -> Any:
        """Send a request and return its reply's value (see the contract for errors)."""
        waiter = self._b.waiter()
        session, request_id, deadline = self._start(pattern, data, timeout, metadata, False, waiter)
        kind, value = self._wait(session, waiter, request_id, deadline)
        if kind == "error":
            raise value
        return value

    def submit(self, pattern: Any, data: Any = None, *, timeout: float | None = DEFAULT,
               metadata: Any = None) -> FutureLike:
        """Send a request and return at once a future of its reply: many calls stay in
        flight from one thread (or greenlet), resolved by the client's reader.

        ``future.result(timeout=None)`` returns the reply's value or raises what
        :meth:`send` would (the call's ``timeout`` and the connection's end resolve
        every future). Threads: a ``concurrent.futures.Future``; gevent: a
        ``GreenFuture`` with the same ``result``, ``exception``, ``done`` and
        ``add_done_callback``. Errors before the request is sent (bad data, no
        connection) are raised here.
        """
        future = self._b.future()
        self._start(pattern, data, timeout, metadata, False, _Submitted(future))
        return future

    def map(self, pattern: Any, datas: Iterable[Any], *, timeout: float | None = DEFAULT,
            metadata: Any = None, window: int = 64) -> Iterator[Any]:
        """Send ``pattern`` with each item of ``datas`` (at most ``window`` calls in
        flight, from this one thread) and yield the replies in order; a failed call
        raises at its place. Leaving early leaves the calls in flight to end by
        themselves (reply or timeout)."""
        return windowed(self.submit, pattern, datas, timeout, metadata, window)

    def stream(self, pattern: Any, data: Any = None, *, timeout: float | None = DEFAULT,
               metadata: Any = None) -> Iterator[Any]:
        """Send a request and iterate the values of its streamed reply.

        ``timeout`` bounds the whole stream; leaving the loop early cancels the request.
        """
        waiter = self._b.queue()
        session, request_id, deadline = self._start(pattern, data, timeout, metadata, True, waiter)
        return self._iterate(session, request_id, waiter, deadline)

    def _iterate(self, session: _Session, request_id: str, waiter: QueueLike,
                 deadline: float | None) -> Iterator[Any]:
        try:
            while True:
                kind, value = self._wait(session, waiter, request_id, deadline)
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            with self._lock:
                session.conn.cancel(request_id)
                session.waiters.pop(request_id, None)

    def emit(self, pattern: Any, data: Any = None, *, metadata: Any = None) -> None:
        """Send an event; returns once the frame is handed to the socket (or queued
        behind a write in progress, which writes it)."""
        session = self._open()
        with self._lock:
            session.conn.emit(pattern, data, metadata=metadata)
            out = self._take_out(session)
        if out and not self._write(session, out):
            raise ConnectionClosedError("connection closed while sending the event")


# What ``inspect.signature(connect)`` and the docs show: __init__'s options, not __new__'s.
Client.__signature__ = inspect.signature(Client.__init__).replace(  # type: ignore[attr-defined]
    parameters=list(inspect.signature(Client.__init__).parameters.values())[1:])
