"""The sync client, written once against a :class:`Backend` (threads or gevent)."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

from sansio_tcpmsg import (
    ClientConnection,
    Codec,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionStatus,
    Event,
    Limits,
    NoHandlerError,
    PacketDropped,
    ProtocolErrorOccurred,
    RemoteError,
    RemoteErrorReceived,
    RequestTimedOut,
    RequestTimeout,
    ResponseReceived,
    StreamEnded,
    StreamItemReceived,
)

from ._backend import Backend, Empty, QueueLike, Task

__all__ = ["Client"]

log = logging.getLogger("tcpmsg.client")


class _Default:
    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()
"""Marks "use the client's default timeout"."""


class _Session:
    """One socket and the core connection on it; waiters by request id."""

    def __init__(self, conn: ClientConnection, sock: Any) -> None:
        self.conn = conn
        self.sock = sock
        self.waiters: dict[str, QueueLike] = {}
        self.reader: Task | None = None


class Client:
    """A client multiplexing many calls (from many threads or greenlets) on one socket.

    Use ``with connect(...) as client:``; see the bindings contract for every option.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 3000,
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
        backend: Backend,
    ) -> None:
        self.host, self.port = host, port
        self.tls, self.server_hostname = tls, server_hostname
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retries, self.retry_delay = retries, retry_delay
        self.limits, self.codec, self.on_status = limits, codec, on_status
        self._b = backend
        self._lock = backend.lock()  # around every core call
        self._connect_lock = backend.lock()
        self._write_lock = backend.lock()
        self._status_lock = backend.lock()
        self._session: _Session | None = None
        self._status = ConnectionStatus.DISCONNECTED
        self._ever_connected = False

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
        """Open the connection now (calls open it lazily otherwise); raises ``OSError``."""
        self._open()

    def close(self) -> None:
        """Close the connection; every pending call fails with ``ConnectionClosedError``."""
        with self._connect_lock:
            session, self._session = self._session, None
        if session is None:
            return
        self._core(session, session.conn.close)
        try:
            self._b.shutdown(session.sock, socket.SHUT_RDWR)
        except OSError:
            pass
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
            if self._ever_connected:
                self._set_status(ConnectionStatus.RECONNECTING)
            delay = self.retry_delay
            for attempt in range(self.retries + 1):
                try:
                    sock = self._b.connect(self.host, self.port, self.connect_timeout,
                                           self.tls, self.server_hostname)
                    break
                except OSError as exc:
                    if attempt == self.retries:
                        self._set_status(ConnectionStatus.DISCONNECTED)
                        raise
                    log.info("connecting to %s:%s failed (%s); retrying", self.host, self.port, exc)
                    self._b.sleep(delay)
                    delay = min(delay * 2, 2.0)
            session = _Session(ClientConnection(limits=self.limits, codec=self.codec), sock)
            self._session = session
            session.reader = self._b.spawn(self._read_loop, session)
            self._ever_connected = True
            log.info("connected to %s:%s", self.host, self.port)
            self._set_status(ConnectionStatus.CONNECTED)
            return session

    # -- the pump ---------------------------------------------------------------------

    def _core(self, session: _Session, fn: Callable[..., object], *args: Any) -> None:
        """Call the core under the lock, then write its bytes and dispatch its events."""
        with self._lock:
            fn(*args)
            out = session.conn.data_to_send()
            events = session.conn.events_received()
        if out:
            self._write(session, out)
        self._dispatch(session, events)

    def _write(self, session: _Session, data: bytes) -> bool:
        try:
            with self._write_lock:
                session.sock.sendall(data)
            return True
        except OSError as exc:
            log.info("connection lost while writing: %s", exc)
            self._core(session, session.conn.receive_eof)
            try:
                self._b.shutdown(session.sock, socket.SHUT_RDWR)
            except OSError:
                pass
            return False

    def _read_loop(self, session: _Session) -> None:
        conn, sock, b = session.conn, session.sock, self._b
        while not conn.closed:
            with self._lock:
                timer = conn.get_timer()
            try:
                if not b.wait_readable(sock, None if timer is None else timer - b.monotonic()):
                    self._core(session, conn.handle_timer, b.monotonic())
                    continue
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                self._core(session, conn.receive_data, data, b.monotonic())
            else:
                self._core(session, conn.receive_eof)
        sock.close()
        log.info("disconnected from %s:%s", self.host, self.port)
        self._set_status(ConnectionStatus.DISCONNECTED, session)

    def _dispatch(self, session: _Session, events: list[Event]) -> None:
        waiters = session.waiters
        for ev in events:
            if isinstance(ev, StreamItemReceived):
                waiter = waiters.get(ev.request_id)
                if waiter is not None:
                    waiter.put(("item", ev.value))
            elif isinstance(ev, ResponseReceived):
                self._resolve(waiters, ev.request_id, ("value", ev.value))
            elif isinstance(ev, StreamEnded):
                self._resolve(waiters, ev.request_id, ("end", None))
            elif isinstance(ev, RemoteErrorReceived):
                remote = NoHandlerError(ev.error) if ev.no_handler else RemoteError(ev.error)
                self._resolve(waiters, ev.request_id, ("error", remote))
            elif isinstance(ev, RequestTimedOut):
                self._resolve(waiters, ev.request_id, ("error", RequestTimeout("request timed out")))
            elif isinstance(ev, ConnectionClosed):
                for request_id in ev.failed:
                    error = ConnectionClosedError(f"connection closed: {ev.error or 'closed'}")
                    self._resolve(waiters, request_id, ("error", error))
            elif isinstance(ev, ProtocolErrorOccurred):
                log.warning("protocol error from server: %s", ev.error)
            elif isinstance(ev, PacketDropped):
                log.debug("dropped packet (%s): %r", ev.reason, ev.packet)

    @staticmethod
    def _resolve(waiters: dict[str, QueueLike], request_id: str, outcome: tuple[str, Any]) -> None:
        waiter = waiters.pop(request_id, None)
        if waiter is not None:
            waiter.put(outcome)

    # -- calls ------------------------------------------------------------------------

    def _start(self, pattern: Any, data: Any, timeout: float | None, metadata: Any,
               stream: bool) -> tuple[_Session, str, QueueLike, float | None]:
        if timeout is DEFAULT:
            timeout = self.timeout
        waiter = self._b.queue()
        for attempt in range(2):
            session = self._open()
            try:
                with self._lock:
                    deadline = None if timeout is None else self._b.monotonic() + timeout
                    request_id = session.conn.send_request(
                        pattern, data, deadline=deadline, metadata=metadata, stream=stream)
                    session.waiters[request_id] = waiter
                    out = session.conn.data_to_send()
                break
            except ConnectionClosedError:
                if attempt:
                    raise
        self._write(session, out)
        return session, request_id, waiter, deadline

    def _wait(self, session: _Session, waiter: QueueLike, deadline: float | None) -> tuple[str, Any]:
        b = self._b
        while True:
            wait = None if deadline is None else max(deadline - b.monotonic(), 0.0) + 0.002
            try:
                outcome: tuple[str, Any] = waiter.get(timeout=wait)
                return outcome
            except Empty:
                if session.conn.closed:
                    return "error", ConnectionClosedError("connection closed")
                self._core(session, session.conn.handle_timer, b.monotonic())

    def send(self, pattern: Any, data: Any, *, timeout: float | None = DEFAULT,
             metadata: Any = None) -> Any:
        """Send a request and return its reply's value (see the contract for errors)."""
        session, _, waiter, deadline = self._start(pattern, data, timeout, metadata, False)
        kind, value = self._wait(session, waiter, deadline)
        if kind == "error":
            raise value
        return value

    def stream(self, pattern: Any, data: Any, *, timeout: float | None = DEFAULT,
               metadata: Any = None) -> Iterator[Any]:
        """Send a request and iterate the values of its streamed reply.

        ``timeout`` bounds the whole stream; leaving the loop early cancels the request.
        """
        session, request_id, waiter, deadline = self._start(pattern, data, timeout, metadata, True)
        return self._iterate(session, request_id, waiter, deadline)

    def _iterate(self, session: _Session, request_id: str, waiter: QueueLike,
                 deadline: float | None) -> Iterator[Any]:
        try:
            while True:
                kind, value = self._wait(session, waiter, deadline)
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

    def emit(self, pattern: Any, data: Any, *, metadata: Any = None) -> None:
        """Send an event; returns once the frame is handed to the socket."""
        session = self._open()
        with self._lock:
            session.conn.emit(pattern, data, metadata=metadata)
            out = session.conn.data_to_send()
        if not self._write(session, out):
            raise ConnectionClosedError("connection closed while sending the event")
