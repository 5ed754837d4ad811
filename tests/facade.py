"""One sync facade over every binding, so each conformance and interop test is written once.

The facade adapts I/O only (blocking vs awaiting, threads vs greenlets vs tasks); it never
touches handlers: the router a suite passes is served untouched on every binding.

``make_binding(name, router=factory)`` gives a :class:`Binding` with:

- ``connect(port, **kw)``: context manager -> :class:`Client` with blocking ``send``,
  ``stream`` (an iterator; leaving it early cancels the request), ``emit``,
  ``send_many``, ``status``, ``connect``, ``close``, ``close_elsewhere``, and
  ``statuses`` (every status reported through ``on_status``);
- ``client(port, **kw)``: the same :class:`Client`, not yet connected (explicit
  ``connect()`` / ``close()``);
- ``serve(router=None, **kw)``: context manager -> :class:`Server` with ``port``,
  ``host``, ``raw`` and ``close(grace)``; without a router, a fresh one of the suite's
  (``router()``: the ``router`` factory given to ``make_binding``);
- ``spawn(fn, *args)``: run a call in the background (a thread; a greenlet on gevent);
  ``.result(timeout)`` waits for it;
- ``sleep(s)``: a wait that lets this binding's own machinery run (``gevent.sleep`` on
  gevent, where the client's reader lives in the test thread's hub); ``wait_until``;
- ``live_count()``: threads + greenlets / tasks, for "nothing left running".

How each binding runs:

- threads: called directly; concurrency with OS threads.
- gevent: the client is called from the test's thread, a greenlet of that thread's hub;
  concurrency with greenlets. In-process servers run in an OS thread with a hub of
  their own, so a test body blocking on other primitives (pipes to NestJS, ``time``)
  never starves them.
- anyio-asyncio, anyio-trio: a blocking portal (``anyio.from_thread``); each client and
  server is entered and left in ONE owner task, as a program does; calls run in other
  tasks of the same loop; concurrency with tasks.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import gc
import importlib
import importlib.util
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
for _p in (str(TESTS), str(ROOT / "bindings"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

BINDINGS = ("anyio-asyncio", "anyio-trio", "gevent", "threads")
MODULES = {
    "anyio-asyncio": "tcpmsg_anyio",
    "anyio-trio": "tcpmsg_anyio",
    "gevent": "tcpmsg_gevent",
    "threads": "tcpmsg_threads",
}
HOST = "127.0.0.1"

RouterFactory = Callable[["Binding"], Any]


def pythonpath(*first: str | Path) -> str:
    """PYTHONPATH for a subprocess that imports this facade (``first`` ahead of it)."""
    parts = [str(p) for p in first] + [str(TESTS), str(ROOT / "bindings"), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def available(name: str) -> str | None:
    """None if the binding can run here, else why not."""
    mod = MODULES[name]
    if importlib.util.find_spec(mod) is None:
        return f"binding {mod} not present"
    needs = {"anyio-asyncio": ["anyio"], "anyio-trio": ["anyio", "trio"], "gevent": ["gevent"]}
    for dep in needs.get(name, []):
        if importlib.util.find_spec(dep) is None:
            return f"{dep} not installed"
    try:
        importlib.import_module(mod)
    except Exception as exc:  # reported as the skip reason
        return f"binding {mod} does not import: {exc!r}"
    return None


# ---------------------------------------------------------------------------------------
# background calls


class _ThreadCall:
    def __init__(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self._future: cf.Future[Any] = cf.Future()

        def run() -> None:
            try:
                self._future.set_result(fn(*args, **kw))
            except BaseException as exc:
                self._future.set_exception(exc)

        self.thread = threading.Thread(target=run, daemon=True, name="facade-call")
        self.thread.start()

    def result(self, timeout: float = 30.0) -> Any:
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()


class _GreenletCall:
    def __init__(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        import gevent

        self._g = gevent.spawn(fn, *args, **kw)

    def result(self, timeout: float = 30.0) -> Any:
        import gevent

        try:
            return self._g.get(timeout=timeout)
        except gevent.Timeout:
            raise cf.TimeoutError(f"greenlet call still running after {timeout} s") from None

    def done(self) -> bool:
        return self._g.ready()


Call = tuple[Any, Any] | tuple[Any, Any, dict[str, Any]]


def _unpack(call: Call) -> tuple[Any, Any, dict[str, Any]]:
    """``(pattern, data)`` or ``(pattern, data, kw)``."""
    return (call[0], call[1], call[2] if len(call) > 2 else {})  # type: ignore[misc]


class _GaveUp:
    def __repr__(self) -> str:
        return "GAVE_UP"


GAVE_UP: Any = _GaveUp()
"""The result in ``send_many`` of a call whose caller gave up (``cancel_after``)."""


# ---------------------------------------------------------------------------------------
# clients


class Client:
    """A sync binding's client (threads, gevent): calls pass straight through."""

    def __init__(self, binding: Binding, client: Any, statuses: list[Any]) -> None:
        self.binding = binding
        self.raw = client
        self.statuses = statuses

    # ``*data``: zero or one value, so that a call without data shows the binding's default.
    def send(self, pattern: Any, *data: Any, **kw: Any) -> Any:
        return self.raw.send(pattern, *data, **kw)

    def stream(self, pattern: Any, *data: Any, **kw: Any) -> Iterator[Any]:
        return iter(self.raw.stream(pattern, *data, **kw))

    def emit(self, pattern: Any, *data: Any, **kw: Any) -> None:
        self.raw.emit(pattern, *data, **kw)

    @property
    def status(self) -> Any:
        return self.raw.status

    @property
    def endpoints(self) -> Any:
        """A pooled client's ``endpoints`` (read where the client lives)."""
        return self.binding.call_soon(lambda: self.raw.endpoints)

    def connect(self) -> None:
        self.raw.connect()

    def close(self) -> None:
        self.raw.close()

    def close_elsewhere(self) -> None:
        """Close from another thread (greenlet on gevent) than the one that connected."""
        self.binding.spawn(self.raw.close).result(10)

    def send_many(self, calls: Sequence[Call], timeout: float = 30.0) -> list[Any]:
        """Every call in flight at once; each result, in order, is the value or the
        exception raised. A call given as ``(pattern, data, kw)`` passes ``kw`` to send,
        but for ``cancel_after``: its caller gives up after that many seconds, the
        binding's own way (a cancel scope on anyio, ``gevent.Timeout`` in the calling
        greenlet), and its result is :data:`GAVE_UP`; a thread cannot be cancelled, so
        on threads it is the call's ``timeout`` (a ``RequestTimeout``)."""
        results: list[Any] = [cf.TimeoutError("not done")] * len(calls)
        gevent_binding = self.binding.name == "gevent"

        def one(i: int, call: Call) -> None:
            pattern, data, kw = _unpack(call)
            kw = dict(kw)
            cancel_after = kw.pop("cancel_after", None)
            try:
                if cancel_after is None:
                    results[i] = self.send(pattern, data, **kw)
                elif gevent_binding:
                    import gevent

                    results[i] = GAVE_UP
                    with gevent.Timeout(cancel_after, False):
                        results[i] = self.send(pattern, data, **kw)
                else:
                    results[i] = self.send(pattern, data, **dict(kw, timeout=cancel_after))
            except Exception as exc:
                results[i] = exc

        if gevent_binding:
            import gevent

            gevent.joinall([gevent.spawn(one, i, c) for i, c in enumerate(calls)], timeout=timeout)
            return results
        old = threading.stack_size()
        threading.stack_size(256 * 1024)  # a thread per call: a thousand of them fit
        try:
            threads = [threading.Thread(target=one, args=(i, c), daemon=True) for i, c in enumerate(calls)]
            for t in threads:
                t.start()
        finally:
            threading.stack_size(old)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return results


