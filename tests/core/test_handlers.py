"""sansio_tcpmsg.handlers: handler kinds, the binding table, results, middleware, logs."""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sansio_tcpmsg import RemoteError, Router, RpcError, ServerConnection, handlers
from sansio_tcpmsg.events import EventReceived, RequestReceived
from sansio_tcpmsg.framing import encode_frame
from sansio_tcpmsg.handlers import (
    Family,
    Handlers,
    Kind,
    Stream,
    UnsupportedHandler,
    close,
    describe,
    family_of,
    kind_of,
    on_finish,
    stream_of,
)
from sansio_tcpmsg.routing import Context, Handler
from sansio_tcpmsg.testing import TestClient, run_event

# --- kinds ------------------------------------------------------------------------------


def plain(data: Any, ctx: Any) -> Any:
    return data


def gen(data: Any, ctx: Any) -> Any:
    yield data


async def coro(data: Any, ctx: Any) -> Any:
    return data


async def agen(data: Any, ctx: Any) -> Any:
    yield data


def decorated(func: Any) -> Any:
    @functools.wraps(func)
    def call(*args: Any) -> Any:
        return func(*args)

    return call


class AsyncCallable:
    async def __call__(self, data: Any, ctx: Any) -> Any:
        return data


@pytest.mark.parametrize(
    ("func", "kind"),
    [
        (plain, Kind.PLAIN),
        (gen, Kind.GENERATOR),
        (coro, Kind.ASYNC),
        (agen, Kind.ASYNC_GENERATOR),
        (decorated(coro), Kind.ASYNC),
        (decorated(agen), Kind.ASYNC_GENERATOR),
        (functools.partial(coro), Kind.ASYNC),
        (functools.partial(gen), Kind.GENERATOR),
        (AsyncCallable(), Kind.ASYNC),
        (len, Kind.PLAIN),
    ],
)
def test_kind_of_sees_through_wrappers(func: Any, kind: Kind) -> None:
    assert kind_of(func) is kind


def test_kind_of_sees_through_the_router_adapter() -> None:
    router = Router()

    @router.message("one")
    async def one_argument(data: Any) -> Any:
        return data

    handler = router.message_handler("one")
    assert handler is not None and handler is not one_argument
    assert kind_of(handler) is Kind.ASYNC
    assert describe(handler) == f"async def {__name__}.test_kind_of_sees_through_the_router_adapter.<locals>.one_argument"
    assert describe(AsyncCallable()) == f"async def {__name__}.AsyncCallable"


# --- what a binding family runs ---------------------------------------------------------


def router_with(func: Any, *, event: bool = False) -> Router:
    router = Router()
    (router.event if event else router.message)({"cmd": "add"})(func)
    return router


@pytest.mark.parametrize("event", [False, True])
@pytest.mark.parametrize("func", [coro, agen])
def test_sync_family_refuses_async_handlers_naming_them(func: Any, event: bool) -> None:
    with pytest.raises(TypeError) as info:
        Handlers(router_with(func, event=event), family=Family.SYNC, binding="tcpmsg_threads")
    assert isinstance(info.value, UnsupportedHandler)
    message = str(info.value)
    assert message == (
        f"{kind_of(func).value} {__name__}.{func.__qualname__} for route '{{\"cmd\":\"add\"}}'"
        " needs tcpmsg_anyio; tcpmsg_threads runs plain functions and generators"
    )


@pytest.mark.parametrize("func", [plain, gen])
def test_sync_family_runs_plain_functions_and_generators(func: Any) -> None:
    handlers = Handlers(router_with(func), family=Family.SYNC, binding="tcpmsg_threads")
    assert handlers.message_handler('{"cmd":"add"}') is not None
    assert handlers.message_handler(None) is None
    assert handlers.event_handlers(None) == ()


@pytest.mark.parametrize("func", [plain, gen, coro, agen])
def test_async_family_runs_every_kind(func: Any) -> None:
    handlers = Handlers(router_with(func, event=True), family=Family.ASYNC, binding="tcpmsg_anyio")
    assert len(handlers.event_handlers('{"cmd":"add"}')) == 1


def test_invoke_says_how_a_kind_is_called() -> None:
    calls: list[Any] = []

    def traced(handler: Handler) -> Handler:
        def call(data: Any, ctx: Context) -> Any:
            calls.append(data)
            return handler(data, ctx)

        return call

    handlers = Handlers(router_with(plain), family=Family.ASYNC, binding="x", invoke={Kind.PLAIN: traced})
    handler = handlers.message_handler('{"cmd":"add"}')
    assert handler is not None and handler(5, None) == 5 and calls == [5]  # type: ignore[arg-type]


