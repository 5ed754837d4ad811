"""Greenlet client and server: the ``tcpmsg_threads`` implementation on gevent primitives.

No monkey-patching is needed: sockets, locks, queues and tasks come from gevent directly
(:class:`GeventBackend`).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from tcpmsg_threads import Client, Server, run_with

from sansio_tcpmsg import Codec, ConnectionStatus, Limits, Router

from ._backend import GeventBackend

__all__ = ["Client", "GeventBackend", "Server", "connect", "run", "serve"]

_BACKEND = GeventBackend()


def connect(
    host: str = "localhost",
    port: int = 3000,
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float | None = 30.0,
    connect_timeout: float | None = 10.0,
    retries: int = 0,
    retry_delay: float = 0.1,
    limits: Limits | None = None,
    codec: Codec | None = None,
    on_status: Callable[[ConnectionStatus], object] | None = None,
) -> Client:
    """A client for ``host:port``; use it as a context manager (entering connects)."""
    return Client(host, port, tls=tls, server_hostname=server_hostname, timeout=timeout,
                  connect_timeout=connect_timeout, retries=retries, retry_delay=retry_delay,
                  limits=limits, codec=codec, on_status=on_status, backend=_BACKEND)


def serve(
    router: Router,
    host: str = "localhost",
    port: int = 3000,
    *,
    tls: ssl.SSLContext | None = None,
    limits: Limits | None = None,
    codec: Codec | None = None,
    grace: float = 5.0,
    max_workers: int = 64,
) -> Server:
    """A server for ``router`` (a greenlet per request); use it as a context manager."""
    return Server(router, host, port, tls=tls, limits=limits, codec=codec, grace=grace,
                  max_workers=max_workers, backend=_BACKEND)


def run(router: Router, host: str = "localhost", port: int = 3000, **kwargs: Any) -> None:
    """Serve ``router`` until interrupted (Ctrl-C)."""
    run_with(serve(router, host, port, **kwargs))