class AnyioClient(Client):
    """An anyio client, called through the binding's blocking portal."""

    def __init__(self, binding: AnyioBinding, client: Any, statuses: list[Any]) -> None:
        super().__init__(binding, client, statuses)
        self.portal = binding.portal

    def send(self, pattern: Any, *data: Any, **kw: Any) -> Any:
        return self.portal.call(functools.partial(self.raw.send, pattern, *data, **kw))

    def stream(self, pattern: Any, *data: Any, **kw: Any) -> Iterator[Any]:
        portal = self.portal
        raw = self.raw

        async def start() -> Any:
            return raw.stream(pattern, *data, **kw).__aiter__()

        def gen() -> Iterator[Any]:
            ait = portal.call(start)

            async def nxt() -> Any:
                return await ait.__anext__()

            finished = False
            try:
                while True:
                    try:
                        value = portal.call(nxt)
                    except StopAsyncIteration:
                        finished = True
                        return
                    yield value
            finally:
                # Leaving ``async for`` early (in ``aclosing`` or a task) finalizes an
                # async iterator; do the same when the sync loop stops early.
                aclose = getattr(ait, "aclose", None)
                if not finished and aclose is not None:
                    with contextlib.suppress(Exception):
                        portal.call(aclose)

        return gen()

    def emit(self, pattern: Any, *data: Any, **kw: Any) -> None:
        self.portal.call(functools.partial(self.raw.emit, pattern, *data, **kw))

    def connect(self) -> None:
        self.portal.call(self.raw.connect)

    def close(self) -> None:
        self.portal.call(self.raw.aclose)

    def close_elsewhere(self) -> None:
        """``await client.aclose()`` from another task than the one that connected."""
        self.portal.call(self.raw.aclose)

    def send_many(self, calls: Sequence[Call], timeout: float = 30.0) -> list[Any]:
        import anyio

        raw = self.raw

        async def many() -> list[Any]:
            results: list[Any] = [cf.TimeoutError("not done")] * len(calls)

            async def one(i: int, call: Call) -> None:
                pattern, data, kw = _unpack(call)
                kw = dict(kw)
                cancel_after = kw.pop("cancel_after", math.inf)
                try:
                    results[i] = GAVE_UP
                    with anyio.move_on_after(cancel_after):
                        results[i] = await raw.send(pattern, data, **kw)
                except Exception as exc:
                    results[i] = exc

            with anyio.move_on_after(timeout):
                async with anyio.create_task_group() as tg:
                    for i, call in enumerate(calls):
                        tg.start_soon(one, i, call)
            return results

        return self.portal.call(many)