def test_family_of() -> None:
    assert family_of(router_with(plain)) is Family.SYNC
    assert family_of(router_with(agen, event=True)) is Family.ASYNC
    router = Router()

    @router.use
    async def middleware(data: Any, ctx: Any, call_next: Any) -> Any:
        return await call_next(data, ctx)

    assert family_of(router) is Family.ASYNC


# --- what a result means ----------------------------------------------------------------


@pytest.mark.parametrize("value", [1, None, "text", [1, 2], (1, 2), {"a": 1}, b"x", range(3)])
def test_values_are_one_reply(value: Any) -> None:
    assert stream_of(value) is None


@pytest.mark.parametrize("items", [iter([1]), map(str, [1]), gen(1, None)])
def test_iterators_stream(items: Iterator[Any]) -> None:
    assert stream_of(items, Family.SYNC) is Stream.ITEMS


def test_async_iterators_stream_where_a_loop_runs() -> None:
    items = agen(1, None)
    assert stream_of(items, Family.ASYNC) is Stream.ASYNC_ITEMS
    with pytest.raises(TypeError, match="async_generator returned: an async iterator needs tcpmsg_anyio"):
        stream_of(items, Family.SYNC)


def test_a_coroutine_from_a_plain_function_is_refused_and_closed() -> None:
    pending = coro(1, None)
    with pytest.raises(TypeError, match="coroutine returned by a plain function: declare the handler async def"):
        stream_of(pending)
    assert pending.cr_frame is None  # closed: no "never awaited" warning


class Awaitable:
    def __await__(self) -> Any:
        yield


def test_an_awaitable_without_close_is_refused() -> None:
    with pytest.raises(TypeError, match="Awaitable returned"):
        stream_of(Awaitable())


def test_close_runs_a_generators_finally_and_ignores_other_iterators() -> None:
    closed = []

    def items() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    it = items()
    next(it)
    close(it)
    assert closed == [True]
    close(iter([1]))


# --- the connection applies it ----------------------------------------------------------


def one_request(conn: ServerConnection, pattern: str = "add") -> RequestReceived:
    conn.receive_data(encode_frame(f'{{"pattern":"{pattern}","data":2,"id":"r"}}'), 10.0)
    [event] = conn.events_received()
    assert isinstance(event, RequestReceived)
    return event


def test_handler_returned_replies_or_says_how_it_streams() -> None:
    conn = ServerConnection(Router())
    conn.router = Handlers(router_with(plain), family=Family.SYNC, binding="t")
    conn.receive_data(encode_frame('{"pattern":{"cmd":"add"},"data":2,"id":"r"}'), 10.0)
    [event] = conn.events_received()
    assert isinstance(event, RequestReceived)
    assert conn.handler_returned(event.request_id, 7, 10.5) is None
    assert conn.data_to_send() == encode_frame('{"response":7,"isDisposed":true,"id":"r"}')
    # a type the reply path does not know for one value is asked of stream_of: one value too
    event = one_request(conn, '{\\"cmd\\":\\"add\\"}')  # the route {"cmd":"add"}, as a string
    assert conn.handler_returned(event.request_id, collections.OrderedDict(a=1), 10.5) is None
    assert conn.data_to_send() == encode_frame('{"response":{"a":1},"isDisposed":true,"id":"r"}')


def test_stream_lines_and_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()
    router.message("add")(plain)
    conn = ServerConnection(router, peer=("h", 1))
    caplog.set_level(logging.DEBUG, "tcpmsg.server")
    event = one_request(conn)
    assert conn.handler_returned(event.request_id, iter([1, 2]), 10.0) is Stream.ITEMS
    conn.send_item(event.request_id, 1)
    conn.send_item(event.request_id, 2)
    conn.end_stream(event.request_id, 10.25)
    event = one_request(conn)
    conn.handler_raised(event.request_id, ValueError("bug"), 11.0)
    event = one_request(conn)
    conn.handler_raised(event.request_id, RpcError("meant"))
    one_request_none = encode_frame('{"pattern":"nope","data":2,"id":"r"}')
    conn.receive_data(one_request_none, 12.0)
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ("DEBUG", "request 'add' (route add) from ('h', 1): streamed 2 in 250.00 ms", False),
        ("ERROR", "handler for 'add' failed", True),
        ("DEBUG", "request 'add' (route add) from ('h', 1): failed in 1000.00 ms", False),
        ("DEBUG", "request 'add' (route add) from ('h', 1): failed", False),
        ("DEBUG", "request 'nope' (route nope) from ('h', 1): no handler", False),
    ]


