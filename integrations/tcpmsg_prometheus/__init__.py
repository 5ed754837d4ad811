"""Prometheus metrics for servers and clients of every binding.

Install with ``pip install 'sansio-tcpmsg[prometheus]'``. One :class:`Metrics` holds the
metrics (in ``prometheus_client``'s default registry unless given one); nothing in the
bindings changes::

    metrics = Metrics()
    router.use(metrics.middleware())            # anyio: metrics.async_middleware()
    with tcpmsg_threads.serve(router, port=3000) as server:
        metrics.track(server)                   # open connections
        ...
    client = metrics.client(tcpmsg_threads.connect(port=3001))   # any binding's client

Server side, per ``route`` and ``kind`` (``request`` or ``event``):
``tcpmsg_server_requests_total``, ``tcpmsg_server_errors_total`` (the handler, or a
middleware inside this one, raised; an ``RpcError`` counts too),
``tcpmsg_server_duration_seconds`` (a histogram; a stream until its last item) and
``tcpmsg_server_in_flight``; ``tcpmsg_server_connections``, the open connections of the
tracked servers. Client side, per ``pattern`` (normalized, as the server routes it) and
``kind`` (``send``, ``stream``, ``emit``): ``tcpmsg_client_requests_total``,
``tcpmsg_client_errors_total``, ``tcpmsg_client_duration_seconds``,
``tcpmsg_client_in_flight``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from sansio_tcpmsg import Context, normalize_pattern
from sansio_tcpmsg.calls import Call, Intercepted, intercept
from sansio_tcpmsg.handlers import Kind, kind_of, on_finish, watching, watching_async

__all__ = ["Metrics"]

_clock = time.perf_counter


class _Family:
    """requests, errors, duration and in-flight, with the same labels."""

    def __init__(self, side: str, labels: list[str], registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        what = "requests and events" if side == "server" else "calls"
        self.requests = Counter(f"tcpmsg_{side}_requests", f"{what.capitalize()} started", labels, registry=registry)
        self.errors = Counter(f"tcpmsg_{side}_errors", f"{what.capitalize()} that raised", labels, registry=registry)
        self.duration = Histogram(
            f"tcpmsg_{side}_duration_seconds", f"Time from start to the last reply of {what}", labels,
            registry=registry, buckets=buckets,
        )
        self.in_flight = Gauge(f"tcpmsg_{side}_in_flight", f"{what.capitalize()} in progress", labels, registry=registry)

    def start(self, *labels: str) -> Callable[[BaseException | None], None]:
        """Count a call; what to call once it is over (``on_finish``'s ``done``)."""
        self.requests.labels(*labels).inc()
        in_flight = self.in_flight.labels(*labels)
        in_flight.inc()
        started = _clock()

        def done(error: BaseException | None) -> None:
            self.duration.labels(*labels).observe(_clock() - started)
            in_flight.dec()
            if error is not None:
                self.errors.labels(*labels).inc()

        return done


class Metrics:
    """The metrics of servers and clients, registered in ``registry`` (by default
    prometheus_client's global ``REGISTRY``).

    ``buckets``: the duration histograms' buckets, in seconds (prometheus_client's
    defaults unless given).
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, buckets: tuple[float, ...] = Histogram.DEFAULT_BUCKETS
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self.server = _Family("server", ["route", "kind"], registry, buckets)
        self.calls = _Family("client", ["pattern", "kind"], registry, buckets)
        self._servers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.connections = Gauge("tcpmsg_server_connections", "Open connections of the tracked servers",
                                 registry=registry)
        self.connections.set_function(lambda: sum(server.connections for server in list(self._servers)))

    # -- servers ------------------------------------------------------------------------

    def _start(self, ctx: Context) -> Callable[[BaseException | None], None]:
        route = ctx.route if ctx.route is not None else str(ctx.pattern)
        return self.server.start(route, "event" if ctx.is_event else "request")

    def _watch(self, ctx: Context) -> Generator[None, Any, Any]:
        done = self._start(ctx)
        try:
            result = yield
        except BaseException as exc:
            done(exc)
            raise
        return on_finish(result, done)

    def middleware(self) -> Callable[[Any, Context, Any], Any]:
        """Server middleware for threads and gevent: ``router.use(metrics.middleware())``."""
        return watching(self._watch)

    def async_middleware(self) -> Callable[[Any, Context, Any], Awaitable[Any]]:
        """Server middleware for anyio: ``router.use(metrics.async_middleware())``."""
        return watching_async(self._watch)

    def track(self, server: Any) -> Any:
        """Count ``server``'s open connections in ``tcpmsg_server_connections`` (any
        binding's server: its ``connections``); returns ``server``. Forgotten when the
        server object is."""
        self._servers.add(server)
        return server

    # -- clients ------------------------------------------------------------------------

    def _start_call(self, call: Call) -> Callable[[BaseException | None], None]:
        return self.calls.start(normalize_pattern(call.pattern), call.kind)

    def client(self, client: Any) -> Intercepted:
        """``client`` (any binding's, single or pooled) with every ``send``, ``stream`` and
        ``emit`` measured (``sansio_tcpmsg.calls.intercept``)."""
        if kind_of(client.send) is Kind.ASYNC:

            async def measured_async(call: Call, call_next: Callable[[Call], Any]) -> Any:
                done = self._start_call(call)
                try:
                    result = await call_next(call)
                except BaseException as exc:
                    done(exc)
                    raise
                return on_finish(result, done) if call.kind == "stream" else _ended(result, done)

            return intercept(client, measured_async)

        def measured(call: Call, call_next: Callable[[Call], Any]) -> Any:
            done = self._start_call(call)
            try:
                result = call_next(call)
            except BaseException as exc:
                done(exc)
                raise
            return on_finish(result, done) if call.kind == "stream" else _ended(result, done)

        return intercept(client, measured)


def _ended(result: Any, done: Callable[[BaseException | None], None]) -> Any:
    """A reply's value is one value even when it is a list (``on_finish`` would agree) or
    a string; said outright so that no reply is ever taken for a stream."""
    done(None)
    return result
