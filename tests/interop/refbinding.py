"""A deliberately small thread-based pump around the core, for the interop suite only.

It is NOT a binding of the project: it exists so the interop tests can be checked
against real NestJS before (or independently of) the real bindings. It is only used
when ``INTEROP_REF_BINDING=1`` (binding id ``ref``). It follows the shape of
``docs/bindings-contract.md`` closely enough for ``tests/facade.py``.
"""

from __future__ import annotations

import inspect
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

from sansio_tcpmsg import (
    ClientConnection,
    ConnectionClosedError,
    Limits,
    NoHandlerError,
    RemoteError,
    RequestTimeout,
    Router,
    ServerConnection,
)
from sansio_tcpmsg.events import (
    ConnectionClosed,
    EventReceived,
    RemoteErrorReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamItemReceived,
)

_DEFAULT = object()


class Client:
    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 timeout: float | None = 30.0, limits: Limits | None = None,
                 server_hostname: str | None = None, **_: Any) -> None:
        self.host, self.port, self.tls, self.timeout, self.limits = host, port, tls, timeout, limits
        self.server_hostname = server_hostname or host
        self._lock = threading.RLock()
        self._conn: ClientConnection | None = None
        self._sock: socket.socket | None = None
        self._waiters: dict[str, queue.Queue[tuple[str, Any]]] = {}

    def __enter__(self) -> Client:
        with self._lock:
            self._ensure()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._sock.close()

    def _ensure(self) -> None:
        if self._conn is not None and not self._conn.closed:
            return
        sock = socket.create_connection((self.host, self.port), timeout=10)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname)
        sock.settimeout(None)
        conn = ClientConnection(limits=self.limits)
        self._conn, self._sock = conn, sock
        threading.Thread(target=self._reader, args=(sock, conn), daemon=True).start()

    def _reader(self, sock: socket.socket, conn: ClientConnection) -> None:
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            with self._lock:
                if data:
                    conn.receive_data(data, time.monotonic())
                else:
                    conn.receive_eof()
                self._dispatch(conn)
                if conn.closed:
                    break
        try:
            sock.close()
        except OSError:
            pass

    def _dispatch(self, conn: ClientConnection) -> None:
        for ev in conn.events_received():
            if isinstance(ev, ResponseReceived):
                self._waiters.pop(ev.request_id).put(("value", ev.value))
            elif isinstance(ev, StreamItemReceived):
                self._waiters[ev.request_id].put(("item", ev.value))
            elif isinstance(ev, StreamEnded):
                self._waiters.pop(ev.request_id).put(("end", None))
            elif isinstance(ev, RemoteErrorReceived):
                cls = NoHandlerError if ev.no_handler else RemoteError
                self._waiters.pop(ev.request_id).put(("error", cls(ev.error)))
            elif isinstance(ev, ConnectionClosed):
                for rid in ev.failed:
                    q = self._waiters.pop(rid, None)
                    if q is not None:
                        q.put(("error", ConnectionClosedError("connection closed")))

    def _start(self, pattern: Any, data: Any, metadata: Any, stream: bool) -> tuple[str, Any]:
        q: queue.Queue[tuple[str, Any]] = queue.Queue()
        with self._lock:
            self._ensure()
            assert self._conn is not None and self._sock is not None
            rid = self._conn.send_request(pattern, data, metadata=metadata, stream=stream)
            self._waiters[rid] = q
            self._sock.sendall(self._conn.data_to_send())
        return rid, q

    def _get(self, rid: str, q: Any, deadline: float | None) -> tuple[str, Any]:
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return q.get(timeout=left)
        except queue.Empty:
            with self._lock:
                self._waiters.pop(rid, None)
                if self._conn is not None:
                    self._conn.cancel(rid)
            raise RequestTimeout(rid) from None

    def send(self, pattern: Any, data: Any, *, timeout: Any = _DEFAULT, metadata: Any = None) -> Any:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        rid, q = self._start(pattern, data, metadata, False)
        kind, value = self._get(rid, q, deadline)
        if kind == "error":
            raise value
        return value

    def stream(self, pattern: Any, data: Any, *, timeout: Any = _DEFAULT,
               metadata: Any = None) -> Iterator[Any]:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        rid, q = self._start(pattern, data, metadata, True)
        while True:
            kind, value = self._get(rid, q, deadline)
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value

    def emit(self, pattern: Any, data: Any, *, metadata: Any = None) -> None:
        with self._lock:
            self._ensure()
            assert self._conn is not None and self._sock is not None
            self._conn.emit(pattern, data, metadata=metadata)
            self._sock.sendall(self._conn.data_to_send())


def connect(host: str = "localhost", port: int = 3000, **kw: Any) -> Client:
    return Client(host, port, **kw)


class Server:
    def __init__(self, router: Router, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 limits: Limits | None = None, **_: Any) -> None:
        self.router, self.tls, self.limits = router, tls, limits
        self._lsock = socket.create_server((host, port))
        self.host, self.port = self._lsock.getsockname()[:2]
        self._socks: set[socket.socket] = set()
        self._closed = False

    def __enter__(self) -> Server:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self, grace: float | None = None) -> None:
        self._closed = True
        try:
            self._lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._lsock.close()
        for s in list(self._socks):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                s, addr = self._lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s, addr), daemon=True).start()

    def _serve(self, sock: socket.socket, peer: Any) -> None:
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                return
        self._socks.add(sock)
        conn = ServerConnection(self.router, peer=peer, limits=self.limits)
        lock = threading.RLock()

        def flush() -> None:
            out = conn.data_to_send()
            if out:
                try:
                    sock.sendall(out)
                except OSError:
                    pass

        def run(ev: RequestReceived) -> None:
            try:
                result = ev.handler(ev.data, ev.context)
                if inspect.isgenerator(result):
                    for item in result:
                        with lock:
                            conn.send_item(ev.request_id, item)
                            flush()
                    with lock:
                        conn.end_stream(ev.request_id)
                        flush()
                else:
                    with lock:
                        conn.respond(ev.request_id, result)
                        flush()
            except Exception as exc:  # noqa: BLE001
                with lock:
                    conn.fail(ev.request_id, exc)
                    flush()

        try:
            while True:
                try:
                    data = sock.recv(1 << 16)
                except OSError:
                    data = b""
                with lock:
                    if data:
                        conn.receive_data(data, time.monotonic())
                    else:
                        conn.receive_eof()
                    events = conn.events_received()
                    flush()
                for ev in events:
                    if isinstance(ev, RequestReceived):
                        threading.Thread(target=run, args=(ev,), daemon=True).start()
                    elif isinstance(ev, EventReceived):
                        for h in ev.handlers:
                            try:
                                h(ev.data, ev.context)
                            except Exception:  # noqa: BLE001
                                pass
                if conn.closed:
                    break
        finally:
            self._socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass


def serve(router: Router, host: str = "localhost", port: int = 3000, **kw: Any) -> Server:
    return Server(router, host, port, **kw)
