"""The sync server, written once against a :class:`Backend` (threads or gevent)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, ParamSpec

from tcpmsg_sockopts import apply_options, keepalive_options, listen_options

from sansio_tcpmsg import (
    Codec,
    Event,
    EventReceived,
    Keepalive,
    Limits,
    PacketDropped,
    ProtocolErrorOccurred,
    RequestReceived,
    Router,
    ServerConnection,
)
from sansio_tcpmsg.defaults import FLUSH_TIMEOUT, HANDSHAKE_TIMEOUT, LOG
from sansio_tcpmsg.diagnose import handshake_failure, listen_error
from sansio_tcpmsg.handlers import Family, Handlers, close

from ._backends.base import Backend, Pool, Task
from ._tls import TlsLayer

__all__ = ["Server", "runner"]

log = logging.getLogger("tcpmsg.server")



#: A runner writes what its batch made once it has no more work; replies queued past this
#: many bytes are written at once.
_FLUSH_AT = 65536


class _Peer:
    """One accepted connection: a reader (this task) and the runners that answer it.

    The reader puts the requests of each read in ``todo``; a runner (a pool task) takes
    them in order, runs each handler and queues its reply in the core, and writes what
    it made in one write once ``todo`` is empty: one hand-off and one write per read,
    not per request. A handler may wait: before a runner starts one while other work
    waits (requests in ``todo``, replies not written), it makes sure another runner is
    free to take that work, so a waiting handler holds up nothing else. ``free`` counts
    the runners that will look at ``todo`` again without waiting on a handler or a
    write, ``waiting`` those of them the pool has not started yet (all its workers
    busy). One writer at a time, with what others queued meanwhile batched in."""

    def __init__(self, server: Server, sock: Any, addr: Any) -> None:
        self.server, self.sock, self.addr = server, sock, addr
        b = self.b = server.backend
        self.conn = ServerConnection(server.handlers, peer=addr, limits=server.limits, codec=server.codec,
                                     proxy_protocol=server.proxy_protocol)
        self.conn.draining = server.draining
        self.pool = server.pool
        self.lock = b.lock()
        self.todo: deque[RequestReceived] = deque()
        self.free = 0
        self.waiting = 0
        self.pending: list[bytes] = []  # bytes waiting for the current writer
        self.writing = False
        self.queued = 0  # bytes handed to the writer and not yet sent
        self.resume = b.event()
        self.paused = False
        self.ended = False
        self.events: deque[EventReceived] = deque()
        self.events_running = False
        self.task: Task | None = None
        self.open = True  # counts toward max_connections until its socket closes
        self.tls: TlsLayer | None = None  # used under ``lock`` only, once handshaken

    # -- the pump ---------------------------------------------------------------------

    def core(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the core under the lock, hand out its events, then write what is due;
        return what the core returned (or raise what it raised, once that is written)."""
        return self._call(True, fn, *args)

    def _call(self, flush: bool, fn: Callable[..., Any], *args: Any) -> Any:
        error: Exception | None = None
        result = None
        with self.lock:
            try:
                result = fn(*args)
            except Exception as exc:  # raised after what the core queued is written
                error = exc
            data, notes = self._settle(flush)
        if notes:
            self._log(notes)
        if data:
            self._write(data)
        if error is not None:
            raise error
        return result

    def _settle(self, flush: bool) -> tuple[bytes, list[Event] | None]:
        """Under the lock, after a core call: take the bytes due for the socket, and hand
        out the core's events. Bytes are due when ``flush`` is asked and no free runner
        will write them (it does once it has no more work), or once the connection is
        closed or much is queued. Returns the bytes this caller must write (the others
        went to the current writer) and the events to log."""
        conn = self.conn
        data = b""
        if (conn.bytes_to_send or self.tls is not None) and (
            conn.closed or conn.bytes_to_send >= _FLUSH_AT or (flush and self.free == self.waiting)
        ):
            data = conn.data_to_send()
            if self.tls is not None:
                data = self.tls.encrypt(data, conn.closed)
            if data:
                self.queued += len(data)
                conn.note_send_buffer(self.queued)
                if self.writing:
                    self.pending.append(data)
                    data = b""
                else:
                    self.writing = True
        if conn.closed and not self.ended:
            self.ended = True
            self.resume.set()
            with contextlib.suppress(OSError):  # wake the reader; what is queued is still written
                self.sock.shutdown(socket.SHUT_RD)
        events = conn.events_received()
        return data, (self._hand_out(events) if events else None)

    def _hand_out(self, events: list[Event]) -> list[Event] | None:
        """Under the lock: requests to ``todo`` (a runner started if none is free),
        events to the connection's event runner; returns what is only logged."""
        notes: list[Event] | None = None
        for ev in events:
            if isinstance(ev, RequestReceived):
                self.todo.append(ev)
            elif isinstance(ev, EventReceived):
                self.events.append(ev)
                if not self.events_running:
                    self.events_running = True
                    self.pool.submit(self._run_events)
            elif isinstance(ev, (ProtocolErrorOccurred, PacketDropped)):
                notes = notes or []
                notes.append(ev)
        if self.todo and not self.free:
            self._add_runner()
        return notes

    def _add_runner(self) -> None:
        """Under the lock: one more runner for ``todo``."""
        self.free += 1
        queued = [False]
        if not self.pool.submit(self._run, queued):
            queued[0] = True  # read by the runner under the lock, so before it starts
            self.waiting += 1

    def _log(self, notes: list[Event]) -> None:
        for ev in notes:
            if isinstance(ev, ProtocolErrorOccurred):
                log.log(*LOG.PROTOCOL_ERROR, self.addr, ev.error)
            elif isinstance(ev, PacketDropped):
                log.log(*LOG.PACKET_DROPPED, self.addr, ev.reason)

    def _write(self, data: bytes) -> None:
        """Write ``data``, then whatever was queued meanwhile, until nothing is left."""
        conn, sock = self.conn, self.sock
        with self.lock:
            if self.pending:
                data = b"".join([data, *self.pending])
                self.pending.clear()
        while True:
            try:
                sent = sock.send(data)  # gevent's sendall asks the OS for SO_SNDBUF first
                if sent < len(data):
                    sock.sendall(memoryview(data)[sent:])
            except OSError as exc:
                with self.lock:
                    self.writing = False
                    self.pending.clear()
                log.info("write to %s failed: %s", self.addr, exc)
                self.core(conn.receive_eof)
                return
            notes = None
            with self.lock:
                self.queued -= len(data)
                conn.note_send_buffer(self.queued)
                events = conn.events_received()  # requests held while the peer did not read
                if events:
                    notes = self._hand_out(events)
                if self.paused and not conn.reading_paused:
                    self.resume.set()
                done = not self.pending
                if done:
                    self.writing = False
                else:
                    data = b"".join(self.pending)
                    self.pending.clear()
            if notes:
                self._log(notes)
            if done:
                return

    # -- tasks ------------------------------------------------------------------------

    def run(self) -> None:
        """The connection's task: handshake, read until closed, flush, close."""
        tls = self.server.tls
        try:
            if tls is not None:
                if self.conn.proxy_bytes_needed:
                    self._read_proxy_header()
                layer = TlsLayer(tls, server_side=True)
                layer.handshake(self.sock, HANDSHAKE_TIMEOUT)
                self.tls = layer
        except OSError as exc:
            log.log(*LOG.HANDSHAKE_FAILED, self.addr, handshake_failure(exc))
            self.server._forget(self)  # before the peer can see the end
            self.sock.close()
            return
        log.log(*LOG.OPENED, self.addr)
        try:
            if self.tls is not None:  # the client's first request may have come with its Finished
                self.core(self.tls.receive, self.conn, b"", self.b.monotonic(), log, self.addr)
            self._read_loop()
        finally:
            self._wait_written()
            self.open = False  # before the peer can see the end
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self._wait_written()
            self.sock.close()
            log.log(*LOG.CLOSED, self.addr)
            self.server._forget(self)

    def _read_proxy_header(self) -> None:
        """Read the PROXY header off the raw socket, never past it: the TLS handshake
        that follows must find its first byte there."""
        conn, sock = self.conn, self.sock
        sock.settimeout(HANDSHAKE_TIMEOUT)
        while conn.proxy_bytes_needed:
            data = sock.recv(conn.proxy_bytes_needed)
            if data:
                self.core(conn.receive_data, data, self.b.monotonic())
            else:
                self.core(conn.receive_eof)
        if conn.closed:  # the core said why (logged as a protocol error)
            raise OSError("no valid PROXY protocol header")
        sock.settimeout(None)

    def _wait_written(self) -> None:
        """Wait (at most ``FLUSH_TIMEOUT``) until no write is in progress."""
        b = self.b
        deadline = b.monotonic() + FLUSH_TIMEOUT
        while self.writing and b.monotonic() < deadline:
            b.sleep(0.002)

    def _read_loop(self) -> None:
        conn, b, sock = self.conn, self.b, self.sock
        while True:
            with self.lock:
                if conn.closed:
                    return
                timer = conn.get_timer()
                paused = self.paused = conn.reading_paused
                if paused:
                    self.resume.clear()
            if paused:
                timeout = None if timer is None else max(timer - b.monotonic(), 0.0)
                if not self.resume.wait(timeout):
                    self.core(conn.handle_timer, b.monotonic())
                continue
            try:
                if timer is not None and not b.wait_readable(sock, timer - b.monotonic()):
                    self.core(conn.handle_timer, b.monotonic())
                    continue
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.core(conn.receive_eof)
            elif self.tls is None:
                self.core(conn.receive_data, data, b.monotonic())
            else:
                self.core(self.tls.receive, conn, data, b.monotonic(), log, self.addr)

    def _run(self, queued: list[bool]) -> None:
        """A runner: answer the requests in ``todo`` until it is empty, then write what
        is left to write. One lock per request: a handler's reply is queued and the next
        request taken together."""
        conn, lock, todo = self.conn, self.lock, self.todo
        returned, take_events, monotonic = conn.handler_returned, conn.events_received, self.b.monotonic
        ev: RequestReceived | None = None  # taken, and (once run) its handler returned ``result``
        result: Any = None
        run: Callable[..., Any] = contextvars.Context().run
        back = False  # done with ``ev`` outside the lock: free again
        while True:
            stream = error = None
            data, notes = b"", None
            with lock:
                if queued[0]:
                    queued[0] = False
                    self.waiting -= 1
                if ev is not None:
                    try:
                        stream = returned(ev.request_id, result, monotonic())
                    except Exception as exc:  # answered outside the lock
                        error = exc
                    else:
                        back = stream is None
                if back:
                    back, ev = False, None
                    self.free += 1
                flush = ev is None  # before a handler: written now if no runner can start to write it
                if flush:
                    if not todo:
                        self.free -= 1
                        data, notes = self._settle(True)
                        break
                    ev = todo.popleft()
                    self.free -= 1
                    if not self.free and (todo or conn.bytes_to_send):
                        self._add_runner()  # takes that work, should this handler wait
                size = conn.bytes_to_send
                if self.tls is not None or conn.closed or (
                    size and (size >= _FLUSH_AT or (flush and self.free == self.waiting))
                ):
                    data, notes = self._settle(flush)
                else:  # the common case: nothing to write yet, as _settle would find
                    events = take_events()
                    if events:
                        notes = self._hand_out(events)
            if notes:
                self._log(notes)
            if data:
                self._write(data)
            assert ev is not None
            if stream is not None or error is not None:
                self._finish(ev, run, result, error)
                ev, back = None, True
                continue
            # nothing a previous request set is seen: each runs in an empty context
            run = contextvars.Context().run
            try:
                result = run(ev.handler, ev.data, ev.context)
            except Exception as exc:
                self._finish(ev, run, None, exc)
                ev, back = None, True
        if notes:
            self._log(notes)
        if data:
            self._write(data)

    def _finish(self, ev: RequestReceived, run: Callable[..., Any], stream: Any, error: Exception | None) -> None:
        """Answer a request whose handler failed (``error``) or streams: each item is
        written as it is produced (in the request's context, ``run``)."""
        request_id, conn, b = ev.request_id, self.conn, self.b
        try:
            if error is not None:
                raise error
            try:
                for item in _items(run, stream):
                    self.core(conn.send_item, request_id, item)
                    if conn.closed:
                        break
            finally:
                run(close, stream)
            self.core(conn.end_stream, request_id, b.monotonic())
        except Exception as exc:
            self._call(False, conn.handler_raised, request_id, exc, b.monotonic())

    def _run_events(self) -> None:
        conn, b = self.conn, self.b
        while True:
            with self.lock:
                if not self.events:
                    self.events_running = False
                    return
                ev = self.events.popleft()
            started = b.monotonic()
            for handler in ev.handlers:
                try:
                    result = handler(ev.data, ev.context)
                    if conn.event_returned(result) is not None:
                        for _ in result:
                            pass
                except Exception as exc:
                    conn.event_raised(ev, exc)
            conn.event_done(ev, started, b.monotonic())

    def close(self) -> None:
        """Close the connection: what is queued is written, then the socket closes."""
        self.core(self.conn.close)


