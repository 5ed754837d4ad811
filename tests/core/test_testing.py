"""sansio_tcpmsg.testing: handlers exercised through real frames, no sockets."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from sansio_tcpmsg import ConnectionClosedError, NoHandlerError, RemoteError, Router, RpcError
from sansio_tcpmsg.events import RequestReceived, RequestTimedOut
from sansio_tcpmsg.limits import Limits
from sansio_tcpmsg.testing import ConnectionPair, FakeClock, TestClient

router = Router()
seen: list[Any] = []


@router.message({"cmd": "sum"})
def add(data: list[int]) -> int:
    return sum(data)


@router.message("count")
def count(data: int, ctx: Any) -> Any:
    yield from range(data)


@router.message("acount")
async def acount(data: int, ctx: Any) -> Any:
    for i in range(data):
        yield i


@router.message("async")
async def double(data: int) -> int:
    return data * 2


class Pause:
    """An awaitable that suspends, as waiting on an event loop does."""

    def __await__(self) -> Any:
        yield


@router.message("sleepy")
async def sleepy(data: int) -> int:
    await Pause()
    return data


@router.message("fails")
def fails(data: Any) -> Any:
    raise RpcError({"code": data})


@router.message("ctx")
def context(data: Any, ctx: Any) -> Any:
    return [ctx.pattern, ctx.route, ctx.metadata, ctx.peer]


@router.event("seen")
def record(data: Any) -> None:
    seen.append(data)


@router.event("seen")
async def record_again(data: Any) -> None:
    seen.append(-data)


def test_test_client_covers_every_handler_style() -> None:
    client = TestClient(router)
    assert client.send({"cmd": "sum"}, [1, 2]) == 3
    assert client.stream("count", 3) == [0, 1, 2]
    assert client.stream("acount", 2) == [0, 1]
    assert client.send("async", 4) == 8
    assert client.send("ctx", 0, metadata={"t": 1}) == ["ctx", "ctx", {"t": 1}, ["memory", 0]]
    client.emit("seen", 5)
    assert seen == [5, -5]
    with pytest.raises(RemoteError) as info:
        client.send("fails", 7)
    assert info.value.error == {"code": 7}
    with pytest.raises(NoHandlerError):
        client.send("nope", 1)


def test_a_handler_that_really_waits_is_reported() -> None:
    with pytest.raises(RemoteError):
        TestClient(router).send("sleepy", 1)


def test_connection_pair_with_fake_clock() -> None:
    pair = ConnectionPair(router, clock=FakeClock(100.0), limits=Limits(incomplete_frame_timeout=1.0))
    rid = pair.client.send_request({"cmd": "sum"}, [1], deadline=pair.clock.now + 5)
    [event] = pair.to_server()
    assert isinstance(event, RequestReceived)
    client_events, server_events = pair.advance(5)
    assert client_events == [RequestTimedOut(rid)] and server_events == []
    pair.server.respond(event.request_id, 1)
    assert pair.to_client() == []  # the late reply is dropped


def test_closed_connection_is_reported() -> None:
    client = TestClient(router)
    client.pair.client.receive_data(b"xx#", 0.0)
    client.pair.client.events_received()
    client.pair.server.close()
    with pytest.raises(ConnectionClosedError):
        client.send("async", 1)


def test_importing_the_core_loads_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import sansio_tcpmsg, sansio_tcpmsg.testing;"
        "new = {m.split('.')[0] for m in set(sys.modules) - before};"
        "print(sorted(m for m in new if m not in sys.stdlib_module_names and m != 'sansio_tcpmsg'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_core_does_not_import_sockets_threads_or_clocks() -> None:
    import ast
    import pathlib

    import sansio_tcpmsg

    forbidden = {"socket", "threading", "time", "asyncio", "selectors", "ssl", "datetime"}
    for path in pathlib.Path(sansio_tcpmsg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = {node.module.split(".")[0]}
            else:
                continue
            assert not names & forbidden, f"{path.name} imports {names & forbidden}"
