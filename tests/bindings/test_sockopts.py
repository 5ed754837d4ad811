"""Socket options are data: decided once, checked without a socket."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from tcpmsg_sockopts import apply_options, keepalive_options, listen_options

from sansio_tcpmsg import Keepalive


def test_keepalive_on_by_default_with_its_knobs() -> None:
    options = keepalive_options()
    assert options[0] == (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    assert keepalive_options(True) == keepalive_options(Keepalive()) == options
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
        assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60) in options
        assert (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10) in options
        assert (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 6) in options
        assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5) in keepalive_options(Keepalive(idle=5))


@pytest.mark.parametrize("off", [False, None])
def test_keepalive_off(off: Any) -> None:
    assert keepalive_options(off) == [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)]


def test_listen_options() -> None:
    assert listen_options() == [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]
    assert (socket.SOL_SOCKET, socket.SO_REUSEPORT, 1) in listen_options(reuse_port=True)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.calls.append((level, option, value))


def test_apply_sets_each_option_in_order() -> None:
    sock = Recorder()
    apply_options(sock, keepalive_options())
    assert sock.calls == keepalive_options()


# -- every client connection has keepalive (configurable) -------------------------------


def _keepalive_of(sock: Any) -> tuple[int, int | None]:
    idle = None
    if hasattr(socket, "TCP_KEEPIDLE"):
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), idle


@pytest.fixture
def listener() -> Any:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        yield srv


@pytest.mark.parametrize("keepalive,expected", [
    (True, (1, 60)), (Keepalive(idle=7), (1, 7)), (False, (0, None)),
])
def test_sync_client_sockets_have_keepalive(listener: Any, keepalive: Any, expected: Any) -> None:
    import tcpmsg_threads

    with tcpmsg_threads.connect("127.0.0.1", listener.getsockname()[1], keepalive=keepalive) as c:
        on, idle = _keepalive_of(c._session.sock)
    assert on == expected[0]
    if expected[1] is not None and idle is not None:
        assert idle == expected[1]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_client_sockets_have_keepalive(listener: Any, backend: str) -> None:
    import anyio
    import tcpmsg_anyio

    async def main() -> tuple[int, int | None]:
        async with tcpmsg_anyio.connect("127.0.0.1", listener.getsockname()[1],
                                        keepalive=Keepalive(idle=9)) as c:
            carrier = c._link.carrier
            transport = getattr(carrier, "transport", None)
            if transport is not None:
                return _keepalive_of(transport.get_extra_info("socket"))
            return _keepalive_of(carrier.stream.extra(anyio.abc.SocketAttribute.raw_socket))

    on, idle = anyio.run(main, backend=backend)
    assert on == 1
    assert idle in (9, None)


def test_keepalive_of_the_wrong_type_is_named() -> None:
    with pytest.raises(TypeError, match="keepalive must be"):
        keepalive_options(5)  # type: ignore[arg-type]
