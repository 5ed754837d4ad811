"""``tcpmsg bench``: load-test any NestJS TCP service (NestJS or ours), as wrk or ghz do.

Keeps ``-c`` calls in flight over ``--connections`` connections for ``-d`` seconds and
reports requests/s, latency percentiles, a latency histogram and the errors by kind.

The engine is the Sans-IO core's :class:`~sansio_tcpmsg.ClientConnection` driven by one
small asyncio protocol per connection: when a reply arrives the next call of that slot
is queued at once, and everything queued during one read leaves in one write. No
task, future or thread per call, so the command itself is not the bottleneck against a
NestJS server. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import ssl
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from sansio_tcpmsg import (
    ClientConnection,
    ConnectionClosed,
    ProtocolErrorOccurred,
    RemoteErrorReceived,
    RequestTimedOut,
    ResponseReceived,
    TcpMsgError,
)
from sansio_tcpmsg.diagnose import connect_error

from . import arguments
from .output import dumps

__all__ = ["DESCRIPTION", "BenchConfig", "BenchResult", "add_arguments", "cmd_bench", "format_report", "run_bench"]

DESCRIPTION = (
    "Load-test a NestJS TCP service (NestJS or ours): keep -c calls of PATTERN with DATA in flight over "
    "--connections connections for -d seconds, then print requests/s, latency percentiles (p50, p90, p99, "
    "max), a latency histogram and the errors by kind (remote, no_handler, timeout, connection, protocol). "
    "Live progress is shown while stdout is a terminal. Exit status 1 when any call failed."
)

perf = time.perf_counter

#: Error kinds, in the order reports list them.
ERROR_KINDS = ("remote", "no_handler", "timeout", "connection", "protocol")


@dataclass(frozen=True)
class BenchConfig:
    """What to run: the call, how many in flight, on how many connections, how long."""

    host: str
    port: int
    pattern: Any
    data: Any
    concurrency: int = 64
    duration: float = 10.0
    connections: int = 1
    warmup: float = 0.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    metadata: Any = None
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None


@dataclass
class BenchResult:
    """What a run measured (latencies in seconds, of the calls completed inside the window)."""

    config: BenchConfig
    elapsed: float = 0.0
    #: CPU time (user + system) this process spent inside the window.
    cpu: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    interrupted: bool = False

    @property
    def requests(self) -> int:
        """Calls answered without error inside the window."""
        return len(self.latencies)

    @property
    def rps(self) -> float:
        """Answered calls per second of the window."""
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (``--json``); latencies in milliseconds."""
        cfg = self.config
        lat = sorted(self.latencies)
        return {
            "target": f"{cfg.host}:{cfg.port}",
            "pattern": cfg.pattern,
            "concurrency": cfg.concurrency,
            "connections": cfg.connections,
            "tls": cfg.tls is not None,
            "duration_s": round(self.elapsed, 6),
            "client_cpu": self.cpu / self.elapsed if self.elapsed > 0 else 0.0,
            "requests": self.requests,
            "rps": self.rps,
            "errors": {kind: self.errors.get(kind, 0) for kind in ERROR_KINDS},
            "error_count": sum(self.errors.values()),
            "latency_ms": _latency_summary(lat),
            "histogram": [{"le_ms": le * 1e3, "count": n} for le, n in histogram(lat)],
            "interrupted": self.interrupted,
        }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def _latency_summary(lat: list[float]) -> dict[str, float]:
    return {
        "min": lat[0] * 1e3 if lat else 0.0,
        "mean": sum(lat) / len(lat) * 1e3 if lat else 0.0,
        "p50": percentile(lat, 50) * 1e3,
        "p90": percentile(lat, 90) * 1e3,
        "p99": percentile(lat, 99) * 1e3,
        "max": lat[-1] * 1e3 if lat else 0.0,
    }


def histogram(sorted_values: list[float], buckets: int = 10) -> list[tuple[float, int]]:
    """``(upper bound, count)`` for ``buckets`` log-spaced buckets from the least to the largest value."""
    if not sorted_values:
        return []
    lo, hi = sorted_values[0], sorted_values[-1]
    if hi <= lo or lo <= 0:
        return [(hi, len(sorted_values))]
    step = (hi / lo) ** (1.0 / buckets)
    bounds = [lo * step ** (i + 1) for i in range(buckets)]
    bounds[-1] = hi
    out, i = [], 0
    for bound in bounds:
        n = 0
        while i < len(sorted_values) and sorted_values[i] <= bound:
            n += 1
            i += 1
        out.append((bound, n))
    return out


# -- the engine --------------------------------------------------------------------------


class _Window:
    """The measurement window shared by every connection."""

    def __init__(self, result: BenchResult) -> None:
        self.latencies = result.latencies
        self.errors = result.errors
        self.start = math.inf  # calls started from here on count
        self.end = math.inf  # calls stop being started from here on
        self.done = 0  # answered calls since the window opened (for the live progress)


