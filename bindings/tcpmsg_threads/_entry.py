"""The public entry points of a sync binding, bound to its backend once."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from sansio_tcpmsg import Codec, ConnectionStatus, Limits, Router

from ._backend import Backend
from ._client import Client
from ._server import Server

__all__ = ["EntryPoints", "run_with"]


def run_with(server: Server) -> None:
    """Serve with ``server`` until interrupted, then close it gracefully."""
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


class EntryPoints:
    """``connect``, ``serve`` and ``run`` for one backend (threads or gevent)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def connect(
        self,
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
                      limits=limits, codec=codec, on_status=on_status, backend=self.backend)

    def serve(
        self,
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
        """A server for ``router``; use it as a context manager (entering binds and serves).

        Requests run on a pool of ``max_workers`` threads (threads) or a greenlet each
        (gevent).
        """
        return Server(router, host, port, tls=tls, limits=limits, codec=codec, grace=grace,
                      max_workers=max_workers, backend=self.backend)

    def run(self, router: Router, host: str = "localhost", port: int = 3000, **kwargs: Any) -> None:
        """Serve ``router`` until interrupted (Ctrl-C)."""
        run_with(self.serve(router, host, port, **kwargs))
