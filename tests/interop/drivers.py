"""One synchronous face for every binding, so each interop test is written once.

Binding ids: ``threads``, ``gevent``, ``anyio-asyncio``, ``anyio-trio`` (and ``ref``, a
test-only pump in ``refbinding.py``, when ``INTEROP_REF_BINDING=1``).

- threads: called directly; concurrency with OS threads.
- gevent: the client is called directly from the test's (main) thread, which is a
  greenlet of that thread's hub; concurrency with greenlets. The *server* runs in its
  own OS thread with its own hub, because the test thread blocks on non-gevent
  primitives (NestJS helper pipes) while the server must keep serving.
- anyio: everything runs in a blocking portal (``anyio.from_thread``) on the chosen
  backend; concurrency with tasks in a task group.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import inspect
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mirror import build_router

from sansio_tcpmsg import Router

BINDINGS = ["threads", "gevent", "anyio-asyncio", "anyio-trio"]
if os.environ.get("INTEROP_REF_BINDING") == "1":
    BINDINGS = ["ref", *BINDINGS]

HOST = "127.0.0.1"


class Outcome:
    """What a background call gives: ``result(timeout)`` returns or raises."""

    def __init__(self, get: Callable[[float], Any]) -> None:
        self._get = get

    def result(self, timeout: float = 30.0) -> Any:
        return self._get(timeout)


class SyncClient:
    """Blocking calls on one binding client."""

    def __init__(self, driver: Driver, raw: Any) -> None:
        self.driver = driver
        self.raw = raw

    def send(self, pattern: Any, data: Any, **kw: Any) -> Any:
        return self.raw.send(pattern, data, **kw)

    def stream(self, pattern: Any, data: Any, **kw: Any) -> list[Any]:
        return list(self.raw.stream(pattern, data, **kw))

    def emit(self, pattern: Any, data: Any, **kw: Any) -> None:
        self.raw.emit(pattern, data, **kw)

    def stream_take(self, pattern: Any, data: Any, n: int, **kw: Any) -> list[Any]:
        """The first ``n`` values, then leave the loop early (cancels the request)."""
        out: list[Any] = []
        it = self.raw.stream(pattern, data, **kw)
        for v in it:
            out.append(v)
            if len(out) >= n:
                break
        close = getattr(it, "close", None)
        if close is not None:
            close()
        return out

    def start_send(self, pattern: Any, data: Any, **kw: Any) -> Outcome:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(self.raw.send(pattern, data, **kw))
            except BaseException as exc:  # noqa: BLE001
                fut.set_exception(exc)

        threading.Thread(target=run, daemon=True).start()
        return Outcome(fut.result)

    def send_many(self, calls: Sequence[tuple[Any, Any]], timeout: float = 60.0) -> list[Any]:
        """All calls in flight at once; each result is a value or the exception raised."""
        results: list[Any] = [None] * len(calls)
        old = threading.stack_size()
        threading.stack_size(256 * 1024)
        try:
            threads = []
            for i, (p, d) in enumerate(calls):
                def one(i: int = i, p: Any = p, d: Any = d) -> None:
                    try:
                        results[i] = self.raw.send(p, d, timeout=timeout)
                    except Exception as exc:  # noqa: BLE001
                        results[i] = exc
                t = threading.Thread(target=one, daemon=True)
                t.start()
                threads.append(t)
        finally:
            threading.stack_size(old)
        deadline = time.monotonic() + timeout + 5
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return results

    @property
    def status(self) -> Any:
        return self.raw.status


class ServerHandle:
    def __init__(self, port: int, raw: Any = None) -> None:
        self.port = port
        self.raw = raw


class Driver:
    name: str

    def router(self) -> Router:
        raise NotImplementedError

    def client(self, port: int, **kw: Any) -> contextlib.AbstractContextManager[SyncClient]:
        raise NotImplementedError

    def server(self, router: Router, **kw: Any) -> contextlib.AbstractContextManager[ServerHandle]:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass


class _ThreadLike(Driver):
    """threads and ref: plain blocking API."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self.mod = module

    def router(self) -> Router:
        return build_router("sync", time.sleep)

    @contextlib.contextmanager
    def client(self, port: int, **kw: Any) -> Iterator[SyncClient]:
        with self.mod.connect(HOST, port, **kw) as c:
            yield SyncClient(self, c)

    @contextlib.contextmanager
    def server(self, router: Router, **kw: Any) -> Iterator[ServerHandle]:
        with self.mod.serve(router, HOST, 0, **kw) as s:
            yield ServerHandle(s.port, s)


class _GeventClient(SyncClient):
    def start_send(self, pattern: Any, data: Any, **kw: Any) -> Outcome:
        import gevent

        g = gevent.spawn(self.raw.send, pattern, data, **kw)
        return Outcome(lambda timeout: g.get(timeout=timeout))

    def send_many(self, calls: Sequence[tuple[Any, Any]], timeout: float = 60.0) -> list[Any]:
        import gevent

        glets = [gevent.spawn(self.raw.send, p, d, timeout=timeout) for p, d in calls]
        gevent.joinall(glets, timeout=timeout + 5)
        return [g.value if g.successful() else (g.exception or TimeoutError("not done"))
                for g in glets]


