"""``codec=PacketCodec(serialize=..., deserialize=...)``: NestJS's packet-level
``serializer`` / ``deserializer`` options, against a NestJS 12 service and client that use
a custom pair (``ENVELOPE=1`` in tests/interop/js: every packet is ``{"v": 1, "packet": ...}``),
on every binding, both directions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import nest
import pytest
from facade import Binding

from sansio_tcpmsg import PacketCodec, RemoteError, Router


def wrap(packet: Any) -> Any:
    return {"v": 1, "packet": packet}


def unwrap(value: Any) -> Any:
    if not isinstance(value, dict) or value.get("v") != 1:
        raise ValueError(f"not an envelope: {value!r}")
    return value["packet"]


ENVELOPE = PacketCodec(serialize=wrap, deserialize=unwrap)
router = Router()


@router.message({"cmd": "sum"})
def add(data: list[int]) -> int:
    return sum(data)


@router.message("count")
def count(n: int) -> Iterator[int]:
    yield from range(n)


@pytest.fixture(scope="module")
def nest_server(node_ready: None) -> Iterator[nest.NestServer]:
    with nest.NestServer(12, env={"ENVELOPE": "1"}) as server:
        yield server


def test_our_client_with_a_nestjs_server_using_a_serializer_pair(binding: Binding, nest_server: nest.NestServer) -> None:
    with binding.connect(nest_server.port, codec=ENVELOPE) as client:
        assert client.send({"cmd": "sum"}, [1, 2, 3]) == 6
        assert list(client.stream("stream", {"count": 3})) == [0, 1, 2]
        with pytest.raises(RemoteError) as info:
            client.send("error.object", 0)
        assert info.value.error == {"code": 42, "reason": "bad"}
        assert client.send("metadata", 0, metadata={"m": 1}) == {"m": 1}


def test_a_nestjs_client_using_a_serializer_pair_with_our_server(binding: Binding, node_ready: None) -> None:
    with binding.serve(router, codec=ENVELOPE) as server, nest.NestClient(12, server.port, env={"ENVELOPE": "1"}) as cli:
        assert cli.request("send", {"cmd": "sum"}, [4, 5])["values"] == [9]
        assert cli.request("send", "count", 3)["values"] == [0, 1, 2]
        assert cli.request("send", "nothing", 0)["error"] == (
            "There is no matching message handler defined in the remote service.")


def test_without_the_pair_the_call_fails(binding: Binding) -> None:
    with binding.serve(router, codec=ENVELOPE) as server, binding.connect(server.port) as client:
        with pytest.raises(OSError):  # the server drops a peer whose packets it refuses
            client.send({"cmd": "sum"}, [1], timeout=5)
