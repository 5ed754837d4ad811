"""What middleware, validation, tracing and metrics cost per request, in CPU time.

    python bench/middleware_cost.py [--requests 4000] [--repeat 3] [--bindings threads,anyio]

The same ``{"cmd": "order"}`` handler (a dict of four fields in, the same out) is served
in each configuration:

- ``none``: a plain ``Router``, no middleware;
- ``noop``: one middleware that only calls ``call_next``;
- ``typed``: ``tcpmsg_pydantic.TypedRouter``, the handler taking and returning a model;
- ``otel``: ``tcpmsg_otel`` middleware, an SDK ``TracerProvider`` whose spans go through
  a ``SimpleSpanProcessor`` to an exporter that drops them (the client sends a
  ``traceparent`` in ``metadata`` in every configuration, so only the server's work
  differs);
- ``prometheus``: ``tcpmsg_prometheus.Metrics`` middleware (its own registry).

The client side is measured too, in process: a no-op client middleware
(``sansio_tcpmsg.calls.intercept``), ``tcpmsg_pydantic.typed_client`` (a model sent,
``result_type=`` the model), ``tcpmsg_otel.traced_client`` and
``tcpmsg_prometheus.Metrics.client``.

Two measures, both CPU time (user + system) per request, less noisy than rates on a
shared machine:

1. in process, through ``sansio_tcpmsg.testing.TestClient`` (client and server halves
   of the core, the handler and the middleware, no sockets): ``time.process_time``;
2. a real server in a child process on loopback (``--bindings``: threads, anyio on
   asyncio), called by 8 threads sharing one threads client: the server process's CPU
   over the calls (``time.process_time`` in the child, asked over its stdin).

Configurations are interleaved, ``--repeat`` times; medians are printed with the ratio
to ``none`` (Markdown).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bindings", ROOT / "integrations"):
    sys.path.insert(0, str(path))

from sansio_tcpmsg import Router  # noqa: E402

CONFIGS = ["none", "noop", "typed", "otel", "prometheus"]
ORDER = {"id": 7, "items": ["a", "b"], "total": 12.5, "note": "gift"}
TRACEPARENT = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


def dropping_provider() -> Any:
    """An SDK tracer provider whose spans are processed, then dropped (no I/O)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return provider


def build(config: str, asynchronous: bool) -> Router:
    """The router of one configuration (async middleware for the anyio server)."""
    if config == "typed":
        from pydantic import BaseModel
        from tcpmsg_pydantic import TypedRouter

        class Order(BaseModel):
            id: int
            items: list[str]
            total: float
            note: str

        typed = TypedRouter()

        @typed.message({"cmd": "order"})
        def typed_order(order: Order) -> Order:
            return order

        return typed

    router = Router()

    @router.message({"cmd": "order"})
    def order(data: Any) -> Any:
        return data

    if config == "noop":
        if asynchronous:

            async def anoop(data: Any, ctx: Any, call_next: Any) -> Any:
                return await call_next(data, ctx)

            router.use(anoop)
        else:

            def noop(data: Any, ctx: Any, call_next: Any) -> Any:
                return call_next(data, ctx)

            router.use(noop)
    elif config == "otel":
        import tcpmsg_otel

        provider = dropping_provider()
        make = tcpmsg_otel.async_middleware if asynchronous else tcpmsg_otel.middleware
        router.use(make(tracer_provider=provider))
    elif config == "prometheus":
        from prometheus_client import CollectorRegistry
        from tcpmsg_prometheus import Metrics

        metrics = Metrics(registry=CollectorRegistry())
        router.use(metrics.async_middleware() if asynchronous else metrics.middleware())
    return router


def in_process(config: str, requests: int) -> float:
    """CPU µs per request through TestClient."""
    from sansio_tcpmsg.testing import TestClient

    client = TestClient(build(config, False))
    for _ in range(200):  # warm up
        client.send({"cmd": "order"}, ORDER, metadata=TRACEPARENT)
    started = time.process_time()
    for _ in range(requests):
        client.send({"cmd": "order"}, ORDER, metadata=TRACEPARENT)
    return (time.process_time() - started) / requests * 1e6


