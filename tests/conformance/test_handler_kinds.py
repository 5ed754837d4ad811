"""Every handler kind, on every binding: what it answers, or how it is refused at serve time.

The table (docs/bindings-contract.md, decided in ``sansio_tcpmsg.handlers``): plain
functions (a returned iterator streams, a list is one value) and generator functions run
everywhere; ``async def`` and async generator functions run on anyio and are refused by
``serve(...)`` on threads and gevent with a ``TypeError`` naming the handler and route.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from conftest import BINDING_NAME, free_port

from sansio_tcpmsg import Router

ASYNC_BINDING = BINDING_NAME.startswith("anyio")
RECORDS: list[Any] = []
_LOCK = threading.Lock()


def record(item: Any) -> None:
    with _LOCK:
        RECORDS.append(item)


def sync_kinds() -> Router:
    router = Router()

    @router.message("value")
    def value(data: Any) -> Any:
        return data + 1

    @router.message("returns_generator")
    def returns_generator(data: Any) -> Any:
        return (i for i in range(data))

    @router.message("list")
    def a_list(data: Any) -> Any:
        return list(range(data))

    @router.message("generator")
    def generator(data: Any) -> Any:
        yield from range(data)

    @router.event("evt")
    def plain_event(data: Any) -> None:
        record(["plain", data])

    @router.event("evt")
    def generator_event(data: Any) -> Any:
        record(["generator", data])
        yield 1  # an event handler that yields runs to its end; the items go nowhere
        record(["generator end", data])

    router.message("records")(records)
    return router


def records(data: Any) -> Any:
    with _LOCK:
        return [r for r in RECORDS if r[1] == data]


def async_def() -> Router:
    router = Router()

    @router.message("async")
    async def answer(data: Any) -> Any:
        return 42

    return router


def async_generator() -> Router:
    router = Router()

    @router.message("agen")
    async def items(data: Any) -> Any:
        for i in range(data):
            yield i

    return router


def async_event() -> Router:
    router = Router()

    @router.event("evt")
    async def on_event(data: Any) -> None:
        record(["async", data])

    router.message("records")(records)
    return router


def test_plain_function_value(binding) -> None:
    with binding.serve(sync_kinds()) as s, binding.connect(s.port) as c:
        assert c.send("value", 1) == 2


def test_plain_function_returning_a_generator_streams(binding) -> None:
    """Drift 1 of issue 10: this was "Internal server error" on anyio."""
    with binding.serve(sync_kinds()) as s, binding.connect(s.port) as c:
        assert list(c.stream("returns_generator", 3)) == [0, 1, 2]
        assert c.send("returns_generator", 3) == 2  # send gives the last item


def test_a_list_is_one_value(binding) -> None:
    with binding.serve(sync_kinds()) as s, binding.connect(s.port) as c:
        assert list(c.stream("list", 3)) == [[0, 1, 2]]
        assert c.send("list", 0) == []


def test_generator_function_streams(binding) -> None:
    with binding.serve(sync_kinds()) as s, binding.connect(s.port) as c:
        assert list(c.stream("generator", 3)) == [0, 1, 2]


def test_plain_and_generator_event_handlers_run_to_their_end(binding) -> None:
    token = f"evt-{BINDING_NAME}"
    with binding.serve(sync_kinds()) as s, binding.connect(s.port) as c:
        c.emit("evt", token)
        expected = [["plain", token], ["generator", token], ["generator end", token]]
        assert binding.wait_until(lambda: c.send("records", token) == expected, timeout=5), c.send("records", token)


@pytest.mark.parametrize(("make", "pattern", "described"), [
    (async_def, "async", "async def handler"),
    (async_generator, "agen", "async generator function handler"),
    (async_event, "evt", "async def handler"),
])
def test_async_kinds(binding, make, pattern, described) -> None:
    """Drift 2 of issue 10: ``async def`` answered in TestClient but failed at call time
    on threads; now anyio answers and the sync bindings refuse it when served."""
    if ASYNC_BINDING:
        with binding.serve(make()) as s, binding.connect(s.port) as c:
            if pattern == "async":
                assert c.send("async", 0) == 42
            elif pattern == "agen":
                assert list(c.stream("agen", 3)) == [0, 1, 2]
            else:
                token = f"async-{BINDING_NAME}"
                c.emit("evt", token)
                assert binding.wait_until(lambda: c.send("records", token) == [["async", token]], timeout=5)
        return
    port = free_port()
    with pytest.raises(TypeError) as info:
        with binding.serve(make(), port=port):
            pass
    message = str(info.value)
    name = described.split(" handler")[0]
    assert message.startswith(f"{name} {__name__}.{make.__name__}.<locals>."), message
    assert f"for route '{pattern}' needs tcpmsg_anyio; tcpmsg_{BINDING_NAME} runs plain functions and generators" in message
    with socket.socket() as probe:  # refused before anything was bound
        probe.bind(("127.0.0.1", port))
