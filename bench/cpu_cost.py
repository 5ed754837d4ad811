"""CPU time per request of our servers and clients next to their own model's ceiling.

    python bench/cpu_cost.py [--side server|client|both] [--models asyncio,trio,gevent,threads]
                             [--payloads small,1k] [--concurrency 64] [--duration 2] [--repeat 3]
                             [--codec json|orjson] [--driver nest|burst] [--server nest|burst]

requests/s is noise on a shared machine; CPU time per request is not (much). For each
concurrency model M this runs, side by side and interleaved per repetition:

- servers: ours (``bench/server.py --binding X``) and the ceiling (``bench/raw_server.py
  --model M``), each driven by the same fixed driver, the NestJS load driver
  (``bench/js/load.js``, C calls in flight on one connection); the server process's
  user + system CPU time (``/proc/PID/stat``) read when the window opens and when the
  result comes, divided by the requests completed in the window;
  ``--driver burst`` drives the servers instead with exactly C requests in one write,
  then waits for their C replies, again and again (a blocking socket in this process):
  every read carries the same batch, so the figure no longer moves with how busy the
  machine is (with the NestJS driver, a busy machine means smaller batches, and more
  CPU per request in every Python server);
- clients: ours (``bench/load.py --binding X``) and the ceiling (``bench/raw_client.py
  --mode M``) against one NestJS 12 server; the driver process's CPU per request.
  ``--server burst`` calls ``bench/burst_server.py`` instead, which answers in batches
  of exactly C replies in one write: every read carries the same batch, so the figure no
  longer moves with how busy the machine is (how the NestJS server's replies trickle in).
  ``--models gevent-futures,threads-futures`` (clients only): ONE caller keeping C calls
  in flight with ``client.submit``, next to the model's C-caller ceiling.

Prints, per model, side and payload, the medians in µs per request and the ratio
``ours / ceiling`` (1.00 is the ceiling; lower is better), Markdown. ``--json`` writes
the raw figures too.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from typing import Any

import _common
import _raw
from run import BENCH, Proc, listening_port, nest_modules, start_driver, start_server

TICK = os.sysconf("SC_CLK_TCK")

#: model -> our binding on that model
OURS = {"asyncio": "anyio-asyncio", "trio": "anyio-trio", "gevent": "gevent", "threads": "threads",
        "gevent-futures": "gevent-futures", "threads-futures": "threads-futures"}

#: model -> its framework-free ceiling (the futures modes: their model's C-caller client)
CEILING = {m: f"raw-{m.split('-')[0]}" for m in OURS}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def one_cell(driver: Proc, measured_pid: int, cell: dict[str, Any]) -> dict[str, float]:
    """Run one ``echo`` cell on a started driver; CPU µs per request of ``measured_pid``."""
    driver.writeline(json.dumps({"kind": "echo", **cell}))
    time.sleep(cell["warmup"])
    c0 = cpu_seconds(measured_pid)
    res = json.loads(driver.readline(cell["duration"] + 60.0))
    c1 = cpu_seconds(measured_pid)
    count = max(int(res["count"]), 1)
    return {"rps": float(res["rps"]), "us": (c1 - c0) / count * 1e6}


def burst_cell(port: int, server_pid: int, cell: dict[str, Any]) -> dict[str, float]:
    """C requests in one write, wait for the C replies; repeat for the window."""
    c = cell["concurrency"]
    data = _common.payload(cell["payload"])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cutter = _raw.Cutter()
        n = 0

        def burst() -> None:
            nonlocal n
            # NestJS-shaped ids (a uuid), fresh per request
            sock.sendall(b"".join(_raw.request(data, f"8b2d1c3a-aaaa-4bbb-8ccc-{n + i:012x}") for i in range(c)))
            n += c
            got = 0
            while got < c:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("the server closed the connection")
                got += len(cutter.feed(chunk))

        end = time.monotonic() + cell["warmup"]
        while time.monotonic() < end:
            burst()
        count0, t0, c0 = n, time.monotonic(), cpu_seconds(server_pid)
        end = t0 + cell["duration"]
        while time.monotonic() < end:
            burst()
        c1, t1 = cpu_seconds(server_pid), time.monotonic()
    count = n - count0
    return {"rps": count / (t1 - t0), "us": (c1 - c0) / count * 1e6}


def measure_server(kind: str, cells: list[dict[str, Any]], env_node: dict[str, str],
                   env_py: dict[str, str], driver: str = "nest") -> list[dict[str, float]]:
    srv, port = start_server(kind, env_node, env_py)
    try:
        if driver == "burst":
            return [burst_cell(port, srv.pid, c) for c in cells]
        drv = start_driver("nest", port, env_node, env_py)
        try:
            return [one_cell(drv, srv.pid, c) for c in cells]
        finally:
            drv.stop()
    finally:
        srv.stop()


def measure_client(kind: str, port: int, cells: list[dict[str, Any]], env_node: dict[str, str],
                   env_py: dict[str, str]) -> list[dict[str, float]]:
    drv = start_driver(kind, port, env_node, env_py)
    try:
        return [one_cell(drv, drv.pid, c) for c in cells]
    finally:
        drv.stop()


def start_burst_server(batch: int, env_py: dict[str, str]) -> tuple[Proc, int]:
    """``bench/burst_server.py``: replies in batches of ``batch``; returns it and its port."""
    proc = Proc([sys.executable, str(BENCH / "burst_server.py"), "--batch", str(batch)], env_py,
                "burst server", reads_stdin=False)
    return proc, listening_port(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", default="both", choices=("server", "client", "both"))
    ap.add_argument("--models", default="asyncio,trio,gevent,threads",
                    help="also gevent-futures, threads-futures (clients: one caller with C submit() futures)")
    ap.add_argument("--payloads", default="small,1k")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--driver", default="nest", choices=("nest", "burst"),
                    help="what drives the servers: the NestJS load driver, or fixed bursts of C requests")
    ap.add_argument("--server", default="nest", choices=("nest", "burst"),
                    help="what the clients call: the NestJS server, or bench/burst_server.py (replies in batches of C)")
    ap.add_argument("--codec", default="json", choices=("json", "orjson"),
                    help="our servers' and clients' codec (orjson: tcpmsg_orjson.OrjsonCodec)")
    ap.add_argument("--json", help="also write the raw figures to this file")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in OURS:
            raise SystemExit(f"--models: unknown model {m!r} (known: {', '.join(OURS)})")
    if args.side != "client" and any(m.endswith("-futures") for m in models):
        raise SystemExit("--models: the futures modes are clients only (--side client)")
    payloads = [p for p in args.payloads.split(",") if p]
    cells = [{"payload": p, "concurrency": args.concurrency, "duration": args.duration, "warmup": args.warmup}
             for p in payloads]
    sides = ("server", "client") if args.side == "both" else (args.side,)
    env_node = dict(os.environ, NODE_PATH=str(nest_modules()), NODE_NO_WARNINGS="1")
    env_py = dict(_common.python_env(), TCPMSG_BENCH_CODEC=args.codec)
    # runs[(side, model, "ours"|"ceiling")] = one list of per-cell results per repetition
    runs: dict[tuple[str, str, str], list[list[dict[str, float]]]] = {}
    for rep in range(args.repeat):
        for side in sides:
            nest = port = None
            if side == "client" and args.server == "burst":
                nest, port = start_burst_server(args.concurrency, env_py)
            elif side == "client":
                nest, port = start_server("nest", env_node, env_py)
            try:
                for m in models:
                    for who, kind in (("ours", OURS[m]), ("ceiling", CEILING[m])):
                        if side == "server":
                            r = measure_server(kind, cells, env_node, env_py, args.driver)
                        else:
                            assert port is not None
                            r = measure_client(kind, port, cells, env_node, env_py)
                        runs.setdefault((side, m, who), []).append(r)
                        print(f"[rep {rep + 1}] {side} {kind}: "
                              + ", ".join(f"{c['payload']} {x['us']:.1f} µs/req ({x['rps']:,.0f}/s)"
                                          for c, x in zip(cells, r, strict=True)), file=sys.stderr)
            finally:
                if nest is not None:
                    nest.stop()
    print(f"CPU µs per request, c={args.concurrency}, {args.duration} s windows after {args.warmup} s warm-up, "
          f"median of {args.repeat}; servers driven by "
          + ("bursts of C requests in one write" if args.driver == "burst" else "the NestJS load driver")
          + ", clients against the "
          + ("burst server (replies in batches of C)" if args.server == "burst" else "NestJS server")
          + f"; our codec: {args.codec}. Ratio = ours / ceiling (lower is better).\n")
    print("| side | model | payload | ours µs | ceiling µs | ours/ceiling |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    table = []
    for side in sides:
        for m in models:
            for i, c in enumerate(cells):
                o = statistics.median(r[i]["us"] for r in runs[(side, m, "ours")])
                k = statistics.median(r[i]["us"] for r in runs[(side, m, "ceiling")])
                table.append({"side": side, "model": m, "payload": c["payload"], "ours_us": o, "ceiling_us": k})
                print(f"| {side} | {m} | {c['payload']} | {o:.1f} | {k:.1f} | {o / k:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cells": cells, "table": table,
                       "runs": {"/".join(k): v for k, v in runs.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
