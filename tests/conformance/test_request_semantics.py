"""What a request handler may rely on, however the binding runs it.

A binding may run handlers in a task each, a pool of threads or greenlets, or step them
by hand in one task until they first wait (the anyio server does): the handler must not
see a difference. Pinned here on every binding: a ContextVar set by one request is not
seen by the next on the same connection; handlers that wait overlap (two requests that
each wait for the other complete); a handler whose connection closes runs its
``finally``; requests of one connection start in the order they arrived (not on threads,
where pool threads race to start). On anyio: a handler entering a cancel scope, or its
event loop's own timeout, and waiting inside it works, and stays in one task.

Handlers are async on anyio (the kind stepped in the event loop), plain functions on
threads and gevent; each waits at most a few seconds, so nothing here can hang.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest
from conformance_router import pause
from conftest import BINDING_NAME
from test_limits import frame, raw_peer, read_frames

from sansio_tcpmsg import Router

ASYNC_BINDING = BINDING_NAME.startswith("anyio")
VAR: contextvars.ContextVar[Any] = contextvars.ContextVar("request_semantics_var")
WAIT = 5.0  # the longest a handler here waits for something that should come at once

RECORDS: list[Any] = []
_LOCK = threading.Lock()


def record(*item: Any) -> None:
    with _LOCK:
        RECORDS.append(item)


def recorded(token: str) -> list[Any]:
    with _LOCK:
        return [r[1:] for r in RECORDS if r[0] == token]


def sync_router() -> Router:
    router = Router()

    @router.message("set_var")
    def set_var(data: Any) -> Any:
        previous = VAR.get(None)
        VAR.set(data)
        return previous

    @router.message("set_var_wait")
    def set_var_wait(data: Any) -> Any:
        previous = VAR.get(None)
        VAR.set(data)
        pause(0.01)
        return [previous, VAR.get(None)]

    @router.message("get_var")
    def get_var(data: Any) -> Any:
        return VAR.get(None)

    @router.message("rendezvous")
    def rendezvous(data: Any) -> Any:
        token, me, other = data
        record(token, me)
        deadline = time.monotonic() + WAIT
        while (other,) not in recorded(token):
            if time.monotonic() > deadline:
                return False
            pause(0.005)
        return True

    @router.message("hang")
    def hang(token: Any) -> Any:
        record(token, "started")
        try:
            pause(0.3)  # a thread cannot be cancelled: it ends by itself
        finally:
            record(token, "finally")

    @router.message("order")
    def order(data: Any) -> Any:
        token, i = data
        record(token, i)
        if i % 3 == 0:
            pause(0.01)
        return i

    return router


def async_router() -> Router:
    import anyio
    import sniffio

    router = Router()
    arrived: dict[tuple[str, str], anyio.Event] = {}

    def event(token: str, name: str) -> anyio.Event:
        return arrived.setdefault((token, name), anyio.Event())

    @router.message("set_var")
    async def set_var(data: Any) -> Any:
        previous = VAR.get(None)
        VAR.set(data)
        return previous

    @router.message("set_var_wait")
    async def set_var_wait(data: Any) -> Any:
        previous = VAR.get(None)
        VAR.set(data)
        await anyio.sleep(0.01)
        return [previous, VAR.get(None)]

    @router.message("get_var")
    async def get_var(data: Any) -> Any:
        return VAR.get(None)

    @router.message("rendezvous")
    async def rendezvous(data: Any) -> Any:
        token, me, other = data
        event(token, me).set()
        with anyio.move_on_after(WAIT):
            await event(token, other).wait()
            return True
        return False

    @router.message("hang")
    async def hang(token: Any) -> Any:
        record(token, "started")
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            record(token, "cancelled")
            raise
        finally:
            record(token, "finally")

    @router.message("order")
    async def order(data: Any) -> Any:
        token, i = data
        record(token, i)
        if i % 3 == 0:
            await anyio.sleep(0.01)
        return i

    @router.message("scoped")
    async def scoped(data: Any) -> Any:
        task = anyio.get_current_task().id
        with anyio.move_on_after(0.05) as scope:  # entered before the handler first waits
            await anyio.sleep(WAIT)
        with anyio.fail_after(WAIT):
            await anyio.sleep(0.01)
        native = await native_timeout(sniffio.current_async_library())
        return [scope.cancelled_caught, native, anyio.get_current_task().id == task]

    return router


async def native_timeout(library: str) -> bool:
    """The event loop's own timeout around a wait (``asyncio.timeout``, ``trio.move_on_after``):
    both cancel the task that entered them, so the handler must still be in it."""
    if library == "trio":
        import trio

        with trio.move_on_after(0.05) as scope:
            await trio.sleep(WAIT)
        return scope.cancelled_caught
    import asyncio

    if not hasattr(asyncio, "timeout"):  # Python 3.10
        return True
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(WAIT)
    except TimeoutError:
        return True
    return False


@pytest.fixture
def semantics(binding):
    with binding.serve(async_router() if ASYNC_BINDING else sync_router(), grace=0.5) as s:
        yield s


def token(request: Any) -> str:
    return f"{request.node.name}-{time.monotonic_ns()}"


def test_a_context_var_set_by_one_request_is_not_seen_by_the_next(binding, semantics):
    with binding.connect(semantics.port) as c:
        assert c.send("set_var", "first") is None
        assert c.send("get_var", None) is None
        assert c.send("set_var_wait", "second") == [None, "second"]  # its own, across its waits
        assert c.send("get_var", None) is None
        # many at once on one connection: each starts with the variable unset
        assert c.send_many([("set_var", i) for i in range(40)]) == [None] * 40
        assert c.send_many([("set_var_wait", i) for i in range(10)]) == [[None, i] for i in range(10)]
        assert c.send("get_var", None) is None


def test_a_context_var_does_not_pass_between_requests_of_one_read(binding, semantics):
    with raw_peer(semantics.port) as peer:
        peer.sendall(b"".join(frame({"pattern": "set_var", "data": i, "id": str(i)}) for i in range(20)))
        replies = read_frames(peer, 20)
    assert [r.get("response") for r in replies] == [None] * 20, replies  # None: no "response"


def test_handlers_that_wait_for_each_other_overlap(binding, semantics, request):
    t = token(request)
    with binding.connect(semantics.port, timeout=WAIT + 5) as c:
        assert c.send_many([("rendezvous", [t, "a", "b"]), ("rendezvous", [t, "b", "a"])]) == [True, True]
    with raw_peer(semantics.port) as peer:  # both in one read
        t = t + "-raw"
        peer.sendall(frame({"pattern": "rendezvous", "data": [t, "a", "b"], "id": "a"})
                     + frame({"pattern": "rendezvous", "data": [t, "b", "a"], "id": "b"}))
        replies = read_frames(peer, 2, timeout=WAIT + 5)
    assert sorted((r["id"], r["response"]) for r in replies) == [("a", True), ("b", True)]


def _wait_recorded(binding: Any, t: str, item: str) -> bool:
    return bool(binding.wait_until(lambda: (item,) in recorded(t), timeout=WAIT))


def test_a_handler_whose_connection_closes_runs_its_finally(binding, semantics, request):
    t = token(request)
    peer = raw_peer(semantics.port)
    try:
        peer.sendall(frame({"pattern": "hang", "data": t, "id": "1"}))
        assert _wait_recorded(binding, t, "started"), recorded(t)
    finally:
        peer.close()
    assert _wait_recorded(binding, t, "finally"), recorded(t)
    if ASYNC_BINDING:  # cancelled, not left waiting 30 s
        assert ("cancelled",) in recorded(t)
    with binding.connect(semantics.port) as c:
        assert c.send("get_var", None) is None  # still serving


def test_a_handler_running_when_the_server_closes_runs_its_finally(binding, request):
    t = token(request)
    with binding.serve(async_router() if ASYNC_BINDING else sync_router(), grace=0.2) as s:
        with raw_peer(s.port) as peer:
            peer.sendall(frame({"pattern": "hang", "data": t, "id": "1"}))
            assert _wait_recorded(binding, t, "started"), recorded(t)
            t0 = time.monotonic()
            s.close(grace=0.2)
            assert time.monotonic() - t0 < WAIT
    assert _wait_recorded(binding, t, "finally"), recorded(t)


@pytest.mark.skipif(BINDING_NAME == "threads", reason="pool threads race to start their handlers")
def test_requests_start_in_the_order_they_arrived(binding, semantics, request):
    """Some of them wait (every third): those after still start in order."""
    t = token(request)
    n = 30
    with raw_peer(semantics.port) as peer:
        peer.sendall(b"".join(frame({"pattern": "order", "data": [t, i], "id": str(i)}) for i in range(n)))
        replies = read_frames(peer, n)
        assert sorted(r["response"] for r in replies) == list(range(n))
        # and in several reads
        peer.sendall(b"".join(frame({"pattern": "order", "data": [t, i], "id": str(i)}) for i in range(n, 2 * n)))
        assert len(read_frames(peer, n)) == n
    assert recorded(t) == [(i,) for i in range(2 * n)]


@pytest.mark.skipif(not ASYNC_BINDING, reason="async handlers: anyio only")
def test_a_handler_waits_inside_cancel_scopes_and_timeouts(binding, semantics):
    with binding.connect(semantics.port) as c:
        assert c.send("scoped", None) == [True, True, True]
        # many at once: each in its own task from start to end
        assert c.send_many([("scoped", None)] * 10) == [[True, True, True]] * 10