def client_side(config: str, requests: int) -> float:
    """CPU µs per request through TestClient wrapped as a client of that configuration
    (the server side plain): ``intercept`` with a no-op, ``typed_client`` sending a model
    and asking for one back, ``traced_client``, ``Metrics.client``."""
    from sansio_tcpmsg.calls import intercept
    from sansio_tcpmsg.testing import TestClient

    raw = TestClient(build("none", False))
    data: Any = ORDER
    options: dict[str, Any] = {}
    if config == "noop":
        client: Any = intercept(raw, lambda call, call_next: call_next(call))
    elif config == "typed":
        from pydantic import BaseModel
        from tcpmsg_pydantic import typed_client

        class Order(BaseModel):
            id: int
            items: list[str]
            total: float
            note: str

        client, data, options = typed_client(raw), Order(**ORDER), {"result_type": Order}
    elif config == "otel":
        import tcpmsg_otel

        client = tcpmsg_otel.traced_client(raw, tracer_provider=dropping_provider())
    elif config == "prometheus":
        from prometheus_client import CollectorRegistry
        from tcpmsg_prometheus import Metrics

        client = Metrics(registry=CollectorRegistry()).client(raw)
    else:
        client = raw
    for _ in range(200):
        client.send({"cmd": "order"}, data, **options)
    started = time.process_time()
    for _ in range(requests):
        client.send({"cmd": "order"}, data, **options)
    return (time.process_time() - started) / requests * 1e6


def answer_cpu() -> None:
    """Child: each line read from stdin is answered with the process's CPU time (exact,
    where /proc counts 10 ms ticks); returns when stdin closes."""
    for _ in sys.stdin:
        print(time.process_time(), flush=True)


def serve(config: str, binding: str) -> None:
    """Child process: serve one configuration, print the port, answer ``answer_cpu``
    until stdin closes."""
    if binding == "anyio":
        import anyio
        import tcpmsg_anyio

        async def main() -> None:
            async with tcpmsg_anyio.serve(build(config, True), "127.0.0.1", 0) as server:
                print(server.port, flush=True)
                await anyio.to_thread.run_sync(answer_cpu)

        anyio.run(main)
    else:
        import tcpmsg_threads

        with tcpmsg_threads.serve(build(config, False), "127.0.0.1", 0) as server:
            print(server.port, flush=True)
            answer_cpu()


def over_loopback(config: str, binding: str, requests: int, callers: int = 8) -> float:
    """Server CPU µs per request, its calls from ``callers`` threads on one client."""
    import tcpmsg_threads

    child = subprocess.Popen([sys.executable, __file__, "--serve", config, binding],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    def cpu() -> float:
        stdin.write("cpu\n")
        stdin.flush()
        return float(stdout.readline())

    try:
        port = int(stdout.readline())
        with tcpmsg_threads.connect("127.0.0.1", port) as client:
            def calls(n: int) -> None:
                for _ in range(n):
                    client.send({"cmd": "order"}, ORDER, metadata=TRACEPARENT)

            calls(300)  # warm up
            started = cpu()
            threads = [threading.Thread(target=calls, args=(requests // callers,)) for _ in range(callers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            used = cpu() - started
        return used / (requests // callers * callers) * 1e6
    finally:
        stdin.close()
        child.wait(10)


def table(title: str, results: dict[str, list[float]]) -> str:
    base = statistics.median(results["none"])
    lines = [f"### {title}", "", "| configuration | CPU µs / request (median) | ratio to none |", "| --- | --- | --- |"]
    for config in CONFIGS:
        value = statistics.median(results[config])
        lines.append(f"| {config} | {value:.1f} | {value / base:.2f} |")
    return "\n".join(lines)


def measure(title: str, run: Callable[[str], float], repeat: int) -> str:
    results: dict[str, list[float]] = {config: [] for config in CONFIGS}
    for _ in range(repeat):
        for config in CONFIGS:  # interleaved: drift on a shared machine hits all alike
            results[config].append(run(config))
    return table(title, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bindings", default="threads,anyio")
    parser.add_argument("--in-process-only", action="store_true", help="skip the servers over loopback")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "BINDING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    print(measure("In process (TestClient: client + server halves, no sockets)",
                  lambda c: in_process(c, args.requests), args.repeat))
    print()
    print(measure("Client side, in process (TestClient wrapped by the client integrations)",
                  lambda c: client_side(c, args.requests), args.repeat))
    if args.in_process_only:
        return
    for binding in args.bindings.split(","):
        print()
        print(measure(f"Server process, {binding}, loopback, 8 callers on one threads client",
                      lambda c, b=binding: over_loopback(c, b, args.requests), args.repeat))


if __name__ == "__main__":
    main()
