"""tcpmsg_otel: the client's trace context reaches the server's span on every binding (the
SDK's in-memory exporter), and crosses to and from real NestJS 12."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import nest
import pytest
import tcpmsg_otel
from conftest import is_async
from facade import Binding
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sansio_tcpmsg import RemoteError, Router, RpcError
from sansio_tcpmsg.testing import TestClient

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


def traceparent(ids: Any) -> str:
    """The W3C header for a span context (flags as the SDK writes them)."""
    return f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def traced_router(provider: TracerProvider, asynchronous: bool) -> Router:
    router = Router()
    if asynchronous:
        router.use(tcpmsg_otel.async_middleware(tracer_provider=provider))
    else:
        router.use(tcpmsg_otel.middleware(tracer_provider=provider))

    @router.message({"cmd": "inner"})
    def inner(data: Any) -> Any:
        # the handler runs in its span: what it calls would carry it on
        return format(trace.get_current_span().get_span_context().span_id, "016x")

    @router.message("fail")
    def fail(data: Any) -> Any:
        raise RpcError({"status": "error", "message": "nope"})

    @router.message("count")
    def count(n: int) -> Any:
        yield from range(n)

    @router.event("noted")
    def noted(data: Any) -> None:
        pass

    return router


def spans(exporter: InMemorySpanExporter, name: str, n: int = 1) -> list[Any]:
    """The finished spans named ``name``, once there are ``n`` (events end after the call)."""
    deadline = time.monotonic() + 5
    while True:
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def check_server_spans(exporter: InMemorySpanExporter, parent: Any, call: Any) -> None:
    """Calls through ``call(kind, pattern, data)`` give server spans, children of ``parent``."""
    seen = call("send", {"cmd": "inner"}, None)
    [span] = spans(exporter, '{"cmd":"inner"}')
    assert seen == format(span.context.span_id, "016x")
    assert span.kind is SpanKind.SERVER and span.parent is not None
    assert (span.context.trace_id, span.parent.span_id) == (parent.trace_id, parent.span_id)
    assert span.attributes["rpc.system"] == "nestjs_tcp" and span.attributes["rpc.method"] == '{"cmd":"inner"}'
    assert span.attributes["network.peer.address"] == "127.0.0.1"
    assert span.status.status_code is StatusCode.OK

    with pytest.raises(RemoteError):
        call("send", "fail", None)
    [span] = spans(exporter, "fail")
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "RpcError"
    assert [e.name for e in span.events] == ["exception"]

    assert call("stream", "count", 3) == [0, 1, 2]
    [span] = spans(exporter, "count")
    assert span.parent.span_id == parent.span_id and span.status.status_code is StatusCode.OK

    call("emit", "noted", None)
    [span] = spans(exporter, "noted")
    assert span.kind is SpanKind.CONSUMER and span.context.trace_id == parent.trace_id


def test_test_client(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    client = TestClient(traced_router(provider, False))
    meta = {"traceparent": TRACEPARENT}
    parent = trace.SpanContext(TRACE_ID, PARENT_ID, is_remote=True)

    def call(kind: str, pattern: Any, data: Any) -> Any:
        return getattr(client, kind)(pattern, data, metadata=meta)

    inner = client.send({"cmd": "inner"}, None, metadata=meta)
    [span] = spans(exporter, '{"cmd":"inner"}')
    assert inner == format(span.context.span_id, "016x") and span.parent.span_id == PARENT_ID
    exporter.clear()
    with pytest.raises(RemoteError):
        call("send", "fail", None)
    assert spans(exporter, "fail")[0].status.status_code is StatusCode.ERROR
    assert call("stream", "count", 2) == [0, 1]
    assert spans(exporter, "count")[0].parent.span_id == parent.span_id


def test_without_trace_context_a_span_is_a_root(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    client = TestClient(traced_router(provider, False))
    client.send({"cmd": "inner"}, None, metadata="not a dict")
    client.send({"cmd": "inner"}, None)
    assert [s.parent for s in spans(exporter, '{"cmd":"inner"}', 2)] == [None, None]


def test_inject_keeps_the_calls_metadata(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("test")
    packet: dict[str, Any] = {"pattern": "p", "data": 1, "metadata": {"user": 7}}
    tcpmsg_otel.inject(packet)
    assert packet["metadata"] == {"user": 7}  # no span: nothing to carry
    with tracer.start_as_current_span("caller") as span:
        tcpmsg_otel.inject(packet)
        other: dict[str, Any] = {"pattern": "p", "data": 1, "metadata": "opaque"}
        tcpmsg_otel.inject(other)
    ids = span.get_span_context()
    assert packet["metadata"] == {"user": 7, "traceparent": traceparent(ids)}
    assert other["metadata"] == "opaque"


def test_every_binding(binding: Binding, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """Our client injects (``on_dispatch=inject``) inside a span; our server's spans are
    its children."""
    tracer = provider.get_tracer("test")
    router = traced_router(provider, is_async(binding))
    with binding.serve(router) as srv, binding.connect(srv.port, on_dispatch=tcpmsg_otel.inject) as client:
        holder: dict[str, Any] = {}

        def call(kind: str, pattern: Any, data: Any) -> Any:
            if is_async(binding):  # open the span where the call runs: in the event loop
                async def traced() -> Any:
                    with tracer.start_as_current_span("caller") as span:
                        holder["parent"] = span.get_span_context()
                        if kind == "stream":
                            return [v async for v in client.raw.stream(pattern, data)]
                        return await getattr(client.raw, kind)(pattern, data)

                return client.portal.call(traced)
            with tracer.start_as_current_span("caller") as span:
                holder["parent"] = span.get_span_context()
                if kind == "stream":
                    return list(client.stream(pattern, data))
                return getattr(client, kind)(pattern, data)

        check_server_spans(exporter, _Parent(holder), call)


def test_traced_client_on_every_binding(
    binding: Binding, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """``traced_client``: a CLIENT span per call (PRODUCER per event), the server's span
    its child; a stream's span ends after its last item."""
    router = traced_router(provider, is_async(binding))
    with binding.serve(router) as srv, binding.connect(srv.port, on_dispatch=tcpmsg_otel.inject) as client:
        client.raw = tcpmsg_otel.traced_client(client.raw, tracer_provider=provider)
        client.send({"cmd": "inner"}, None)
        assert list(client.stream("count", 2)) == [0, 1]
        with pytest.raises(RemoteError):
            client.send("fail", None)
        client.emit("noted", None)
        for name, kinds in (('{"cmd":"inner"}', {SpanKind.CLIENT, SpanKind.SERVER}),
                            ("count", {SpanKind.CLIENT, SpanKind.SERVER}),
                            ("noted", {SpanKind.PRODUCER, SpanKind.CONSUMER})):
            pair = spans(exporter, name, 2)
            assert {s.kind for s in pair} == kinds, name
            ours, theirs = sorted(pair, key=lambda s: s.kind not in (SpanKind.CLIENT, SpanKind.PRODUCER))
            assert theirs.parent is not None and theirs.parent.span_id == ours.context.span_id
            assert ours.attributes["rpc.method"] == name
        failed = [s for s in spans(exporter, "fail", 2) if s.kind is SpanKind.CLIENT]
        assert failed[0].status.status_code is StatusCode.ERROR


