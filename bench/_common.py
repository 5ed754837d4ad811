"""Shared bits of the benchmark scripts: import paths, payloads, statistics.

Stdlib only. Importing this module makes ``sansio_tcpmsg`` and the bindings importable
from a source checkout (no install needed), the same way ``nox -s bench`` sees them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _p in (REPO / "integrations", REPO / "bindings", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

#: Server and client kinds ("binding" in the table): ours, NestJS 12, the raw ceiling.
BINDINGS = ("anyio-asyncio", "anyio-trio", "gevent", "threads")

#: Our sync clients in their second mode (load driver only): ONE thread (greenlet) keeping
#: C calls in flight with ``client.submit`` instead of C callers.
FUTURES = ("threads-futures", "gevent-futures")

#: The NestJS major the benchmarks compare against.
NEST_MAJOR = 12


def codec() -> Any:
    """The codec our servers and clients use: ``TCPMSG_BENCH_CODEC=orjson`` picks
    ``tcpmsg_orjson.OrjsonCodec``; unset or ``json``, the default (None)."""
    name = os.environ.get("TCPMSG_BENCH_CODEC", "json")
    if name == "json":
        return None
    if name == "orjson":
        from tcpmsg_orjson import OrjsonCodec

        return OrjsonCodec()
    raise SystemExit(f"TCPMSG_BENCH_CODEC: unknown codec {name!r} (json, orjson)")


def python_env() -> dict[str, str]:
    """Environment for a Python child: the checkout on PYTHONPATH."""
    env = dict(os.environ)
    parts = [str(REPO / "integrations"), str(REPO / "bindings"), str(REPO)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def payload(name: str) -> Any:
    """The ``data`` of one request: ``small`` is {"n":1}; ``1k``/``64k`` serialize to that many bytes."""
    if name == "small":
        return {"n": 1}
    size = {"1k": 1024, "64k": 64 * 1024}[name]
    return {"s": "x" * (size - len('{"s":""}'))}


PAYLOADS = ("small", "1k", "64k")
CONCURRENCIES = (1, 64)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summarize(latencies_s: list[float], duration: float) -> dict[str, float]:
    """requests/s and p50/p99 in milliseconds from per-request latencies (seconds)."""
    lat = sorted(latencies_s)
    return {
        "count": len(lat),
        "rps": len(lat) / duration if duration > 0 else 0.0,
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
    }


def emit(obj: Any) -> None:
    """One JSON line on stdout (the drivers' reporting channel)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
