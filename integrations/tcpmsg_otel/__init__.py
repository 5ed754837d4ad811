"""OpenTelemetry tracing: a span per request and per event, trace context across the wire.

Install with ``pip install 'sansio-tcpmsg[otel]'`` (and configure an SDK as usual). Two
pieces, nothing in the bindings:

- client: :func:`inject`, a dispatch hook, writes the current trace context (W3C
  ``traceparent`` / ``tracestate``, or whatever propagator is configured) into every
  request's and event's NestJS 12 ``metadata``: ``connect(..., on_dispatch=inject)``;
- server: :func:`middleware` (threads, gevent) or :func:`async_middleware` (anyio), for
  ``router.use``: extracts the context from ``ctx.metadata`` and runs the handler in a
  span (``SERVER`` for a request, ``CONSUMER`` for an event) named by its route, with
  the RPC attributes ``rpc.system`` (``"nestjs_tcp"``), ``rpc.method`` (the route) and
  the peer's ``network.peer.address`` / ``network.peer.port``; an exception is recorded
  and sets the status to ``ERROR`` (with ``error.type``). A streamed reply's span ends
  with its last item (the items are made outside the span's context).

A NestJS client writes the same ``traceparent`` from its dispatch hook
(``client.setOnDispatchHook(p => { p.metadata = {traceparent} })``), and a NestJS handler
reads ours with ``ctx.getMetadata()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from sansio_tcpmsg import Context
from sansio_tcpmsg.handlers import on_finish

__all__ = ["SYSTEM", "async_middleware", "inject", "middleware"]

#: The ``rpc.system`` attribute of every span.
SYSTEM = "nestjs_tcp"


def inject(packet: dict[str, Any]) -> None:
    """A dispatch hook (``connect(..., on_dispatch=inject)``): the current trace context
    into the packet's ``metadata``, next to what the call gave (a ``metadata`` that is
    not a dict is left alone)."""
    metadata = packet.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return
    carrier = dict(metadata or ())
    propagate.inject(carrier)
    if carrier:
        packet["metadata"] = carrier


class _Tracer:
    def __init__(self, tracer_provider: TracerProvider | None) -> None:
        self.tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)

    def start(self, ctx: Context) -> tuple[Span, otel_context.Context]:
        metadata = ctx.metadata
        parent = propagate.extract(metadata) if isinstance(metadata, dict) else None
        route = ctx.route if ctx.route is not None else str(ctx.pattern)
        attributes: dict[str, Any] = {"rpc.system": SYSTEM, "rpc.method": route}
        peer = ctx.peer
        if isinstance(peer, tuple) and len(peer) >= 2:
            attributes["network.peer.address"] = str(peer[0])
            attributes["network.peer.port"] = peer[1]
        kind = SpanKind.CONSUMER if ctx.is_event else SpanKind.SERVER
        span = self.tracer.start_span(route, context=parent, kind=kind, attributes=attributes)
        return span, trace.set_span_in_context(span, parent)


def _ender(span: Span) -> Callable[[BaseException | None], None]:
    """What ends ``span`` once the call is over (see ``on_finish``)."""

    def end(error: BaseException | None) -> None:
        if error is None:
            span.set_status(Status(StatusCode.OK))
        else:
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()

    return end


def middleware(*, tracer_provider: TracerProvider | None = None) -> Callable[[Any, Context, Any], Any]:
    """Server middleware for threads and gevent (``router.use(middleware())``): a span
    around every request and event (``tracer_provider``: the global one by default)."""
    tracer = _Tracer(tracer_provider)

    def traced(data: Any, ctx: Context, call_next: Callable[[Any, Context], Any]) -> Any:
        span, current = tracer.start(ctx)
        end = _ender(span)
        token = otel_context.attach(current)
        try:
            result = call_next(data, ctx)
        except BaseException as exc:
            end(exc)
            raise
        finally:
            otel_context.detach(token)
        return on_finish(result, end)

    return traced


def async_middleware(
    *, tracer_provider: TracerProvider | None = None
) -> Callable[[Any, Context, Any], Awaitable[Any]]:
    """Server middleware for anyio (``router.use(async_middleware())``): as
    :func:`middleware`, awaited."""
    tracer = _Tracer(tracer_provider)

    async def traced(data: Any, ctx: Context, call_next: Callable[[Any, Context], Any]) -> Any:
        span, current = tracer.start(ctx)
        end = _ender(span)
        token = otel_context.attach(current)
        try:
            result = await call_next(data, ctx)
        except BaseException as exc:
            end(exc)
            raise
        finally:
            otel_context.detach(token)
        return on_finish(result, end)

    return traced