class _Gevent(Driver):
    name = "gevent"

    def __init__(self) -> None:
        import gevent  # noqa: F401
        import tcpmsg_gevent

        self.mod = tcpmsg_gevent

    def router(self) -> Router:
        import gevent

        return build_router("sync", gevent.sleep)

    @contextlib.contextmanager
    def client(self, port: int, **kw: Any) -> Iterator[SyncClient]:
        with self.mod.connect(HOST, port, **kw) as c:
            yield _GeventClient(self, c)

    @contextlib.contextmanager
    def server(self, router: Router, **kw: Any) -> Iterator[ServerHandle]:
        box: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def run() -> None:  # a hub of its own in this thread
            import gevent

            try:
                with self.mod.serve(router, HOST, 0, **kw) as s:
                    box.put(("ok", s))
                    while not stop.is_set():
                        gevent.sleep(0.02)
            except BaseException as exc:  # noqa: BLE001
                box.put(("err", exc))
            box.put(("closed", None))

        t = threading.Thread(target=run, name="gevent-server", daemon=True)
        t.start()
        kind, value = box.get(timeout=20)
        if kind == "err":
            raise value
        try:
            yield ServerHandle(value.port, value)
        finally:
            stop.set()
            t.join(15)
            while not box.empty():
                kind, exc = box.get()
                if kind == "err":
                    raise exc


class _AnyioClient(SyncClient):
    def __init__(self, driver: _Anyio, raw: Any) -> None:
        super().__init__(driver, raw)
        self.portal = driver.portal

    def send(self, pattern: Any, data: Any, **kw: Any) -> Any:
        return self.portal.call(functools.partial(self.raw.send, pattern, data, **kw))

    def stream(self, pattern: Any, data: Any, **kw: Any) -> list[Any]:
        async def collect() -> list[Any]:
            return [v async for v in self.raw.stream(pattern, data, **kw)]

        return self.portal.call(collect)

    def emit(self, pattern: Any, data: Any, **kw: Any) -> None:
        self.portal.call(functools.partial(self.raw.emit, pattern, data, **kw))

    def stream_take(self, pattern: Any, data: Any, n: int, **kw: Any) -> list[Any]:
        async def take() -> list[Any]:
            out: list[Any] = []
            it = self.raw.stream(pattern, data, **kw)
            async for v in it:
                out.append(v)
                if len(out) >= n:
                    break
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
            return out

        return self.portal.call(take)

    def start_send(self, pattern: Any, data: Any, **kw: Any) -> Outcome:
        fut = self.portal.start_task_soon(functools.partial(self.raw.send, pattern, data, **kw))
        return Outcome(fut.result)

    def send_many(self, calls: Sequence[tuple[Any, Any]], timeout: float = 60.0) -> list[Any]:
        import anyio

        async def many() -> list[Any]:
            results: list[Any] = [None] * len(calls)

            async def one(i: int, p: Any, d: Any) -> None:
                try:
                    results[i] = await self.raw.send(p, d, timeout=timeout)
                except Exception as exc:  # noqa: BLE001
                    results[i] = exc

            async with anyio.create_task_group() as tg:
                for i, (p, d) in enumerate(calls):
                    tg.start_soon(one, i, p, d)
            return results

        return self.portal.call(many)


class _Anyio(Driver):
    def __init__(self, backend: str) -> None:
        import anyio.from_thread
        import tcpmsg_anyio

        if backend == "trio":
            import trio  # noqa: F401
        self.name = f"anyio-{backend}"
        self.mod = tcpmsg_anyio
        self._portal_cm = anyio.from_thread.start_blocking_portal(backend)
        self.portal = self._portal_cm.__enter__()

    def shutdown(self) -> None:
        self._portal_cm.__exit__(None, None, None)

    def router(self) -> Router:
        return build_router("async")

    def _make(self, func: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        async def make() -> Any:
            obj = func(*args, **kw)
            if inspect.isawaitable(obj) and not hasattr(obj, "__aenter__"):
                obj = await obj
            return obj

        return self.portal.call(make)

    @contextlib.contextmanager
    def client(self, port: int, **kw: Any) -> Iterator[SyncClient]:
        c = self._make(self.mod.connect, HOST, port, **kw)
        with self.portal.wrap_async_context_manager(c) as entered:
            yield _AnyioClient(self, entered if entered is not None else c)

    @contextlib.contextmanager
    def server(self, router: Router, **kw: Any) -> Iterator[ServerHandle]:
        s = self._make(self.mod.serve, router, HOST, 0, **kw)
        with self.portal.wrap_async_context_manager(s) as entered:
            srv = entered if entered is not None else s
            yield ServerHandle(srv.port, srv)


_drivers: dict[str, Driver] = {}


def get_driver(name: str) -> Driver:
    """The driver for binding ``name``; raises ImportError when it is not there yet."""
    if name not in _drivers:
        if name == "threads":
            import tcpmsg_threads

            _drivers[name] = _ThreadLike("threads", tcpmsg_threads)
        elif name == "ref":
            import refbinding

            _drivers[name] = _ThreadLike("ref", refbinding)
        elif name == "gevent":
            _drivers[name] = _Gevent()
        elif name == "anyio-asyncio":
            _drivers[name] = _Anyio("asyncio")
        elif name == "anyio-trio":
            _drivers[name] = _Anyio("trio")
        else:
            raise ValueError(name)
    return _drivers[name]


def shutdown_all() -> None:
    for d in _drivers.values():
        try:
            d.shutdown()
        except Exception:  # noqa: BLE001
            pass
    _drivers.clear()
