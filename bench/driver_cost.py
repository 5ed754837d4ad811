"""CPU per request of each load driver against the NestJS server: is the driver the bottleneck?

    python bench/driver_cost.py [--duration 3] [--concurrency 64] [--payload small] [--repeat 3]

Runs, one after the other against one NestJS 12 server (``bench/js/server.js``): the
NestJS load driver (``bench/js/load.js``), ``tcpmsg bench`` (``bench/cli_driver.py``'s
command) and our threads client with ``submit()`` futures (``bench/load.py --binding
threads-futures``), each for one ``echo`` cell. For each it reports req/s and the CPU
time (user + system) per request of the driver process and of the server during the
cell. A driver whose CPU per request is well under the server's is not what limits the
rate, whatever the machine's load; req/s alone is noisy on a shared machine. Repetitions
are interleaved; medians are printed (Markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import _common
from run import Proc, nest_modules, node, start_server

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_driver(name: str, port: int, cell: dict[str, Any], env_node: dict[str, str],
               env_py: dict[str, str], server_pid: int) -> dict[str, float]:
    """One cell with one driver process; its req/s and CPU per request, and the server's."""
    if name == "tcpmsg bench":
        argv = [sys.executable, "-m", "tcpmsg", "bench", f"127.0.0.1:{port}", "echo",
                json.dumps(_common.payload(cell["payload"])), "-c", str(cell["concurrency"]),
                "-d", str(cell["duration"]), "--warmup", str(cell["warmup"]), "--json"]
        srv0 = cpu_seconds(server_pid)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env_py, cwd=str(_common.REPO), timeout=120)
        srv1 = cpu_seconds(server_pid)
        rep = json.loads(proc.stdout)
        count, rps = rep["requests"], rep["rps"]
        driver_cpu = rep["client_cpu"] * rep["duration_s"]  # its own CPU time inside the window
        # the server's share of the start-up and warm-up is left out, assuming an even load
        srv_cpu = (srv1 - srv0) * cell["duration"] / (cell["duration"] + cell["warmup"])
    else:
        if name == "NestJS ClientTCP":
            proc_ = Proc([node(), str(_common.BENCH / "js" / "load.js")],
                         dict(env_node, PORT=str(port), HOST="127.0.0.1"), name)
        else:
            proc_ = Proc([sys.executable, str(_common.BENCH / "load.py"), "--binding", "threads-futures",
                          "--port", str(port)], env_py, name)
        try:
            if proc_.readline(30.0) != "READY":
                raise RuntimeError(f"{name} did not start")
            # measure the window only: sample both processes when it opens and when the result comes
            proc_.writeline(json.dumps({"kind": "echo", **cell}))
            time.sleep(cell["warmup"])
            d0, srv0 = cpu_seconds(proc_.pid), cpu_seconds(server_pid)
            res = json.loads(proc_.readline(cell["duration"] + 60.0))
            d1, srv1 = cpu_seconds(proc_.pid), cpu_seconds(server_pid)
        finally:
            proc_.stop()
        count, rps = res["count"], res["rps"]
        driver_cpu, srv_cpu = d1 - d0, srv1 - srv0
    return {"rps": rps, "driver_us": driver_cpu / max(count, 1) * 1e6, "server_us": srv_cpu / max(count, 1) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--payload", default="small", choices=_common.PAYLOADS)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    nest_path = nest_modules()
    env_node = dict(os.environ, NODE_PATH=str(nest_path), NODE_NO_WARNINGS="1")
    env_py = _common.python_env()
    cell = {"payload": args.payload, "concurrency": args.concurrency, "duration": args.duration,
            "warmup": args.warmup}
    drivers = ("NestJS ClientTCP", "tcpmsg bench", "threads-futures")
    runs: dict[str, list[dict[str, float]]] = {d: [] for d in drivers}
    srv, port = start_server("nest", env_node, env_py)
    try:
        for rep in range(args.repeat):
            for name in drivers:
                r = run_driver(name, port, cell, env_node, env_py, srv.pid)
                runs[name].append(r)
                print(f"[rep {rep + 1}] {name}: {r['rps']:,.0f} req/s, driver {r['driver_us']:.1f} µs/req, "
                      f"server {r['server_us']:.1f} µs/req", file=sys.stderr)
    finally:
        srv.stop()
    print(f"`{args.payload}` payload, c={args.concurrency}, {args.duration} s after {args.warmup} s warm-up, "
          f"median of {args.repeat}, against the NestJS 12 server:\n")
    print("| driver | req/s | driver CPU µs/req | server CPU µs/req |")
    print("| --- | ---: | ---: | ---: |")
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("rps", "driver_us", "server_us")}
        print(f"| {name} | {med['rps']:,.0f} | {med['driver_us']:.1f} | {med['server_us']:.1f} |")


if __name__ == "__main__":
    main()
