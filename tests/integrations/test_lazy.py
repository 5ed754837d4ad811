"""``connect(..., lazy=True)`` on every binding, single and pooled: entering the client
opens nothing and cannot fail; the first call opens the connection (and fails, with the
backend down, leaving the next call to try again)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import tcpmsg_threads
from facade import Binding

from sansio_tcpmsg import ConnectionStatus, Router

router = Router()


@router.message("echo")
def echo(data: Any) -> Any:
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_eager_is_the_default(binding: Binding) -> None:
    with pytest.raises(OSError):
        with binding.connect(free_port()):
            pass


def test_lazy_starts_while_the_backend_is_down(binding: Binding) -> None:
    port = free_port()
    with binding.connect(port, lazy=True) as client:
        assert client.status is ConnectionStatus.DISCONNECTED
        with pytest.raises(OSError):
            client.send("echo", 1)
        with tcpmsg_threads.serve(router, "127.0.0.1", port):
            assert client.send("echo", 2) == 2
            assert client.status is ConnectionStatus.CONNECTED


def test_lazy_pool_connects_in_the_background(binding: Binding) -> None:
    port = free_port()
    with binding.connect(port, lazy=True, pool_size=2, backoff_max=0.1, retry_delay=0.05) as client:
        with pytest.raises(OSError):
            client.send("echo", 1)
        with tcpmsg_threads.serve(router, "127.0.0.1", port):
            deadline = time.monotonic() + 10  # the pool's next attempt comes within its backoff
            while True:
                try:
                    assert client.send("echo", 3) == 3
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    binding.sleep(0.05)