def _items(run: Callable[..., Any], stream: Any) -> Iterator[Any]:
    """The items of ``stream``, each produced by ``run(next, ...)`` (in the request's context)."""
    it = iter(stream)
    while True:
        try:
            yield run(next, it)
        except StopIteration:
            return


class Server:
    """A server: accepts connections and runs handlers; use ``with serve(...) as server:``.

    ``tcpmsg_threads.serve`` and ``tcpmsg_gevent.serve`` are its subclasses, each with
    its backend.
    Handlers run on a pool of ``max_workers`` threads (threads) or in greenlets, as many
    as requests wait at once (gevent); the requests of one read run one after another
    in one worker while none waits, and a handler that waits holds up no other request.

    ``proxy_protocol=True``: every connection must begin with a PROXY protocol header
    (v1 or v2; read before the TLS handshake), and handlers see the original client as
    ``ctx.peer``. ``reuse_port=True`` sets ``SO_REUSEPORT`` so that several processes
    can listen on one port. ``keepalive`` (on by default) sets TCP keepalive on every
    accepted connection (a :class:`~sansio_tcpmsg.Keepalive` for other timings, False
    for none). On :meth:`close` the server first answers health checks with "draining"
    for ``drain_delay`` seconds while serving as usual, so a balancer stops sending it
    connections before they close.
    """

    #: The primitives (sockets, locks, tasks) this server runs on.
    backend: ClassVar[Backend]
    #: The binding's import name, for messages (``tcpmsg_threads``, ``tcpmsg_gevent``).
    binding: ClassVar[str]

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
        self.router, self.host, self.port = router, host, port
        # Refuses here, before binding, a handler or middleware this binding cannot run.
        self.handlers = Handlers(router, family=Family.SYNC, binding=self.binding)
        self.tls, self.limits, self.codec = tls, limits or Limits(), codec
        self.grace, self.max_workers = grace, max_workers
        self.proxy_protocol, self.reuse_port, self.drain_delay = proxy_protocol, reuse_port, drain_delay
        #: True once :meth:`close` began: health checks are answered with "draining".
        self.draining = False
        # No Nagle: a streamed reply is one write per item, and Nagle would hold each item after
        # the first until the client's delayed ACK (40 ms on Linux), as the clients avoid too.
        self._conn_options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), *keepalive_options(keepalive)]
        backend = self.backend
        self._lock = backend.lock()
        self._peers: set[_Peer] = set()
        self._closed = backend.event()
        self._started = False
        self._closing = False
        self._listener: Any = None
        self._acceptor: Task | None = None
        self.pool: Pool = backend.pool(max_workers)

    @property
    def connections(self) -> int:
        """Connections open now (metrics read it, e.g. ``tcpmsg_prometheus``)."""
        return len(self._peers)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Bind and start serving in the background (done by ``with``)."""
        if self._started:
            return
        try:
            self._listener = self.backend.listen(self.host, self.port, listen_options(self.reuse_port))
        except OSError as exc:
            raise listen_error(exc, self.host, self.port) from exc
        self.port = self._listener.getsockname()[1]
        self._started = True
        self._acceptor = self.backend.spawn(self._accept_loop)
        log.log(*LOG.LISTENING, self.host, self.port)

    def serve_forever(self) -> None:
        """Serve until :meth:`close` is called (from another thread or greenlet)."""
        self.start()
        while not self._closed.wait(1.0):
            pass

    def _accept_loop(self) -> None:
        b, listener = self.backend, self._listener
        while not self._closing:
            try:
                if not b.wait_readable(listener, 1.0) or self._closing:
                    continue
                sock, addr = listener.accept()
            except BlockingIOError:
                continue
            except OSError as exc:
                if self._closing:
                    return
                log.log(*LOG.ACCEPT_FAILED, exc)
                b.sleep(0.1)
                continue
            sock.settimeout(None)
            try:
                apply_options(sock, self._conn_options)
            except OSError as exc:  # the peer may already be gone
                log.info("cannot set socket options for %s: %s", addr, exc)
            cap = self.limits.max_connections
            with self._lock:
                count = sum(p.open for p in self._peers)  # closing ones no longer count
                full = self._closing or (cap is not None and count >= cap)
                if not full:
                    peer = _Peer(self, sock, addr)
                    self._peers.add(peer)
            if full:
                log.log(*LOG.REFUSED, addr, count)
                sock.close()
                continue
            peer.task = b.spawn(peer.run)

    def _forget(self, peer: _Peer) -> None:
        with self._lock:
            self._peers.discard(peer)

    def close(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within ``grace`` seconds, close
        every connection; nothing is left running afterwards."""
        b = self.backend
        with self._lock:
            if self._closing or self.draining or not self._started:
                self._closing = True
                self._closed.set()
                return
            self.draining = True
            peers = list(self._peers)
        for peer in peers:
            peer.conn.draining = True
        if self.drain_delay > 0:
            log.info("draining: failing health checks for %g s before closing", self.drain_delay)
            b.sleep(self.drain_delay)
        with self._lock:
            self._closing = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        if self._acceptor is not None:
            self._acceptor.join(2.0)
        self._listener.close()
        deadline = b.monotonic() + (self.grace if grace is None else grace)
        with self._lock:
            peers = list(self._peers)
        for peer in peers:  # each closes after its last reply, or once quiet
            peer.core(peer.conn.close_when_idle, b.monotonic())
        while b.monotonic() < deadline:
            with self._lock:
                peers = list(self._peers)
            if not peers:
                break
            now = b.monotonic()
            for peer in peers:  # readers blocked in recv() do not watch the new timers
                timer = peer.conn.get_timer()
                if timer is not None and now >= timer:
                    peer.core(peer.conn.handle_timer, now)
            b.sleep(0.01)
        with self._lock:
            peers = list(self._peers)
        for peer in peers:
            peer.close()
        for peer in peers:
            if peer.task is not None:
                peer.task.join(2 * FLUSH_TIMEOUT + 1.0)
        self.pool.shutdown(max(deadline - b.monotonic(), 0.1))
        log.log(*LOG.SERVER_CLOSED, self.host, self.port)
        self._closed.set()


_P = ParamSpec("_P")


def runner(server_class: Callable[_P, Server]) -> Callable[_P, None]:
    """A binding's ``run``, taking exactly the parameters of its ``Server``."""

    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        """Serve ``router`` until interrupted (Ctrl-C), then close gracefully."""
        with server_class(*args, **kwargs) as server:
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass

    functools.update_wrapper(run, server_class, assigned=(), updated=())  # help() shows Server's parameters
    return run