class _Parent:
    """The span context of the latest caller span (each call opens its own)."""

    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder

    @property
    def trace_id(self) -> int:
        return int(self.holder["parent"].trace_id)

    @property
    def span_id(self) -> int:
        return int(self.holder["parent"].span_id)


# -- NestJS 12 -----------------------------------------------------------------------------


@pytest.fixture
def threads_server(provider: TracerProvider) -> Iterator[Any]:
    import tcpmsg_threads

    with tcpmsg_threads.serve(traced_router(provider, False), "127.0.0.1", 0) as server:
        yield server


def test_a_nestjs_clients_traceparent_parents_our_span(
    node_ready: None, threads_server: Any, exporter: InMemorySpanExporter
) -> None:
    """client.js sets ``metadata`` from ``setOnDispatchHook``, as a NestJS app would."""
    with nest.NestClient(12, threads_server.port) as cli:
        res = cli.request("send", {"cmd": "inner"}, 0, metadata={"traceparent": TRACEPARENT})
        assert "error" not in res, res
    [span] = spans(exporter, '{"cmd":"inner"}')
    assert span.context.trace_id == TRACE_ID and span.parent.span_id == PARENT_ID
    assert res["values"] == [format(span.context.span_id, "016x")]


def test_our_traceparent_reaches_a_nestjs_handler(node_ready: None, provider: TracerProvider) -> None:
    import tcpmsg_threads

    tracer = provider.get_tracer("test")
    with nest.NestServer(12) as server, tcpmsg_threads.connect(
        "127.0.0.1", server.port, on_dispatch=tcpmsg_otel.inject
    ) as client:
        with tracer.start_as_current_span("caller") as span:
            seen = client.send("metadata", None, metadata={"user": 1})
    ids = span.get_span_context()
    assert seen == {"user": 1, "traceparent": traceparent(ids)}