def test_a_failure_of_an_unknown_request_is_reported_as_misuse() -> None:
    conn = ServerConnection(Router())
    with pytest.raises(Exception, match="request 5 is not waiting"):
        conn.handler_raised(5, ValueError("x"))


def test_events_log_their_outcome(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()

    @router.event("ok")
    def fine(data: Any) -> Any:
        yield from range(3)

    @router.event("bad")
    def broken(data: Any) -> None:
        raise ValueError("bug")

    conn = ServerConnection(router, peer="p")
    caplog.set_level(logging.DEBUG, "tcpmsg.server")
    frames = [encode_frame(f'{{"pattern":"{p}","data":1}}') for p in ("ok", "bad", "none")]
    conn.receive_data(b"".join(frames), 0.0)
    events = conn.events_received()
    assert all(isinstance(e, EventReceived) for e in events) and len(events) == 3
    for event in events:
        assert isinstance(event, EventReceived)
        run_event(conn, event)
    conn.event_done(events[0], 1.0, 1.5)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("DEBUG", "event 'ok' (route ok) from p: handled by 1"),
        ("ERROR", "event handler for 'bad' failed"),
        ("DEBUG", "event 'bad' (route bad) from p: failed"),
        ("WARNING", "no event handler for 'none'"),
        ("DEBUG", "event 'none' (route none) from p: no handler"),
        ("DEBUG", "event 'ok' (route ok) from p: handled by 1 in 500.00 ms"),
    ]


# --- TestClient applies the same table ---------------------------------------------------


def kinds_router() -> Router:
    router = Router()

    @router.message("value")
    def value(data: Any) -> Any:
        return data + 1

    @router.message("returns_generator")
    def returns_generator(data: Any) -> Iterator[int]:
        return (i for i in range(data))

    @router.message("list")
    def a_list(data: Any) -> Any:
        return [0, 1, 2]

    @router.message("generator")
    def generator(data: Any) -> Any:
        yield from range(data)

    return router


def test_test_client_plain_returning_generator_streams() -> None:
    client = TestClient(kinds_router())
    assert client.handlers.family is Family.SYNC
    assert client.send("value", 1) == 2
    assert client.stream("returns_generator", 3) == [0, 1, 2]
    assert client.send("returns_generator", 3) == 2  # the last item, as lastValueFrom
    assert client.stream("list", 0) == [[0, 1, 2]]
    assert client.stream("generator", 2) == [0, 1]


def with_async_answer(router: Router) -> Router:
    @router.message("async")
    async def answer(data: Any) -> Any:
        return 42

    return router


def test_test_client_runs_async_routers_as_anyio_does() -> None:
    router = with_async_answer(kinds_router())

    @router.message("agen")
    async def items(data: Any) -> AsyncIterator[int]:
        for i in range(data):
            yield i

    client = TestClient(router)
    assert client.handlers.family is Family.ASYNC
    assert client.send("async", 0) == 42
    assert client.stream("agen", 2) == [0, 1]
    assert client.stream("returns_generator", 2) == [0, 1]


def test_test_client_refuses_what_the_sync_bindings_refuse() -> None:
    router = with_async_answer(Router())
    with pytest.raises(TypeError, match="needs tcpmsg_anyio; tcpmsg_threads runs plain functions"):
        TestClient(router, family=Family.SYNC)


def test_test_client_reports_a_plain_function_returning_a_coroutine() -> None:
    router = Router()

    @router.message("wrapped")
    def wrapped(data: Any) -> Any:
        return coro(data, None)

    with pytest.raises(RemoteError):
        TestClient(router).send("wrapped", 1)


# --- middleware ---------------------------------------------------------------------------


def tracing(name: str, trail: list[str]) -> Any:
    def middleware(data: Any, ctx: Context, call_next: Handler) -> Any:
        trail.append(f"{name}>")
        try:
            return call_next(data, ctx)
        finally:
            trail.append(f"<{name}")

    middleware.__qualname__ = name
    return middleware


