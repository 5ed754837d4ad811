"""Load driver that runs the ``tcpmsg bench`` command, for ``bench/run.py``'s ``tcpmsg-bench`` pairs.

    python bench/cli_driver.py --port P [--tls-ca PEM]

Speaks the protocol of ``bench/load.py`` (``READY``, then one JSON result line per JSON
command line) for the ``echo`` and ``conns`` kinds: each cell is one
``python -m tcpmsg bench 127.0.0.1:P echo DATA -c C -d D --warmup W --json`` process,
whose report becomes the result line (its start-up is outside the measured window).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import _common
from load import commands


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-ca", default=None)
    args = ap.parse_args()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    for cmd in commands():
        if cmd.get("kind", "echo") not in ("echo", "conns"):
            raise SystemExit(f"cli_driver: tcpmsg bench runs echo and conns cells, not {cmd['kind']!r}")
        conns = int(cmd.get("connections", 1)) if cmd.get("kind") == "conns" else 1
        concurrency = conns if cmd.get("kind") == "conns" else int(cmd["concurrency"])
        argv = [sys.executable, "-m", "tcpmsg", "bench", f"{args.host}:{args.port}", "echo",
                json.dumps(_common.payload(cmd["payload"])), "-c", str(concurrency), "--connections", str(conns),
                "-d", str(cmd["duration"]), "--warmup", str(cmd["warmup"]), "--json"]
        if args.tls_ca:
            argv += ["--tls-ca", args.tls_ca, "--server-name", "localhost"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=_common.python_env(), cwd=str(_common.REPO),
                              timeout=float(cmd["duration"]) + float(cmd["warmup"]) + 60.0)
        if not proc.stdout.strip():
            raise SystemExit(f"cli_driver: tcpmsg bench failed ({proc.returncode}): {proc.stderr[-2000:]}")
        rep = json.loads(proc.stdout)
        _common.emit({"count": rep["requests"], "rps": rep["rps"], "p50_ms": rep["latency_ms"]["p50"],
                      "p99_ms": rep["latency_ms"]["p99"], "errors": rep["error_count"]})


if __name__ == "__main__":
    main()
