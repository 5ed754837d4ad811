"""``router.use(middleware)`` on every binding: order, data and result changes, guards,
exceptions, events, included routers; a middleware kind a binding cannot run is refused
when served.

A middleware is ``middleware(data, ctx, call_next)``: a plain function on threads and
gevent, an ``async def`` awaiting ``call_next`` on anyio. The composition (which wrap
which handler, in what order) is the core's; each binding only says how the innermost
handler is called. Each middleware is written in both styles below, the same logic.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import BINDING_NAME

from sansio_tcpmsg import RemoteError, Router, RpcError

ASYNC_BINDING = BINDING_NAME.startswith("anyio")
TRAIL: list[Any] = []
_LOCK = threading.Lock()


def note(item: Any) -> None:
    with _LOCK:
        TRAIL.append(item)


def trail_of(token: str) -> list[Any]:
    with _LOCK:
        return [t[1] for t in TRAIL if t[0] == token]


def tracer(name: str) -> Any:
    """Notes ``name>`` before and ``<name`` after the call (token: ``data["t"]``)."""
    if ASYNC_BINDING:

        async def traced(data: Any, ctx: Any, call_next: Any) -> Any:
            note((data["t"], f"{name}>"))
            try:
                return await call_next(data, ctx)
            finally:
                note((data["t"], f"<{name}"))
    else:

        def traced(data: Any, ctx: Any, call_next: Any) -> Any:
            note((data["t"], f"{name}>"))
            try:
                return call_next(data, ctx)
            finally:
                note((data["t"], f"<{name}"))

    return traced


def guard_and_shape() -> Any:
    """A guard (metadata token), a pipe (data + 100), an interceptor (wraps the value),
    an exception filter (ValueError -> RpcError)."""

    def check(data: Any, ctx: Any) -> Any:
        if ctx.metadata != {"token": "ok"}:
            raise RpcError({"status": "error", "message": "Forbidden resource"})
        return {**data, "n": data["n"] + 100}

    def filtered(exc: ValueError) -> RpcError:
        return RpcError({"status": "error", "message": f"filtered: {exc}"})

    if ASYNC_BINDING:

        async def middleware(data: Any, ctx: Any, call_next: Any) -> Any:
            try:
                return {"wrapped": await call_next(check(data, ctx), ctx)}
            except ValueError as exc:
                raise filtered(exc) from exc
    else:

        def middleware(data: Any, ctx: Any, call_next: Any) -> Any:
            try:
                return {"wrapped": call_next(check(data, ctx), ctx)}
            except ValueError as exc:
                raise filtered(exc) from exc

    return middleware


def short_circuit() -> Any:
    """Answers ``cached`` itself, never calling the handler."""
    if ASYNC_BINDING:

        async def middleware(data: Any, ctx: Any, call_next: Any) -> Any:
            return "cached" if data == "cached" else await call_next(data, ctx)
    else:

        def middleware(data: Any, ctx: Any, call_next: Any) -> Any:
            return "cached" if data == "cached" else call_next(data, ctx)

    return middleware


def traced_router() -> Router:
    inner = Router()
    inner.use(tracer("inner"))

    @inner.message("deep")
    def deep(data: Any) -> Any:
        note((data["t"], "deep"))
        return "deep"

    router = Router()
    router.use(tracer("first"))

    @router.message("top")
    def top(data: Any) -> Any:
        note((data["t"], "top"))
        return "top"

    @router.message("items")
    def items(data: Any) -> Any:
        note((data["t"], "items"))
        yield from range(3)

    @router.event("evt")
    def event(data: Any) -> None:
        note((data["t"], "evt"))

    router.include(inner)
    router.use(tracer("second"))  # registered after the handlers: still wraps them
    return router


def test_middleware_wraps_in_registration_order(binding) -> None:
    t = f"order-{BINDING_NAME}"
    with binding.serve(traced_router()) as s, binding.connect(s.port) as c:
        assert c.send("top", {"t": t}) == "top"
    assert trail_of(t) == ["first>", "second>", "top", "<second", "<first"]


def test_included_routers_keep_their_middleware(binding) -> None:
    t = f"include-{BINDING_NAME}"
    with binding.serve(traced_router()) as s, binding.connect(s.port) as c:
        assert c.send("deep", {"t": t}) == "deep"
    assert trail_of(t) == ["first>", "second>", "inner>", "deep", "<inner", "<second", "<first"]


def test_middleware_wraps_events(binding) -> None:
    t = f"event-{BINDING_NAME}"
    with binding.serve(traced_router()) as s, binding.connect(s.port) as c:
        c.emit("evt", {"t": t})
        expected = ["first>", "second>", "evt", "<second", "<first"]
        assert binding.wait_until(lambda: trail_of(t) == expected, timeout=5), trail_of(t)


def test_middleware_around_a_stream_gets_the_iterator(binding) -> None:
    """``call_next`` gives what the handler returned (here a generator): it streams after
    the middleware returned it."""
    t = f"stream-{BINDING_NAME}"
    with binding.serve(traced_router()) as s, binding.connect(s.port) as c:
        assert list(c.stream("items", {"t": t})) == [0, 1, 2]
    assert trail_of(t) == ["first>", "second>", "<second", "<first", "items"]


def shaped_router() -> Router:
    router = Router()
    router.use(guard_and_shape())
    router.use(short_circuit())

    @router.message("add")
    def add(data: Any) -> Any:
        if data["n"] < 100:
            raise AssertionError("the pipe did not run")
        if data.get("fail"):
            raise ValueError("no good")
        return data["n"] + 1

    return router


def test_middleware_changes_data_and_result(binding) -> None:
    with binding.serve(shaped_router()) as s, binding.connect(s.port) as c:
        assert c.send("add", {"n": 1}, metadata={"token": "ok"}) == {"wrapped": 102}


def test_a_guard_answers_instead_of_the_handler(binding) -> None:
    with binding.serve(shaped_router()) as s, binding.connect(s.port) as c:
        with pytest.raises(RemoteError) as info:
            c.send("add", {"n": 1}, metadata={"token": "bad"})
        assert info.value.error == {"status": "error", "message": "Forbidden resource"}


def test_middleware_sees_the_handlers_exception(binding) -> None:
    with binding.serve(shaped_router()) as s, binding.connect(s.port) as c:
        with pytest.raises(RemoteError) as info:
            c.send("add", {"n": 1, "fail": True}, metadata={"token": "ok"})
        assert info.value.error == {"status": "error", "message": "filtered: no good"}


def test_middleware_may_answer_itself(binding) -> None:
    router = Router()
    router.use(short_circuit())

    @router.message("get")
    def get(data: Any) -> Any:
        return f"fresh {data}"

    with binding.serve(router) as s, binding.connect(s.port) as c:
        assert c.send("get", "cached") == "cached"
        assert c.send("get", "x") == "fresh x"


def test_a_middleware_kind_the_binding_cannot_run_is_refused_when_served(binding) -> None:
    router = Router()

    @router.message("x")
    def x(data: Any) -> Any:
        return data

    if ASYNC_BINDING:

        def plain(data: Any, ctx: Any, call_next: Any) -> Any:
            return call_next(data, ctx)

        router.use(plain)
        says = "which runs async def middleware (await call_next(data, ctx))"
    else:

        async def awaiting(data: Any, ctx: Any, call_next: Any) -> Any:
            return await call_next(data, ctx)

        router.use(awaiting)
        says = "which runs plain functions and generators"
    with pytest.raises(TypeError) as info:
        with binding.serve(router):
            pass
    module = "tcpmsg_anyio" if ASYNC_BINDING else f"tcpmsg_{BINDING_NAME}"
    assert str(info.value).endswith(f"(route 'x') cannot run on {module}, {says}"), str(info.value)
