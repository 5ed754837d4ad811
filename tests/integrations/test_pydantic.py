"""tcpmsg_pydantic: typed handlers in TestClient, on every binding, and with NestJS 12
both ways; the typed client on every binding."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nest
import pydantic
import pytest
import typed_service
from conftest import is_async
from facade import Binding
from tcpmsg_pydantic import TypedRouter, typed, typed_client
from typed_service import Color, Order, Point

from sansio_tcpmsg import RemoteError, Router
from sansio_tcpmsg.testing import TestClient

PLACED = "2026-05-01T10:00:00Z"
ORDER = {"id": 1, "items": ["a"], "placed": PLACED}
ORDER_BACK = {"id": 2, "items": ["a"], "placed": PLACED, "color": "red",
              "ref": "00000000-0000-0000-0000-000000000001"}


def failure(call: Any) -> Any:
    with pytest.raises(RemoteError) as info:
        call()
    return info.value.error


def check_service(send: Any, stream: Any) -> None:
    """What every face of the typed service answers (TestClient, each binding, NestJS)."""
    assert send("order", ORDER) == ORDER_BACK
    assert send("point", {"x": "3", "y": 4}) == {
        "point": {"x": 3, "y": 4}, "route": "point", "at": "2026-01-02T03:04:05"}
    assert send("span", {"start": "2026-02-27", "days": 2}) == "2026-03-01"
    assert send("total", [1, "2", 3]) == 6
    assert send("untyped", {"any": ["thing"]}) == {"any": ["thing"]}
    assert send("later", "2026-05-01T10:00:00+00:00") == "2026-05-01T11:00:00Z"
    assert stream("points", 2) == [{"x": 0, "y": 0}, {"x": 1, "y": 2}]
    assert stream("colors", 3) == ["red", "blue", "red"]
    error = failure(lambda: send("order", {"id": "x", "items": "a"}))
    assert error["status"] == "error" and error["message"] == "Validation failed"
    assert [(e["loc"], e["type"]) for e in error["errors"]] == [
        (["id"], "int_parsing"), (["items"], "list_type"), (["placed"], "missing")]
    assert error["errors"][0]["input"] == "x" and "url" not in error["errors"][0]
    error = failure(lambda: send("point", {"x": 1, "y": -1}))
    assert error["errors"][0]["loc"] == ["y"] and error["errors"][0]["type"] == "greater_than_equal"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_typed_service_in_test_client(asynchronous: bool) -> None:
    client = TestClient(typed_service.build(asynchronous))
    check_service(client.send, client.stream)


def test_invalid_data_never_reaches_the_handler() -> None:
    calls: list[Any] = []
    router = TypedRouter()

    @router.message("order")
    def order(o: Order) -> None:
        calls.append(o)

    @router.event("orders")
    def orders(o: Order) -> None:
        calls.append(o)

    client = TestClient(router)
    failure(lambda: client.send("order", {"id": 1}))
    client.emit("orders", {"id": 1})  # logged by the server as a failed event handler
    assert calls == []
    client.emit("orders", ORDER)
    assert calls == [Order.model_validate(ORDER)]


def test_unannotated_handlers_are_registered_as_they_are() -> None:
    router = TypedRouter()

    def echo(data: Any, ctx: Any) -> Any:
        return data

    def bare(data, ctx):  # type: ignore[no-untyped-def]
        return data

    router.message("annotated-any")(echo)
    router.message("bare")(bare)
    assert router.message_handler("bare") is bare
    assert router.message_handler("annotated-any") is not echo  # typed: Any in, any value out


def test_typed_as_a_decorator_under_any_router() -> None:
    router = Router()

    @router.message("stamp")
    @typed
    def stamp(data: datetime.date) -> dict[str, Any]:
        return {"date": data, "id": uuid.UUID(int=7), "color": Color.BLUE, "point": Point(1, 2)}

    @router.message("anything")
    @typed
    def anything(data, ctx):  # type: ignore[no-untyped-def]  # nothing annotated: results serialized
        return [Order.model_validate(ORDER), datetime.time(1, 2)]

    client = TestClient(router)
    assert client.send("stamp", "2026-01-01") == {
        "date": "2026-01-01", "id": "00000000-0000-0000-0000-000000000007", "color": "blue",
        "point": {"x": 1, "y": 2}}
    assert client.send("anything", None) == [{**ORDER, "color": "red", "ref": None}, "01:02:00"]


def test_typed_streams_close_the_handler_when_left_early() -> None:
    closed: list[str] = []

    @typed
    def numbers(n: int) -> Iterator[int]:
        try:
            yield from range(n)
        finally:
            closed.append("sync")

    @typed
    async def anumbers(n: int) -> AsyncIterator[str]:
        try:
            for i in range(n):
                yield str(i)
        finally:
            closed.append("async")

    items = numbers("5", None)
    assert next(items) == 0
    items.close()
    aitems = anumbers(5, None)
    coro = aitems.__anext__()
    with pytest.raises(StopIteration) as first:
        coro.send(None)
    assert first.value.value == "0"
    with pytest.raises(StopIteration):
        aitems.aclose().send(None)
    assert closed == ["sync", "async"]


def test_types_defined_where_the_handler_is_decorated() -> None:
    class Local(pydantic.BaseModel):  # a string annotation below (from __future__ import annotations)
        n: int

    router = TypedRouter()

    @router.message("local")
    def local(data: Local) -> Local:
        return Local(n=data.n + 1)

    @router.message("local.typed")
    @typed
    def local_typed(data: Local) -> int:
        return data.n

    client = TestClient(router)
    assert client.send("local", {"n": "1"}) == {"n": 2} and client.send("local.typed", {"n": 5}) == 5


class Doubler:
    """A handler that is an object with a ``__call__``."""

    def __call__(self, data: list[int]) -> list[int]:
        return [n * 2 for n in data]


def test_callable_objects_and_partials() -> None:
    import functools

    def scale(factor: int, data: list[int]) -> list[int]:
        return [n * factor for n in data]

    def untyped_object(data, ctx):  # type: ignore[no-untyped-def]
        return data

    router = TypedRouter()
    router.message("double")(Doubler())
    router.message("triple")(functools.partial(scale, 3))
    router.message("plain")(functools.partial(untyped_object))
    client = TestClient(router)
    assert client.send("double", ["1", 2]) == [2, 4] and client.send("triple", [1]) == [3]
    assert client.send("plain", "x") == "x"


class NotAModel:
    """Nothing pydantic can build a schema for."""


def test_annotations_pydantic_cannot_use_are_refused_at_registration() -> None:
    with pytest.raises(TypeError, match="pydantic cannot use the annotations of plain function"):
        @typed
        def bad(data: NotAModel) -> None:
            pass

    with pytest.raises(TypeError, match="cannot read the annotations"):
        @typed
        def unresolved(data: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
            pass


# -- every binding ---------------------------------------------------------------------


def test_typed_service_and_typed_client_on_every_binding(binding: Binding) -> None:
    router = typed_service.build(is_async(binding))
    with binding.serve(router) as srv, binding.connect(srv.port) as client:
        check_service(client.send, lambda pattern, data: list(client.stream(pattern, data)))
        client.raw = typed_client(client.raw)
        order = Order.model_validate(ORDER)
        back = client.send("order", order, result_type=Order)
        assert isinstance(back, Order) and back.id == 2 and back.ref == uuid.UUID(int=1)
        assert client.send("point", Point(5, 6), result_type=dict[str, Any])["point"] == {"x": 5, "y": 6}
        assert list(client.stream("points", 2, result_type=Point)) == [Point(0, 0), Point(1, 2)]
        assert list(client.stream("colors", 2, result_type=Color)) == [Color.RED, Color.BLUE]
        assert client.send("later", datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
                           result_type=datetime.datetime) == datetime.datetime(
            2026, 1, 1, 1, tzinfo=datetime.timezone.utc)
        assert client.send("total", (1, 2)) == 3  # no result_type: the reply as it came
        with pytest.raises(pydantic.ValidationError):
            client.send("total", [1], result_type=Order)  # a reply that is not a T


# -- NestJS 12 ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["threads", "anyio-asyncio"])
def served(request: pytest.FixtureRequest, node_ready: None) -> Iterator[Any]:
    from conftest import get_binding

    binding = get_binding(request.param)
    with binding.serve(typed_service.build(is_async(binding))) as srv, nest.NestClient(12, srv.port) as cli:
        yield cli


def test_nestjs_client_calls_typed_handlers(served: nest.NestClient) -> None:
    def send(pattern: str, data: Any) -> Any:
        res = served.request("send", pattern, data)
        if "error" in res:
            raise RemoteError(res["error"])
        return res["values"][-1]

    def stream(pattern: str, data: Any) -> Any:
        res = served.request("send", pattern, data)
        assert "error" not in res, res
        return res["values"]

    check_service(send, stream)


def test_typed_client_against_a_nestjs_server(node_ready: None) -> None:
    import tcpmsg_threads

    @dataclasses.dataclass
    class Reading:
        at: datetime.datetime
        value: float

    with nest.NestServer(12) as server, typed_client(tcpmsg_threads.connect("127.0.0.1", server.port)) as client:
        order = Order.model_validate(ORDER)
        assert client.send("echo", order, result_type=Order) == order
        reading = Reading(datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc), 1.5)
        assert client.send("echo", [reading], result_type=list[Reading]) == [reading]
        assert client.send("echo", reading) == {"at": "2026-01-01T12:00:00Z", "value": 1.5}
        assert list(client.stream("stream", {"count": 3}, result_type=float)) == [0.0, 1.0, 2.0]
