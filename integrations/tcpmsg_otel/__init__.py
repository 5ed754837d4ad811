"""OpenTelemetry tracing: a span per request and per event, trace context across the wire.

Install with ``pip install 'sansio-tcpmsg[otel]'`` (and configure an SDK as usual). Two
pieces, nothing in the bindings:

- client: :func:`inject`, a dispatch hook, writes the current trace context (W3C
  ``traceparent`` / ``tracestate``, or whatever propagator is configured) into every
  request's and event's NestJS 12 ``metadata``: ``connect(..., on_dispatch=inject)``;
- client spans: :func:`traced_client` wraps a client of any binding with a span per call
  (the server's span becomes its child);
- server: :func:`middleware` (threads, gevent) or :func:`async_middleware` (anyio), for
  ``router.use``: extracts the context from ``ctx.metadata`` and runs the handler in a
  span (``SERVER`` for a request, ``CONSUMER`` for an event) named by its route, with
  the RPC attributes ``rpc.system`` (``"nestjs_tcp"``), ``rpc.method`` (the route) and
  the peer's ``network.peer.address`` / ``network.peer.port``; an exception is recorded
  and sets the status to ``ERROR`` (with ``error.type``). A streamed reply's span ends
  with its last item (each item is made in the span's context).

A NestJS client writes the same ``traceparent`` from its dispatch hook
(``client.setOnDispatchHook(p => { p.metadata = {traceparent} })``), and a NestJS handler
reads ours with ``ctx.getMetadata()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from sansio_tcpmsg import Context, normalize_pattern
from sansio_tcpmsg.calls import Call, Intercepted, intercept
from sansio_tcpmsg.handlers import (
    Kind,
    Stream,
    Watch,
    aclose,
    close,
    kind_of,
    on_finish,
    stream_of,
    watching,
    watching_async,
)

__all__ = ["SYSTEM", "async_middleware", "inject", "middleware", "traced_client"]

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


def _within(current: otel_context.Context, result: Any) -> Any:
    """``result``, a stream's items made with ``current`` attached (a generator handler's
    body, or an anyio client's stream, which sends its request at the first item)."""
    stream = stream_of(result)
    if stream is Stream.ITEMS:
        return _items_within(current, result)
    if stream is Stream.ASYNC_ITEMS:
        return _async_items_within(current, result)
    return result


def _items_within(current: otel_context.Context, items: Iterator[Any]) -> Iterator[Any]:
    try:
        while True:
            token = otel_context.attach(current)
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                otel_context.detach(token)
            yield item
    finally:
        close(items)


async def _async_items_within(current: otel_context.Context, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        while True:
            token = otel_context.attach(current)
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                return
            finally:
                otel_context.detach(token)
            yield item
    finally:
        await aclose(items)


def _watch(tracer: _Tracer) -> Watch:
    def watch(ctx: Context) -> Generator[None, Any, Any]:
        span, current = tracer.start(ctx)
        end = _ender(span)
        token = otel_context.attach(current)
        try:
            result = yield
        except BaseException as exc:
            end(exc)
            raise
        finally:
            otel_context.detach(token)
        return on_finish(_within(current, result), end)

    return watch


def middleware(*, tracer_provider: TracerProvider | None = None) -> Callable[[Any, Context, Any], Any]:
    """Server middleware for threads and gevent (``router.use(middleware())``): a span
    around every request and event (``tracer_provider``: the global one by default)."""
    return watching(_watch(_Tracer(tracer_provider)))


def async_middleware(
    *, tracer_provider: TracerProvider | None = None
) -> Callable[[Any, Context, Any], Awaitable[Any]]:
    """Server middleware for anyio (``router.use(async_middleware())``): as
    :func:`middleware`, awaited."""
    return watching_async(_watch(_Tracer(tracer_provider)))


def traced_client(client: Any, *, tracer_provider: TracerProvider | None = None) -> Intercepted:
    """``client`` (any binding's, single or pooled) with a ``CLIENT`` span (``PRODUCER``
    for ``emit``) around each ``send``, ``stream`` and ``emit``, named by the normalized
    pattern, with ``rpc.system`` and ``rpc.method``; give the client
    ``on_dispatch=inject`` too, so that the server's span is this span's child::

        client = traced_client(tcpmsg_threads.connect(port=3000, on_dispatch=inject))
    """
    tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)

    def start(call: Call) -> tuple[Callable[[BaseException | None], None], otel_context.Context]:
        method = normalize_pattern(call.pattern)
        kind = SpanKind.PRODUCER if call.kind == "emit" else SpanKind.CLIENT
        span = tracer.start_span(method, kind=kind, attributes={"rpc.system": SYSTEM, "rpc.method": method})
        return _ender(span), trace.set_span_in_context(span)

    def finish(call: Call, result: Any, end: Callable[[BaseException | None], None],
               current: otel_context.Context) -> Any:
        if call.kind == "stream":
            return on_finish(_within(current, result), end)
        end(None)  # one reply, whatever it is (a list too)
        return result

    if kind_of(client.send) is Kind.ASYNC:

        async def traced_async(call: Call, call_next: Callable[[Call], Any]) -> Any:
            end, current = start(call)
            token = otel_context.attach(current)
            try:
                result = await call_next(call)
            except BaseException as exc:
                end(exc)
                raise
            finally:
                otel_context.detach(token)
            return finish(call, result, end, current)

        return intercept(client, traced_async)

    def traced(call: Call, call_next: Callable[[Call], Any]) -> Any:
        end, current = start(call)
        token = otel_context.attach(current)
        try:
            result = call_next(call)
        except BaseException as exc:
            end(exc)
            raise
        finally:
            otel_context.detach(token)
        return finish(call, result, end, current)

    return intercept(client, traced)
