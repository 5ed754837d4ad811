"""``tcpmsg serve --workers 2`` against ``--workers 1`` on CPU-bound handlers, same run.

Every call burns about 1 ms of pure-Python CPU (``bench/cpu_service.py``), so one
process serves at most about 1,000 calls a second whatever its binding; worker
processes sharing the port (SO_REUSEPORT) should scale that with the cores. The load is
NestJS 12's own ``ClientTCP``: 64 clients of their own (one connection each, so the
kernel spreads them over the workers), one call in flight on each (c=64).

    python bench/workers.py [--binding threads] [--duration 10] [--warmup 2] [--json]

Run it on a quiet machine with at least two cores: the target is ``--workers 2`` at
1.6x or more the requests/s of ``--workers 1``. Standard library (and node) only.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys

import _common  # noqa: F401 - the checkout's packages on sys.path
from _common import BENCH, REPO, python_env
from run import nest_modules, start_driver

SERVICE = "bench.cpu_service:router"


def spin_iterations() -> int:
    """Calibrate once here, so that both servers burn the same work per call."""
    sys.path.insert(0, str(BENCH))
    import cpu_service

    return cpu_service.ITERATIONS


def serve(workers: int, binding: str, spin: int) -> tuple[subprocess.Popen[str], int]:
    env = dict(python_env(), TCPMSG_SPIN=str(spin))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpmsg", "serve", SERVICE, "--host", "127.0.0.1", "--port", "0",
         "--binding", binding, "--workers", str(workers), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.match(r"listening on \S+:(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"tcpmsg serve --workers {workers} did not start: {line!r}")
    return proc, int(match.group(1))


def measure(workers: int, args: argparse.Namespace, spin: int) -> dict[str, float]:
    server, port = serve(workers, args.binding, spin)
    env_node = {"NODE_PATH": str(nest_modules()), "NODE_NO_WARNINGS": "1", "PATH": python_env()["PATH"]}
    driver = start_driver("nest", port, env_node, python_env())
    try:
        cell = {"kind": "conns", "concurrency": 1, "connections": args.connections, "payload": "small",
                "duration": args.duration, "warmup": args.warmup}
        driver.writeline(json.dumps(cell))
        result: dict[str, float] = json.loads(driver.readline(args.duration + args.warmup + 120))
    finally:
        driver.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binding", default="threads", choices=("threads", "gevent", "anyio", "trio"))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64, help="NestJS clients, one call in flight each")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()
    spin = spin_iterations()
    from cpu_service import _timed

    per_call_ms = min(_timed(spin) for _ in range(20)) * 1000
    results = {n: measure(n, args, spin) for n in (1, 2)}
    ratio = results[2]["rps"] / results[1]["rps"] if results[1]["rps"] else float("nan")
    if args.json:
        print(json.dumps({"binding": args.binding, "cpu_ms_per_call": per_call_ms, "workers": results,
                          "ratio": ratio}))
    else:
        print(f"CPU per call {per_call_ms:.2f} ms, {args.binding} binding, NestJS 12 client, "
              f"c={args.connections} ({args.connections} connections)")
        for n, r in results.items():
            print(f"  --workers {n}: {r['rps']:8.0f} req/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
                  f"  errors {r['errors']}")
        print(f"  ratio: {ratio:.2f}x (target >= 1.6x on two cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