def test_middleware_wraps_in_registration_order_and_included_routers_keep_theirs() -> None:
    trail: list[str] = []
    inner = Router()
    inner.use(tracing("inner", trail))

    @inner.message("deep")
    def deep(data: Any) -> Any:
        trail.append("deep")
        return data

    outer = Router()
    outer.use(tracing("first", trail))

    @outer.message("top")
    def top(data: Any) -> Any:
        trail.append("top")
        return data

    @outer.event("evt")
    def evt(data: Any) -> None:
        trail.append("evt")

    outer.include(inner)
    outer.use(tracing("second", trail))  # added later: still wraps what is registered
    client = TestClient(outer)
    assert client.send("top", 1) == 1
    assert trail == ["first>", "second>", "top", "<second", "<first"]
    trail.clear()
    assert client.send("deep", 2) == 2
    assert trail == ["first>", "second>", "inner>", "deep", "<inner", "<second", "<first"]
    trail.clear()
    client.emit("evt", 3)
    assert trail == ["first>", "second>", "evt", "<second", "<first"]
    trail.clear()
    assert TestClient(inner).send("deep", 4) == 4  # the included router, served alone
    assert trail == ["inner>", "deep", "<inner"]


def test_middleware_changes_data_and_results_guards_and_sees_errors() -> None:
    router = Router()
    seen: list[Any] = []

    @router.use
    def guard(data: Any, ctx: Context, call_next: Handler) -> Any:
        if ctx.metadata != {"token": "ok"}:
            raise RpcError({"status": "error", "message": "Forbidden resource"})
        return call_next(data, ctx)

    @router.use
    def errors(data: Any, ctx: Context, call_next: Handler) -> Any:
        try:
            return call_next(data, ctx)
        except ValueError as exc:
            seen.append(str(exc))
            raise RpcError(f"bad: {exc}") from exc

    @router.use
    def pipe(data: Any, ctx: Context, call_next: Handler) -> Any:
        return {"result": call_next(data * 10, ctx)}

    @router.message("echo")
    def echo(data: Any) -> Any:
        if data < 0:
            raise ValueError("negative")
        return data

    client = TestClient(router)
    ok = {"token": "ok"}
    assert client.send("echo", 2, metadata=ok) == {"result": 20}
    with pytest.raises(RemoteError) as info:
        client.send("echo", 2)
    assert info.value.error == {"status": "error", "message": "Forbidden resource"}
    with pytest.raises(RemoteError) as info:
        client.send("echo", -1, metadata=ok)
    assert info.value.error == {"status": "error", "message": "bad: negative"} and seen == ["negative"]


def test_async_middleware_awaits_every_kind_of_handler() -> None:
    router = kinds_router()

    @router.use
    async def plus_one(data: Any, ctx: Context, call_next: Handler) -> Any:
        result = await call_next(data, ctx)
        return result + 1 if isinstance(result, int) else result

    @router.message("async")
    async def answer(data: Any) -> Any:
        return 41

    client = TestClient(router)
    assert client.send("async", 0) == 42
    assert client.send("value", 1) == 3
    assert client.stream("generator", 2) == [0, 1]  # call_next gives the iterator


@pytest.mark.parametrize(("family", "says"), [
    (Family.SYNC, "which runs plain functions and generators"),
    (Family.ASYNC, "which runs async def middleware (await call_next(data, ctx))"),
])
def test_middleware_a_binding_cannot_run_is_refused(family: Family, says: str) -> None:
    router = router_with(plain)

    async def async_mw(data: Any, ctx: Any, call_next: Any) -> Any:
        return await call_next(data, ctx)

    def plain_mw(data: Any, ctx: Any, call_next: Any) -> Any:
        return call_next(data, ctx)

    router.use(async_mw if family is Family.SYNC else plain_mw)
    with pytest.raises(TypeError) as info:
        Handlers(router, family=family, binding="tcpmsg_x")
    assert "middleware " in str(info.value) and str(info.value).endswith(f"cannot run on tcpmsg_x, {says}")


def test_run_handler_on_a_bare_router_runs_coroutines() -> None:
    from sansio_tcpmsg.testing import run_handler

    router = Router()
    router.message("add")(coro)
    conn = ServerConnection(router)
    run_handler(conn, one_request(conn))
    assert conn.data_to_send() == encode_frame('{"response":2,"isDisposed":true,"id":"r"}')


