"""Standard-library primitives: threads, blocking sockets, ``queue`` and ``threading``."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from tcpmsg_sockopts import SocketOption

from .base import addresses, listen_on

__all__ = ["ThreadBackend"]


class _ThreadPool:
    """At most ``max_workers`` daemon threads, started as work arrives."""

    def __init__(self, max_workers: int) -> None:
        self._max = max(1, max_workers)
        self._work: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., object], *args: Any) -> bool:
        """Queue ``fn(*args)``; start a worker unless one is idle or the pool is full
        (then return False: it waits for a busy one)."""
        self._work.put((fn, args))
        if self._idle.acquire(blocking=False):
            return True
        with self._lock:
            if len(self._threads) >= self._max:
                return False
            thread = threading.Thread(target=self._worker, name="tcpmsg-worker", daemon=True)
            self._threads.append(thread)
        thread.start()
        return True

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:  # pragma: no cover - callers catch their own errors
                logging.getLogger("tcpmsg.server").exception("worker task failed")
            self._idle.release()

    def shutdown(self, timeout: float) -> None:
        """Stop every worker; wait at most ``timeout`` seconds for running work."""
        with self._lock:
            threads, self._max = list(self._threads), 0
        for _ in threads:
            self._work.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class ThreadBackend:
    """Standard library primitives: OS threads and blocking sockets."""

    callers_read = True

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A connected socket in blocking mode."""
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock

    def listen(self, host: str, port: int, options: list[SocketOption]) -> socket.socket:
        """A listening socket."""
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return listen_on(socket.socket(info[0], socket.SOCK_STREAM), host, port, options)  # type: ignore[no-any-return]

    def wait_readable(self, sock: socket.socket, timeout: float | None) -> bool:
        """Poll ``sock`` for reading; False on timeout."""
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1)))

    def spawn(self, fn: Callable[..., object], *args: Any) -> threading.Thread:
        """Run ``fn(*args)`` in a new daemon thread."""
        thread = threading.Thread(target=fn, args=args, name="tcpmsg", daemon=True)
        thread.start()
        return thread

    def lock(self) -> threading.Lock:
        """A new lock."""
        return threading.Lock()

    def event(self) -> threading.Event:
        """A new event."""
        return threading.Event()

    def waiter(self) -> queue.SimpleQueue[Any]:
        """A queue: a caller gets its outcome, or the reader role, from it."""
        return queue.SimpleQueue()

    def queue(self) -> queue.SimpleQueue[Any]:
        """A new unbounded queue."""
        return queue.SimpleQueue()

    def future(self) -> concurrent.futures.Future[Any]:
        """A ``concurrent.futures.Future``, already running (``cancel()`` says False)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        return future

    def pool(self, max_workers: int) -> _ThreadPool:
        """A bounded pool of daemon worker threads."""
        return _ThreadPool(max_workers)

    def sleep(self, seconds: float) -> None:
        """Block this thread."""
        time.sleep(seconds)

    def before_write(self) -> None:
        """Nothing: other threads queue their bytes while this one writes."""

    #: The clock given to the core: ``time.monotonic`` itself (no Python call around it,
    #: read once per request).
    monotonic = staticmethod(time.monotonic)

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host`` (``socket.getaddrinfo``)."""
        return addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