# ---------------------------------------------------------------------------------------
# servers


class Server:
    def __init__(self, raw: Any, close: Callable[[float | None], None]) -> None:
        self.raw = raw
        self._close = close

    @property
    def port(self) -> int:
        return self.raw.port

    @property
    def host(self) -> Any:
        return self.raw.host

    def close(self, grace: float | None = None) -> None:
        self._close(grace)


# ---------------------------------------------------------------------------------------
# bindings


class Binding:
    """threads (and any module with the sync shape of ``tcpmsg_threads``)."""

    def __init__(self, name: str, module: ModuleType | None = None, router: RouterFactory | None = None) -> None:
        self.name = name
        self.mod = module if module is not None else importlib.import_module(MODULES[name])
        self._make_router = router

    def router(self) -> Any:
        """A fresh router of the suite (its handlers' state starts empty)."""
        if self._make_router is None:
            raise RuntimeError("make_binding(..., router=factory) gives serve() its default router")
        return self._make_router(self)

    # waiting and background ------------------------------------------------------------

    def call_soon(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` where the binding's objects live (the event loop for anyio)."""
        return fn()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def spawn(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return _ThreadCall(fn, *args, **kw)

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0, step: float = 0.02) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                return value
            self.sleep(step)

    def live_count(self) -> int:
        return threading.active_count()

    # clients ----------------------------------------------------------------------------

    def _client_kwargs(self, port: int | None, kw: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        statuses: list[Any] = []
        kw = dict(kw)
        user_cb = kw.pop("on_status", None)

        def on_status(status: Any) -> None:
            statuses.append(status)
            if user_cb is not None:
                user_cb(status)

        if port is not None:  # None: the caller gives endpoints=[...]
            kw.setdefault("host", HOST)
            kw["port"] = port
        kw["on_status"] = on_status
        return statuses, kw

    def client(self, port: int | None, **kw: Any) -> Client:
        statuses, kw = self._client_kwargs(port, kw)
        return Client(self, self.mod.connect(**kw), statuses)

    @contextlib.contextmanager
    def connect(self, port: int | None, **kw: Any) -> Iterator[Client]:
        statuses, kw = self._client_kwargs(port, kw)
        with self.mod.connect(**kw) as raw:
            yield Client(self, raw, statuses)

    # servers ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def serve(self, router: Any = None, **kw: Any) -> Iterator[Server]:
        kw.setdefault("host", HOST)
        kw.setdefault("port", 0)
        with self.mod.serve(router or self.router(), **kw) as raw:
            yield Server(raw, lambda grace: raw.close(grace=grace))

    def shutdown(self) -> None:
        pass

    def revive(self) -> None:
        pass


class GeventBinding(Binding):
    def sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)

    def spawn(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return _GreenletCall(fn, *args, **kw)

    def live_count(self) -> int:
        import greenlet

        live = sum(
            1
            for obj in gc.get_objects()
            if isinstance(obj, greenlet.greenlet) and bool(obj) and not obj.dead
            and type(obj).__name__ != "Hub"
        )
        return threading.active_count() + live

    @contextlib.contextmanager
    def serve(self, router: Any = None, **kw: Any) -> Iterator[Server]:
        """Serve in a separate OS thread with its own hub; the test thread stays free."""
        import gevent

        kw.setdefault("host", HOST)
        kw.setdefault("port", 0)
        router = router or self.router()
        started = threading.Event()
        done = threading.Event()
        stop = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                with self.mod.serve(router, **kw) as raw:
                    box["raw"] = raw
                    started.set()
                    while not stop.is_set():
                        gevent.sleep(0.01)
                    if "grace" in box:
                        raw.close(grace=box["grace"])
            except BaseException as exc:
                box["error"] = exc
            finally:
                started.set()
                done.set()

        thread = threading.Thread(target=run, daemon=True, name="gevent-server")
        thread.start()
        if not started.wait(10):
            raise RuntimeError("gevent server did not start within 10 s")
        if "error" in box:
            raise box["error"]

        def close(grace: float | None, *, final: bool = False) -> None:
            if done.is_set():
                return
            if not final:
                box["grace"] = grace
            stop.set()
            deadline = time.monotonic() + 30
            while not done.is_set() and time.monotonic() < deadline:
                gevent.sleep(0.01)  # let this thread's hub (a client here) run meanwhile
            if not done.is_set():
                raise RuntimeError("gevent server did not stop within 30 s")
            if "error" in box:
                raise box["error"]

        try:
            yield Server(box["raw"], close)
        finally:
            close(None, final=True)
            thread.join(5)


class AnyioBinding(Binding):
    def __init__(self, name: str, module: ModuleType | None = None, router: RouterFactory | None = None) -> None:
        super().__init__(name, module, router)
        from anyio.from_thread import start_blocking_portal

        self.backend = name.split("-", 1)[1]
        self._portal_cm = start_blocking_portal(self.backend)
        self.portal = self._portal_cm.__enter__()

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._portal_cm.__exit__(None, None, None)

    def call_soon(self, fn: Callable[[], Any]) -> Any:
        return self.portal.call(_as_async(fn))

    def revive(self) -> None:
        """A crashed portal would fail every later test: start a new one (and say so)."""
        try:
            self.portal.call(_as_async(lambda: None))
        except RuntimeError:
            from anyio.from_thread import start_blocking_portal

            print(f"tcpmsg facade: the {self.backend} portal had stopped; restarted it")
            self._portal_cm = start_blocking_portal(self.backend)
            self.portal = self._portal_cm.__enter__()

    def live_count(self) -> int:
        def count() -> int:
            if self.backend == "asyncio":
                import asyncio

                return len(asyncio.all_tasks())
            import trio

            def walk(task: Any) -> int:
                return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

            return walk(trio.lowlevel.current_root_task())

        return self.portal.call(_as_async(count))

    def _owned(self, make: Callable[[], Any], enter: str, leave: str) -> tuple[Any, Callable[..., None]]:
        """Enter and leave an async object in ONE owner task, as a program does.

        The owner task makes the object (inside the loop), awaits ``enter``, then waits
        for the facade's close to await ``leave`` (with ``**kw``) and ``__aexit__``.
        Calls made meanwhile (``send``, ...) run in other tasks of the same loop.
        """
        import anyio

        portal = self.portal

        async def owner(*, task_status: Any) -> None:
            obj = make()
            close_event = anyio.Event()
            box: dict[str, Any] = {}
            if enter == "__aenter__":
                async with obj as entered:
                    task_status.started((entered, close_event, box))
                    await close_event.wait()
                    if box.get("explicit"):
                        await getattr(entered, leave)(**box.get("kw", {}))
            else:
                await getattr(obj, enter)()
                task_status.started((obj, close_event, box))
                await close_event.wait()
                await getattr(obj, leave)(**box.get("kw", {}))

        future, (obj, close_event, box) = portal.start_task(owner)

        def close(explicit: bool = True, **kw: Any) -> None:
            if not future.done():
                box["explicit"] = explicit
                box["kw"] = kw
                with contextlib.suppress(RuntimeError):  # portal already gone
                    portal.call(close_event.set)
            future.result(30)

        return obj, close

    def client(self, port: int | None, **kw: Any) -> Client:
        statuses, kw = self._client_kwargs(port, kw)
        facade: dict[str, Any] = {}

        def connect() -> None:
            raw, close = self._owned(lambda: self.mod.connect(**kw), "connect", "aclose")
            c.raw, facade["close"] = raw, close

        def close() -> None:
            if "close" in facade:
                facade["close"]()

        c = AnyioClient(self, None, statuses)
        c.connect = connect  # type: ignore[method-assign]
        c.close = close  # type: ignore[method-assign]
        return c

    @contextlib.contextmanager
    def connect(self, port: int | None, **kw: Any) -> Iterator[Client]:
        statuses, kw = self._client_kwargs(port, kw)
        raw, close = self._owned(lambda: self.mod.connect(**kw), "__aenter__", "aclose")
        c = AnyioClient(self, raw, statuses)
        c.close = lambda: close(True)  # type: ignore[method-assign]
        try:
            yield c
        finally:
            close(False)

    @contextlib.contextmanager
    def serve(self, router: Any = None, **kw: Any) -> Iterator[Server]:
        kw.setdefault("host", HOST)
        kw.setdefault("port", 0)
        router = router or self.router()
        raw, close = self._owned(lambda: self.mod.serve(router, **kw), "__aenter__", "aclose")
        try:
            yield Server(raw, lambda grace: close(True, grace=grace))
        finally:
            close(False)


def _as_async(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``fn`` inside the event loop (objects are made where they will live)."""

    async def call() -> Any:
        return fn()

    return call


def make_binding(name: str, *, router: RouterFactory | None = None) -> Binding:
    """The facade of binding ``name``; ``router(binding)`` makes the default router."""
    if name not in BINDINGS:
        raise ValueError(f"the binding must be one of {BINDINGS}, not {name!r}")
    if name.startswith("anyio"):
        return AnyioBinding(name, router=router)
    if name == "gevent":
        return GeventBinding(name, router=router)
    return Binding(name, router=router)
