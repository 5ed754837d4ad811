"""gevent primitives for the shared sync implementation (no monkey-patching)."""

from __future__ import annotations

import concurrent.futures
import contextvars
import socket as _stdsocket
import time
from collections.abc import Callable
from typing import Any

import gevent  # type: ignore[import-untyped, unused-ignore]
import gevent.event  # type: ignore[import-untyped, unused-ignore]
import gevent.hub  # type: ignore[import-untyped, unused-ignore]
import gevent.lock  # type: ignore[import-untyped, unused-ignore]
import gevent.queue  # type: ignore[import-untyped, unused-ignore]
import gevent.socket  # type: ignore[import-untyped, unused-ignore]
from tcpmsg_sockopts import SocketOption

from .base import Empty, addresses, listen_on

__all__ = ["GeventBackend", "GreenFuture"]


class _GreenletPool:
    """A greenlet per call in progress, reused: a greenlet that finished its call waits
    for the next one instead of exiting (at most ``max_idle`` wait), as starting a
    greenlet costs a fresh 16 KiB Python frame stack (an ``mmap``/``munmap`` pair per
    request on CPython 3.11+). A call never waits for another to finish: with no idle
    greenlet, a new one starts. Busy greenlets are tracked so that shutdown can wait
    for or kill them."""

    def __init__(self, max_idle: int) -> None:
        self._running: set[Any] = set()
        self._idle: list[Any] = []  # waiters of idle greenlets, the most recent last
        self._max_idle = max(max_idle, 1)
        self._closed = False

    def _worker(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        current = gevent.getcurrent()
        running, idle = self._running, self._idle
        while True:
            running.add(current)
            try:
                fn(*args)
            finally:
                running.discard(current)
            del fn, args  # nothing of the call is kept while idle
            if self._closed or len(idle) >= self._max_idle:
                return
            waiter = gevent.hub.Waiter()
            idle.append(waiter)
            work = waiter.get()
            if work is None:
                return
            fn, args = work
            current.gr_context = contextvars.Context()  # as empty as a new greenlet's

    def submit(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` in an idle greenlet, or a new one (never waits: True)."""
        if self._idle:
            waiter = self._idle.pop()
            gevent.get_hub().loop.run_callback(waiter.switch, (fn, args))
        else:
            gevent.spawn_raw(self._worker, fn, args)
        return True

    def shutdown(self, timeout: float) -> None:
        """Let idle greenlets exit; wait at most ``timeout`` seconds, then kill what still runs."""
        self._closed = True
        loop = gevent.get_hub().loop
        while self._idle:
            loop.run_callback(self._idle.pop().switch, None)
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            gevent.sleep(0.005)
        for glet in list(self._running):
            gevent.kill(glet)
        deadline = time.monotonic() + 1.0
        while self._running and time.monotonic() < deadline:
            gevent.sleep(0.005)


class _Slot:
    """One call's outcome, delivered to its waiting greenlet by a switch from the hub
    (``gevent.hub.Waiter``: no queue, no event, no link); ``get`` by one greenlet."""

    __slots__ = ("_waiter", "_later")

    def __init__(self) -> None:
        self._waiter = gevent.hub.Waiter()
        self._later = self._waiter.hub.loop.run_callback

    def put(self, item: Any) -> None:
        """Deliver ``item`` (from any greenlet: the switch happens in the hub)."""
        self._later(self._waiter.switch, item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The outcome; ``Empty`` if none came in ``timeout`` (or at once, unblocking)."""
        waiter = self._waiter
        if not block:
            if waiter.ready():
                return waiter.get()
            raise Empty
        if timeout is None:
            return waiter.get()
        with gevent.Timeout(max(timeout, 0.0), False):
            return waiter.get()
        raise Empty


class GreenFuture:
    """``concurrent.futures.Future``'s reading side on a gevent ``AsyncResult``: waiting
    on it yields to the hub instead of blocking the thread."""

    __slots__ = ("_result",)

    def __init__(self) -> None:
        self._result = gevent.event.AsyncResult()

    def set_result(self, result: Any) -> None:
        """Resolve with ``result`` (the client's reader does)."""
        self._result.set(result)

    def set_exception(self, exception: BaseException | None) -> None:
        """Resolve with ``exception`` (the client's reader does)."""
        self._result.set_exception(exception)

    def _wait(self, timeout: float | None) -> None:
        self._result.wait(timeout)
        if not self._result.ready():
            raise concurrent.futures.TimeoutError(f"the call is not done after {timeout} s")

    def result(self, timeout: float | None = None) -> Any:
        """The reply's value, or raise its error; ``TimeoutError`` if not done in time."""
        self._wait(timeout)
        return self._result.get(block=False)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The call's error (None if it succeeded); waits like :meth:`result`."""
        self._wait(timeout)
        return self._result.exception  # type: ignore[no-any-return]

    def done(self) -> bool:
        """Whether the outcome is known."""
        return self._result.ready()  # type: ignore[no-any-return]

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call ``fn(self)`` once done (from the hub, soon after)."""
        self._result.rawlink(lambda _result: fn(self))

    def cancel(self) -> bool:
        """False: the call is already sent (as a running ``concurrent.futures.Future``)."""
        return False

    def cancelled(self) -> bool:
        """False: see :meth:`cancel`."""
        return False


class GeventBackend:
    """Cooperative primitives: gevent sockets, greenlets, gevent locks, events, queues."""

    callers_read = False

    def connect(self, host: str, port: int, timeout: float | None) -> Any:
        """A connected gevent socket."""
        sock: Any = gevent.socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock

    def listen(self, host: str, port: int, options: list[SocketOption]) -> Any:
        """A listening gevent socket."""
        info = _stdsocket.getaddrinfo(host, port, type=_stdsocket.SOCK_STREAM)[0]
        return listen_on(gevent.socket.socket(info[0], _stdsocket.SOCK_STREAM), host, port, options)

    def wait_readable(self, sock: Any, timeout: float | None) -> bool:
        """Wait cooperatively until ``sock`` is readable; False on timeout."""
        try:
            gevent.socket.wait_read(sock.fileno(), None if timeout is None else max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    def spawn(self, fn: Callable[..., object], *args: Any) -> Any:
        """Run ``fn(*args)`` in a new greenlet."""
        return gevent.spawn(fn, *args)

    def lock(self) -> Any:
        """A new gevent lock."""
        return gevent.lock.Semaphore(1)

    def event(self) -> Any:
        """A new gevent event."""
        return gevent.event.Event()

    def queue(self) -> Any:
        """A new unbounded gevent queue (no task tracking: half the cost of ``Queue``)."""
        return gevent.queue.SimpleQueue()

    def waiter(self) -> _Slot:
        """A ``gevent.hub.Waiter`` for one outcome."""
        return _Slot()

    def future(self) -> GreenFuture:
        """A future that greenlets wait on cooperatively."""
        return GreenFuture()

    def pool(self, max_workers: int) -> _GreenletPool:
        """A greenlet per request in progress, however many; ``max_workers`` of them
        are kept for reuse once idle."""
        return _GreenletPool(max_workers)

    def sleep(self, seconds: float) -> None:
        """Yield to other greenlets for ``seconds``."""
        gevent.sleep(seconds)

    def before_write(self) -> None:
        """Yield once: greenlets already scheduled (a read batch's handlers, other
        callers) queue their bytes behind this write, which then carries them all."""
        gevent.sleep(0)

    #: The clock given to the core: ``time.monotonic`` itself (no Python call around it,
    #: read once per request).
    monotonic = staticmethod(time.monotonic)

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host`` (``gevent.socket.getaddrinfo``)."""
        return addresses(gevent.socket.getaddrinfo(host, port, type=_stdsocket.SOCK_STREAM))
