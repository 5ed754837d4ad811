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
