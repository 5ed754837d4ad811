"""sansio_tcpmsg.calls: client middleware around send, stream and emit of any client."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sansio_tcpmsg import Router
from sansio_tcpmsg.calls import Call, intercept
from sansio_tcpmsg.testing import TestClient, _drive

router = Router()
events: list[Any] = []


@router.message("double")
def double(data: Any) -> Any:
    return data * 2


@router.message("count")
def count(data: Any) -> Any:
    yield from range(data)


@router.event("seen")
def seen(data: Any) -> None:
    events.append(data)


class Entered(TestClient):
    """A TestClient usable with ``with``, as a binding's client is."""

    __test__ = False
    entered = 0

    def __enter__(self) -> Entered:
        self.entered += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.entered -= 1


def test_sync_middleware_order_changes_retries_and_passes_the_rest_through() -> None:
    trail: list[str] = []

    def outer(call: Call, call_next: Any) -> Any:
        trail.append(f"outer {call.kind} {call.pattern}")
        return call_next(dataclasses.replace(call, data=call.data + 1) if call.kind == "send" else call)

    def retry(call: Call, call_next: Any) -> Any:
        trail.append("retry")
        try:
            return call_next(call)
        except ZeroDivisionError:
            return call_next(call)

    client = Entered(router)
    with intercept(client, outer, retry) as wrapped:
        assert client.entered == 1
        assert wrapped.send("double", 1) == 4
        assert list(wrapped.stream("count", 2)) == [0, 1]
        wrapped.emit("seen", 5)
        assert wrapped.pair is client.pair  # everything else is the client's
    assert client.entered == 0
    assert events[-1] == 5
    assert trail == ["outer send double", "retry", "outer stream count", "retry", "outer emit seen", "retry"]


class AsyncClient:
    """An async client over TestClient, shaped as tcpmsg_anyio's (coroutines complete at once)."""

    def __init__(self) -> None:
        self.test = TestClient(router)
        self.closed: list[bool] = []

    async def send(self, pattern: Any, data: Any, **options: Any) -> Any:
        return self.test.send(pattern, data, **options)

    async def emit(self, pattern: Any, data: Any, **options: Any) -> None:
        self.test.emit(pattern, data, **options)

    def stream(self, pattern: Any, data: Any, **options: Any) -> AsyncIterator[Any]:
        async def items() -> AsyncIterator[Any]:
            try:
                for item in self.test.stream(pattern, data, **options):
                    yield item
            finally:
                self.closed.append(True)

        return items()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed.append(False)


def collect(items: AsyncIterator[Any], limit: int = 100) -> list[Any]:
    async def run() -> list[Any]:
        out = []
        async for item in items:
            out.append(item)
            if len(out) == limit:
                break
        return out

    return _drive(run())  # type: ignore[no-any-return]


def test_async_middleware_wrap_an_async_client() -> None:
    trail: list[str] = []

    async def tens(call: Call, call_next: Any) -> Any:
        trail.append(call.kind)
        result = await call_next(call)
        if call.kind != "stream":
            return result if result is None else result * 10

        async def scaled() -> AsyncIterator[int]:
            async for item in result:
                yield item * 10

        return scaled()

    raw = AsyncClient()
    wrapped = intercept(raw, tens)
    assert _drive(wrapped.__aenter__()) is wrapped
    assert _drive(wrapped.send("double", 2)) == 40
    assert _drive(wrapped.emit("seen", 6)) is None and events[-1] == 6
    assert collect(wrapped.stream("count", 3)) == [0, 10, 20]
    assert collect(intercept(raw).stream("count", 3), limit=1) == [0]  # leaving early closes it
    assert raw.closed == [True, True]
    _drive(wrapped.__aexit__(None, None, None))
    assert raw.closed[-1] is False and trail == ["send", "emit", "stream"]


def test_middleware_of_the_wrong_kind_is_refused() -> None:
    async def awaiting(call: Call, call_next: Any) -> Any:
        return await call_next(call)

    def plain(call: Call, call_next: Any) -> Any:
        return call_next(call)

    with pytest.raises(TypeError, match="cannot wrap TestClient: a sync client takes plain function middleware"):
        intercept(TestClient(router), awaiting)
    with pytest.raises(TypeError, match=r"cannot wrap AsyncClient: an async client takes async def middleware"):
        intercept(AsyncClient(), plain)


class Once:
    """An async iterator without ``aclose``."""

    def __init__(self) -> None:
        self.done = False

    def __aiter__(self) -> Once:
        return self

    async def __anext__(self) -> int:
        if self.done:
            raise StopAsyncIteration
        self.done = True
        return 1


def test_a_stream_middleware_may_answer_with_any_async_iterator() -> None:
    async def cached(call: Call, call_next: Any) -> Any:
        return Once()

    assert collect(intercept(AsyncClient(), cached).stream("count", 3)) == [1]