class _BenchProtocol(asyncio.Protocol):
    """One connection: ``slots`` calls in flight, each re-sent as soon as it is answered."""

    def __init__(self, cfg: BenchConfig, window: _Window, slots: int) -> None:
        self.cfg = cfg
        self.window = window
        self.slots = slots
        self.conn = ClientConnection()
        self.started: dict[str, float] = {}
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def begin(self) -> None:
        for _ in range(self.slots):
            self._send(perf())
        self._flush()

    def _send(self, now: float) -> None:
        request_id = self.conn.send_request(self.cfg.pattern, self.cfg.data, deadline=now + self.cfg.timeout,
                                            metadata=self.cfg.metadata)
        self.started[request_id] = now

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)

    def data_received(self, data: bytes) -> None:
        now = perf()
        self.conn.receive_data(data, now)
        self._events(now)

    def check_timers(self) -> None:
        now = perf()
        self.conn.handle_timer(now)
        self.conn.get_timer()  # also drops the deadlines of answered calls from the core's heap
        self._events(now)

    def _events(self, now: float) -> None:
        window = self.window
        started = self.started
        for event in self.conn.events_received():
            kind = type(event)
            if kind is ResponseReceived:
                t0 = started.pop(event.request_id)  # type: ignore[attr-defined]
                if t0 >= window.start and now <= window.end:
                    window.latencies.append(now - t0)
                    window.done += 1
            elif kind is RemoteErrorReceived:
                started.pop(event.request_id, None)  # type: ignore[attr-defined]
                window.errors["no_handler" if event.no_handler else "remote"] += 1  # type: ignore[attr-defined]
            elif kind is RequestTimedOut:
                started.pop(event.request_id, None)  # type: ignore[attr-defined]
                window.errors["timeout"] += 1
            elif kind is ConnectionClosed:
                self._closed(event)  # type: ignore[arg-type]
                return
            else:
                if kind is ProtocolErrorOccurred:
                    window.errors["protocol"] += 1
                continue  # not the end of a call (a protocol error, a packet that answers nothing)
            if now < window.end:
                self._send(now)
        self._flush()

    def _closed(self, event: ConnectionClosed) -> None:
        if self.window.end > perf():  # the peer went away mid-run: every call in flight failed
            self.window.errors["connection"] += len(event.failed)
        self.started.clear()
        if self.transport is not None:
            self.transport.close()
        if not self.lost.done():
            self.lost.set_result(None)

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        self._events(perf())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.conn.closed:
            self.conn.receive_eof()
            self._events(perf())
        if not self.lost.done():
            self.lost.set_result(None)


def _slots(concurrency: int, connections: int) -> list[int]:
    base, extra = divmod(concurrency, connections)
    return [base + (1 if i < extra else 0) for i in range(connections)]


def _mark_cpu(marks: dict[str, float], name: str) -> None:
    marks[name] = time.process_time()


async def _run(cfg: BenchConfig, result: BenchResult, progress: TextIO | None) -> None:
    loop = asyncio.get_running_loop()
    window = _Window(result)
    protocols: list[_BenchProtocol] = []
    try:
        for slots in _slots(cfg.concurrency, cfg.connections):
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda slots=slots: _BenchProtocol(cfg, window, slots),
                    cfg.host, cfg.port, ssl=cfg.tls,
                    server_hostname=(cfg.server_hostname or cfg.host) if cfg.tls else None,
                ),
                cfg.connect_timeout,
            )
            protocols.append(proto)
        t0 = perf()
        window.start = t0 + cfg.warmup
        window.end = window.start + cfg.duration
        cpu: dict[str, float] = {}  # this process's CPU time when the window opens and closes
        loop.call_later(cfg.warmup, _mark_cpu, cpu, "start")
        loop.call_later(cfg.warmup + cfg.duration, _mark_cpu, cpu, "end")
        for proto in protocols:
            proto.begin()
        await _wait_window(window, protocols, progress)
        result.elapsed = max(0.0, min(perf(), window.end) - window.start)
        now = time.process_time()
        result.cpu = max(0.0, cpu.get("end", now) - cpu.get("start", now))
    finally:
        for proto in protocols:
            if proto.transport is not None:
                proto.transport.close()


async def _wait_window(window: _Window, protocols: list[_BenchProtocol], progress: TextIO | None) -> None:
    """Sleep until the window ends (or every connection is lost); check deadlines, show progress."""
    tick = 0.1
    last_shown, last_done = perf(), 0
    while True:
        now = perf()
        if now >= window.end or all(p.lost.done() for p in protocols):
            break
        await asyncio.sleep(min(tick, window.end - now))
        for proto in protocols:
            proto.check_timers()
        now = perf()
        if progress is not None and now - last_shown >= 0.5 and now >= window.start:
            rate = (window.done - last_done) / (now - last_shown)
            left = max(0.0, window.end - now)
            progress.write(f"\r\x1b[K  {window.done:,} requests, {rate:,.0f}/s now, "
                           f"{sum(window.errors.values()):,} errors, {left:.0f} s left")
            progress.flush()
            last_shown, last_done = now, window.done
    if progress is not None:
        progress.write("\r\x1b[K")
        progress.flush()