def test_without_middleware_the_handler_is_called_as_is() -> None:
    router = router_with(coro)
    route = '{"cmd":"add"}'
    assert Handlers(router, family=Family.ASYNC, binding="x").message_handler(route) is router.message_handler(route)


# --- on_finish: when a middleware's call is over ------------------------------------------


def _run(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("waited on an event loop")


def test_on_finish_a_value_is_done_at_once() -> None:
    seen: list[Any] = []
    assert on_finish({"a": 1}, seen.append) == {"a": 1} and seen == [None]


def test_on_finish_a_stream_is_done_after_its_last_item() -> None:
    seen: list[Any] = []
    items = on_finish(iter([1, 2]), seen.append)
    assert next(items) == 1 and seen == []
    assert list(items) == [2] and seen == [None]


def test_on_finish_a_failing_stream_gives_its_exception() -> None:
    seen: list[Any] = []

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("broken")

    items = on_finish(failing(), seen.append)
    with pytest.raises(ValueError):
        list(items)
    assert len(seen) == 1 and isinstance(seen[0], ValueError)


def test_on_finish_a_stream_closed_early_is_not_a_failure() -> None:
    seen: list[Any] = []
    closed: list[bool] = []

    def endless() -> Iterator[int]:
        try:
            while True:
                yield 1
        finally:
            closed.append(True)

    items = on_finish(endless(), seen.append)
    assert next(items) == 1
    close(items)
    assert seen == [None] and closed == [True]


def test_on_finish_async_streams() -> None:
    seen: list[Any] = []

    async def two() -> AsyncIterator[int]:
        yield 1
        yield 2

    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("broken")

    async def collect(items: AsyncIterator[Any]) -> list[Any]:
        return [item async for item in items]

    assert _run(collect(on_finish(two(), seen.append))) == [1, 2] and seen == [None]
    with pytest.raises(ValueError):
        _run(collect(on_finish(failing(), seen.append)))
    assert isinstance(seen[1], ValueError)
    items = on_finish(two(), seen.append)
    assert _run(items.__anext__()) == 1
    _run(items.aclose())
    assert seen[2:] == [None]


# -- watching: one middleware body for both colours ------------------------------------


def _run_async(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def _watch_log(seen: list[Any], *, swallow: bool = False, twice: bool = False) -> Any:
    def watch(ctx: Any) -> Any:
        seen.append(("before", ctx))
        try:
            result = yield
        except ValueError as exc:
            seen.append(("raised", str(exc)))
            if not swallow:
                raise
            return None
        if twice:
            yield
        seen.append(("after", result))
        return result * 10

    return watch


@pytest.mark.parametrize("asynchronous", [False, True])
def test_watching_gives_the_result_and_returns_what_the_watch_returns(asynchronous: bool) -> None:
    seen: list[Any] = []

    def handler(data: Any, ctx: Any) -> Any:
        return data + 1

    async def async_handler(data: Any, ctx: Any) -> Any:
        return data + 1

    if asynchronous:
        middleware = handlers.watching_async(_watch_log(seen))
        assert _run_async(middleware(1, "ctx", async_handler)) == 20
    else:
        assert handlers.watching(_watch_log(seen))(1, "ctx", handler) == 20
    assert seen == [("before", "ctx"), ("after", 2)]


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("swallow", [False, True])
def test_watching_shows_the_exception_which_still_propagates(asynchronous: bool, swallow: bool) -> None:
    seen: list[Any] = []

    def handler(data: Any, ctx: Any) -> Any:
        raise ValueError("boom")

    async def async_handler(data: Any, ctx: Any) -> Any:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        if asynchronous:
            _run_async(handlers.watching_async(_watch_log(seen, swallow=swallow))(1, "ctx", async_handler))
        else:
            handlers.watching(_watch_log(seen, swallow=swallow))(1, "ctx", handler)
    assert seen == [("before", "ctx"), ("raised", "boom")]


def test_watching_refuses_a_watch_that_yields_twice() -> None:
    with pytest.raises(RuntimeError, match="yielded twice"):
        handlers.watching(_watch_log([], twice=True))(1, "ctx", lambda data, ctx: data)

    def catches(ctx: Any) -> Any:
        try:
            yield
        except ValueError:
            yield

    def fails(data: Any, ctx: Any) -> Any:
        raise ValueError("boom")

    with pytest.raises(RuntimeError, match="yielded twice") as info:
        handlers.watching(catches)(1, "ctx", fails)
    assert isinstance(info.value.__cause__, ValueError)
