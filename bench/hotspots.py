"""Profile one of our servers or clients under load with py-spy (sampling, low overhead).

    python bench/hotspots.py --side server --binding anyio-asyncio --payload small -c 64
    python bench/hotspots.py --side client --binding anyio-asyncio --payload 64k -c 1

``--side server``: our server (``bench/server.py``) driven by the NestJS load driver;
``--side client``: our load driver (``bench/load.py``) against the NestJS server. py-spy
attaches to our process for ``--duration`` seconds (on-CPU samples only, ``--idle`` off)
and the collapsed stacks are summarised: share of samples per function (self and
inclusive) and per area (core, binding, anyio, event loop, json, ...). Needs ``py-spy``
on PATH and a Python it can read (a virtualenv's python works; ``--raw-out`` keeps the
stacks).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import _common
from run import nest_modules, node, start_driver, start_server

AREAS = [
    ("sansio_tcpmsg/framing", "core: framing"),
    ("sansio_tcpmsg/codec", "core: codec (json)"),
    ("sansio_tcpmsg/", "core: other"),
    ("tcpmsg_anyio/", "binding: tcpmsg_anyio"),
    ("tcpmsg_threads/", "binding: tcpmsg_threads"),
    ("tcpmsg_sync/", "binding: tcpmsg_sync (threads and gevent)"),
    ("tcpmsg_gevent/", "binding: tcpmsg_gevent"),
    ("anyio/streams/memory", "anyio: memory streams"),
    ("anyio/_backends/_asyncio", "anyio: asyncio backend"),
    ("anyio/_backends/_trio", "anyio: trio backend"),
    ("anyio/", "anyio: other"),
    ("trio/", "trio"),
    ("uvloop", "uvloop"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
    ("gevent/", "gevent"),
    ("threading.py", "threading"),
    ("queue.py", "queue"),
    ("bench/", "bench harness"),
]


def area(frame: str) -> str:
    for needle, name in AREAS:
        if needle in frame:
            return name
    return "other"


def summarize(raw_path: str, top: int) -> dict[str, Any]:
    self_c: collections.Counter[str] = collections.Counter()
    incl_c: collections.Counter[str] = collections.Counter()
    area_self: collections.Counter[str] = collections.Counter()
    area_incl: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, n = line.rpartition(" ")
            count = int(n)
            frames = [fr for fr in stack.split(";") if fr]
            # drop py-spy's thread / process header frames
            frames = [fr for fr in frames if not fr.startswith(("thread ", "process "))]
            if not frames:
                continue
            total += count
            self_c[frames[-1]] += count
            area_self[area(frames[-1])] += count
            for fr in set(frames):
                incl_c[fr] += count
            for a in {area(fr) for fr in frames}:
                area_incl[a] += count

    def pct(c: collections.Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * v / total) for name, v in c.most_common(k)] if total else []

    return {"samples": total, "self": pct(self_c, top), "inclusive": pct(incl_c, top),
            "areas_self": pct(area_self, 30), "areas_inclusive": pct(area_incl, 30)}


def short(frame: str) -> str:
    """``func (path/to/file.py)`` -> ``func (file.py)`` keeping the package dir."""
    if "(" not in frame:
        return frame
    name, _, where = frame.partition(" (")
    parts = where.rstrip(")").split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=("server", "client"), required=True)
    ap.add_argument("--binding", default="anyio-asyncio", choices=_common.BINDINGS + _common.FUTURES,
                    help="also threads-futures, gevent-futures (--side client: one caller, C submit() futures)")
    ap.add_argument("--payload", default="small", choices=_common.PAYLOADS)
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--raw-out", default=None, help="keep py-spy's collapsed stacks here")
    ap.add_argument("--gil", action="store_true",
                    help="sample only the thread holding the GIL (threads: the others mostly wait for it)")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("py-spy not found (pip install py-spy)")

    nest_path = nest_modules()
    env_node = dict(os.environ, NODE_PATH=str(nest_path), NODE_NO_WARNINGS="1")
    env_py = _common.python_env()
    node()
    if args.side == "server":
        srv, port = start_server(args.binding, env_node, env_py)
        drv = start_driver("nest", port, env_node, env_py)
        target = srv.pid
    else:
        srv, port = start_server("nest", env_node, env_py)
        drv = start_driver(args.binding, port, env_node, env_py)
        target = drv.pid
    raw_path = args.raw_out or tempfile.mktemp(suffix=".pyspy.txt")
    try:
        warm = 1.0
        drv.writeline(json.dumps({"concurrency": args.concurrency, "payload": args.payload,
                                  "duration": args.duration + 1.0, "warmup": warm}))
        time.sleep(warm)
        spy = subprocess.run([pyspy, "record", "--pid", str(target), "-d", str(int(args.duration)),
                              "-r", str(args.rate), "--format", "raw", "--nolineno", "-o", raw_path,
                              *(["--gil"] if args.gil else [])],
                             capture_output=True, text=True, timeout=args.duration + 60)
        load = json.loads(drv.readline(args.duration + 60))
    finally:
        drv.stop()
        srv.stop()
    if spy.returncode != 0 or not os.path.exists(raw_path):
        raise SystemExit(f"py-spy failed: {spy.stderr[-2000:]}")
    summary = summarize(raw_path, args.top)
    summary["load"] = load
    summary["config"] = vars(args)
    if not args.raw_out:
        os.unlink(raw_path)
    if args.json:
        print(json.dumps(summary))
        return
    print(f"# {args.side} {args.binding}, payload {args.payload}, c={args.concurrency}: "
          f"{load['rps']:.0f} req/s during profiling, {summary['samples']} on-CPU samples")
    for key, title in (("areas_self", "by area, self"), ("areas_inclusive", "by area, inclusive"),
                       ("self", "functions, self"), ("inclusive", "functions, inclusive")):
        print(f"\n## {title}")
        for name, p in summary[key]:
            print(f"{p:6.1f}%  {short(name)}")


if __name__ == "__main__":
    sys.exit(main())