def run_bench(cfg: BenchConfig, progress: TextIO | None = None) -> BenchResult:
    """Run the benchmark; Ctrl-C ends it early with what was measured (``interrupted``).

    Raises ``OSError`` (or ``TimeoutError``) when a connection cannot be made.
    """
    result = BenchResult(cfg)
    try:
        asyncio.run(_run(cfg, result, progress))
    except KeyboardInterrupt:
        result.interrupted = True
    return result


# -- the report --------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def format_report(res: BenchResult) -> str:
    """The human-readable report: rate, latency percentiles, a histogram, errors."""
    report = res.to_json()
    cfg = res.config
    lat = report["latency_ms"]
    tls = " over TLS" if cfg.tls is not None else ""
    lines = [
        f"{report['target']}{tls}, pattern {dumps(cfg.pattern)}: {cfg.concurrency} call(s) in flight on "
        f"{cfg.connections} connection(s) for {report['duration_s']:.2f} s"
        + (" (interrupted)" if res.interrupted else ""),
        "",
        f"  requests   {report['requests']:,} ({report['rps']:,.1f}/s)",
        f"  errors     {report['error_count']:,}"
        + "".join(f", {kind} {n:,}" for kind, n in report["errors"].items() if n),
        "",
        "  latency    " + "  ".join(f"{k} {_ms(lat[k])}" for k in ("p50", "p90", "p99", "max")),
        f"             min {_ms(lat['min'])}  mean {_ms(lat['mean'])}",
        "",
        f"  client CPU {100 * report['client_cpu']:.0f}% of one core"
        + (" (near 100%: this command may be what limits the rate)" if report["client_cpu"] > 0.9 else ""),
    ]
    hist = report["histogram"]
    if hist:
        lines += ["", "  histogram (calls answered in at most)"]
        top = max(h["count"] for h in hist) or 1
        total = sum(h["count"] for h in hist) or 1
        for h in hist:
            bar = "#" * round(40 * h["count"] / top)
            lines.append(f"  {_ms(h['le_ms']):>11} | {bar:<40} {h['count']:>9,} {100 * h['count'] / total:5.1f}%")
    return "\n".join(lines)


def bench_main(cfg: BenchConfig, as_json: bool) -> int:
    """Run and print (the ``tcpmsg bench`` command); exit status 1 when any call failed."""
    progress = sys.stdout if sys.stdout.isatty() and not as_json else None
    res = run_bench(cfg, progress)
    if as_json:
        import json

        sys.stdout.write(json.dumps(res.to_json()) + "\n")
    else:
        sys.stdout.write(format_report(res) + "\n")
    sys.stdout.flush()
    return 1 if res.errors else 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``tcpmsg bench``: the parsed command line to a run and its report."""
    from .cli import EXIT_CONNECTION, CliError, _call_args, _oserror_text, client_tls, parse_address

    host, port = parse_address(args.address)
    pattern, data, kwargs = _call_args(args)
    if args.connections > args.concurrency:
        raise CliError(f"--connections {args.connections} needs at least as many calls in flight "
                       f"(-c {args.concurrency}): every connection carries at least one")
    tls = client_tls(args)
    cfg = BenchConfig(host, port, pattern, data, concurrency=args.concurrency, duration=args.duration,
                      connections=args.connections, warmup=args.warmup, timeout=args.timeout,
                      connect_timeout=args.connect_timeout, metadata=kwargs.get("metadata"), tls=tls,
                      server_hostname=args.server_name)
    try:
        return bench_main(cfg, args.json)
    except (OSError, asyncio.TimeoutError) as exc:  # worded as every binding words it
        error = connect_error(exc, host, port, tls=tls is not None, timeout=args.connect_timeout)
        raise CliError(_oserror_text(error), EXIT_CONNECTION) from None
    except TcpMsgError as exc:
        raise CliError(f"cannot send that: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tcpmsg bench`` beside the address, pattern, data and TLS ones."""
    parser.add_argument("-c", "--concurrency", type=arguments.count, default=64, metavar="N",
                        help="calls in flight in all (default: 64)")
    parser.add_argument("-d", "--duration", type=arguments.positive_seconds, default=10.0, metavar="SECONDS",
                        help="how long to measure (default: 10)")
    parser.add_argument("--connections", type=arguments.count, default=1, metavar="N",
                        help="connections to spread the calls over (default: 1; at most -c)")
    parser.add_argument("--warmup", type=arguments.seconds, default=0.0, metavar="SECONDS",
                        help="run this long before measuring (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
