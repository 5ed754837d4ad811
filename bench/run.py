"""Benchmarks of sansio-tcpmsg against NestJS 12, in the same run, on loopback.

    python bench/run.py [--duration S] [--repeat N] [--quick] [--only PAIRS] [--no-breadth]
                        [--connections N] [--payloads ...] [--concurrency ...] [--no-framer]

Every pair is a server process and a load-driver process (so the server's RSS is its
own): for each repetition, each pair is started fresh, then every cell (payload small /
1k / 64k x concurrency 1 / 64, pattern ``echo``) is driven for ``--duration`` seconds
after a short warm-up. Then, small payload, the cells beyond ``echo`` (``--no-breadth``
skips them): ``idleN`` (server RSS growth per 1,000 idle connections, N opened by this
script), ``stream/c1`` and ``stream/c64`` (items/s of 100-item streams), ``connsN`` (N
clients, one call in flight each), ``emit/c16`` (events/s handled by the server) and,
on a second server and driver started with TLS (certificates made at run time with
``cryptography``), ``tls/c1`` and ``tls/c64``. The server's peak RSS (VmHWM) is reset before each cell and read
after it. Medians over the repetitions are reported, each also as a ratio to the
NestJS-client -> NestJS-server figure of the same cell in the same run. Then the framer
alone (``bench/framer.py`` and ``bench/js/framer.js``).

Writes ``bench/results/bench-<stamp>.json`` and ``.md`` (and ``latest.json`` /
``latest.md``) and prints the Markdown.

``--only`` takes comma-separated pair names or shell patterns, client->server, e.g.
``--only 'nest->anyio-*,anyio-asyncio->nest'``; ``nest->nest`` is always run (it is the
baseline), and so is the ceiling of every chosen pair. Names: ``nest``,
``anyio-asyncio`` (uvloop when installed), ``anyio-trio``, ``gevent``, ``threads``; the
framework-free ceilings ``raw-asyncio``, ``raw-trio``, ``raw-gevent`` and ``raw-threads``
(a minimal server, ``bench/raw_server.py --model M``, and a minimal client,
``bench/raw_client.py --mode M``, of each concurrency model, with the same framing and
JSON and no features). Every pair of ours is also reported as a ratio to its model's
ceiling in the same cell: ``nest->gevent`` to ``nest->raw-gevent``, ``gevent->nest`` to
``raw-gevent->nest``, ``gevent->gevent`` to ``raw-gevent->raw-gevent``. The clients
``threads-futures`` and ``gevent-futures`` are ONE thread (greenlet) keeping C calls in
flight with ``client.submit`` (``threads-futures->nest`` at c=64 against ``nest->nest``
is issue 13's futures target). ``tcpmsg-bench`` is the ``tcpmsg bench`` command as the
client (``tcpmsg-bench->nest`` beside ``nest->nest``: it against the NestJS load driver).
The ceilings, futures clients and ``tcpmsg-bench`` run the cells they can speak.
``--quick`` runs the pairs with NestJS on one side and ours on the other only (no
ceilings, no ``X->X``). ``--only none`` runs the framer alone; ``--no-framer`` skips it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import _common
from _certs import Certs, make_certs
from _common import BENCH, BINDINGS, CONCURRENCIES, FUTURES, NEST_MAJOR, PAYLOADS, REPO

RESULTS = BENCH / "results"
BASELINE = "nest->nest"
METRICS = ("rps", "p50_ms", "p99_ms", "rss_mib")
#: Shortest window and warm-up of the stream, emit and conns cells (--quick: shorter).
BREADTH_MIN_DURATION = 0.6
BREADTH_MIN_WARMUP = 0.3


#: The concurrency model of each of our kinds, and its framework-free ceiling.
MODELS = {"anyio-asyncio": "asyncio", "anyio-trio": "trio", "gevent": "gevent", "threads": "threads"}
RAW = tuple(f"raw-{m}" for m in MODELS.values())
#: The ``tcpmsg bench`` command as a load driver (``bench/cli_driver.py``): an asyncio client.
CLI = "tcpmsg-bench"


def all_pairs() -> list[tuple[str, str]]:
    pairs = [("nest", "nest")]
    pairs += [("nest", b) for b in BINDINGS]
    pairs += [(b, "nest") for b in BINDINGS]
    pairs += [(f, "nest") for f in FUTURES]
    pairs += [(b, b) for b in BINDINGS]
    pairs += [("nest", r) for r in RAW]
    pairs += [(r, "nest") for r in RAW]
    pairs += [(r, r) for r in RAW]
    pairs += [(CLI, "nest")]
    return pairs


def ceiling_kind(kind: str) -> str | None:
    """``raw-<model>`` for one of our kinds (``threads-futures`` counts as ``threads``), else None."""
    if kind == CLI:
        return "raw-asyncio"
    for ours, model in MODELS.items():
        if kind == ours or kind.startswith(ours + "-"):
            return f"raw-{model}"
    return None


def ceiling_pair(client: str, server: str) -> tuple[str, str] | None:
    """The same pair with our side(s) replaced by the model's framework-free ceiling."""
    c = "nest" if client == "nest" else ceiling_kind(client)
    s = "nest" if server == "nest" else ceiling_kind(server)
    if c is None or s is None or (c, s) == (client, server) or (c, s) == ("nest", "nest"):
        return None
    return c, s


def pair_name(client: str, server: str) -> str:
    return f"{client}->{server}"


# --------------------------------------------------------------------------- processes


def nest_modules() -> Path:
    sys.path.insert(0, str(REPO / "tests" / "interop"))
    import nest  # tests/interop/nest.py

    return nest.ensure_installed(NEST_MAJOR)


def _readline(stream: IO[bytes], timeout: float) -> bytes | None:
    box: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout)
    except queue.Empty:
        return None


class Proc:
    """A child process speaking lines on stdin/stdout; stderr kept in a temp file."""

    def __init__(self, argv: list[str], env: dict[str, str], label: str, reads_stdin: bool = True) -> None:
        self.label = label
        self.reads_stdin = reads_stdin  # a driver ends when its stdin closes; a server waits for SIGTERM
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                  env=env, cwd=str(REPO))

    @property
    def pid(self) -> int:
        return self.p.pid

    def stderr_tail(self, n: int = 1500) -> str:
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")[-n:]

    def readline(self, timeout: float) -> str:
        assert self.p.stdout is not None
        line = _readline(self.p.stdout, timeout)
        if not line:
            why = "timed out" if line is None else "exited"
            raise RuntimeError(f"{self.label} {why}; stderr:\n{self.stderr_tail()}")
        return line.decode().strip()

    def writeline(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text.encode() + b"\n")
        self.p.stdin.flush()

    def stop(self) -> None:
        """Close stdin, SIGTERM by pid, kill after a grace period."""
        if self.p.poll() is None:
            try:
                if self.p.stdin is not None:
                    self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout=1.0 if self.reads_stdin else 0.0)
            except subprocess.TimeoutExpired:
                try:
                    self.p.send_signal(signal.SIGTERM)
                    self.p.wait(timeout=3.0)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.p.kill()
                    self.p.wait(timeout=5.0)
        for f in (self.p.stdout, self.p.stdin):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        self.err.close()


def reset_peak_rss(pid: int) -> None:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def peak_rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def start_server(kind: str, env_node: dict[str, str], env_py: dict[str, str],
                 certs: Certs | None = None) -> tuple[Proc, int]:
    """One server process; with ``certs``, serving TLS. Returns it and its port."""
    if kind == "nest":
        env = dict(env_node, TLS_CERT=str(certs.cert), TLS_KEY=str(certs.key)) if certs else env_node
        proc = Proc([node(), str(BENCH / "js" / "server.js")], env, "NestJS server", reads_stdin=False)
    elif kind in RAW:
        proc = Proc([sys.executable, str(BENCH / "raw_server.py"), "--model", kind[4:]], env_py, f"{kind} server",
                    reads_stdin=False)
    else:
        tls = ["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)] if certs else []
        proc = Proc([sys.executable, str(BENCH / "server.py"), "--binding", kind, *tls], env_py, f"{kind} server",
                    reads_stdin=False)
    return proc, listening_port(proc)


def listening_port(proc: Proc) -> int:
    """The port a started server process prints (``LISTENING <port>``); stops it on failure."""
    try:
        line = proc.readline(30.0)
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"{proc.label}: unexpected {line!r}")
    except BaseException:
        proc.stop()
        raise
    return int(line.split()[1])


def start_driver(kind: str, port: int, env_node: dict[str, str], env_py: dict[str, str],
                 certs: Certs | None = None) -> Proc:
    """One load driver connected to ``port``; with ``certs``, over TLS."""
    if kind == "nest":
        env = dict(env_node, PORT=str(port), HOST="127.0.0.1")
        if certs:
            env["TLS_CA"] = str(certs.ca)
        proc = Proc([node(), str(BENCH / "js" / "load.js")], env, "NestJS load driver")
    elif kind in RAW:
        proc = Proc([sys.executable, str(BENCH / "raw_client.py"), "--mode", kind[4:], "--port", str(port)], env_py,
                    f"{kind} client")
    elif kind == CLI:
        tls = ["--tls-ca", str(certs.ca)] if certs else []
        proc = Proc([sys.executable, str(BENCH / "cli_driver.py"), "--port", str(port), *tls], env_py, "tcpmsg bench")
    else:
        tls = ["--tls-ca", str(certs.ca)] if certs else []
        proc = Proc([sys.executable, str(BENCH / "load.py"), "--binding", kind, "--port", str(port), *tls], env_py,
                    f"{kind} load driver")
    try:
        line = proc.readline(30.0)
        if line != "READY":
            raise RuntimeError(f"{proc.label}: unexpected {line!r}")
    except BaseException:
        proc.stop()
        raise
    return proc


def node() -> str:
    path = shutil.which("node")
    if path is None:
        raise SystemExit("node is required (NestJS baseline)")
    return path


# --------------------------------------------------------------------------- the run


def echo_cells(payloads: list[str], concurrencies: list[int]) -> list[dict[str, Any]]:
    """The request/response cells: ``echo`` for every payload and concurrency."""
    return [{"key": f"{p}/c{c}", "kind": "echo", "payload": p, "concurrency": c}
            for p in payloads for c in concurrencies]


def breadth_cells(connections: int) -> list[dict[str, Any]]:
    """Everything else a service does, small payload. ``unit`` names what ``rps`` counts.

    ``idle`` is measured by this script after the ``echo`` cells (RSS growth of the warm
    server per 1,000 idle connections it opens), the rest by the driver; ``tls`` cells run on a second server and driver
    started with TLS; ``emit`` runs last, as a server may still be working off events.
    """
    small = {"payload": "small", "concurrency": 1}
    return [
        {**small, "key": f"idle{connections}", "kind": "idle", "connections": connections, "unit": "MiB/1k"},
        {**small, "key": "stream/c1", "kind": "stream", "items": 100, "unit": "items/s"},
        {**small, "key": "stream/c64", "kind": "stream", "items": 100, "concurrency": 64, "unit": "items/s"},
        {**small, "key": f"conns{connections}", "kind": "conns", "connections": connections, "unit": "req/s"},
        {**small, "key": "emit/c16", "kind": "emit", "concurrency": 16, "unit": "events/s"},
        {**small, "key": "tls/c1", "kind": "echo", "tls": True, "unit": "req/s"},
        {**small, "key": "tls/c64", "kind": "echo", "tls": True, "concurrency": 64, "unit": "req/s"},
    ]


def client_does(kind: str, cell: dict[str, Any]) -> bool:
    """The ceilings speak plain ``echo`` only, the futures modes ``echo`` (TLS too); ``tcpmsg bench``
    calls one pattern (``echo``, ``conns``, TLS)."""
    if kind in RAW:
        return cell["kind"] == "echo" and not cell.get("tls")
    if kind in FUTURES:
        return cell["kind"] == "echo"
    if kind == CLI:
        return cell["kind"] in ("echo", "conns")
    return True


def runs_cell(client: str, server: str, cell: dict[str, Any]) -> bool:
    """Whether a pair runs a cell; idle connections are a server's cost, measured once per server."""
    if cell["kind"] == "idle":
        return client == "nest"
    return client_does(client, cell) and (server not in RAW or client_does(server, cell))


def run_pair(client: str, server: str, cells: list[dict[str, Any]], args: argparse.Namespace,
             env_node: dict[str, str], env_py: dict[str, str], certs: Certs | None) -> dict[str, Any]:
    """Measure every cell on fresh processes: one server and one driver, TLS cells on a second pair."""
    cells = [c for c in cells if runs_cell(client, server, c)]
    out: dict[str, Any] = {}
    for tls in (False, True):
        group = [c for c in cells if bool(c.get("tls")) == tls]
        if group:
            out.update(run_group(client, server, group, args, env_node, env_py, certs if tls else None))
    return out


def run_group(client: str, server: str, cells: list[dict[str, Any]], args: argparse.Namespace,
              env_node: dict[str, str], env_py: dict[str, str], certs: Certs | None) -> dict[str, Any]:
    """Start one server and one driver; measure ``cells`` in order. {cell_key: result}."""
    out: dict[str, Any] = {}
    srv, port = start_server(server, env_node, env_py, certs)
    drv = None
    try:
        drv = start_driver(client, port, env_node, env_py, certs)
        for i, cell in enumerate(cells):
            if cell["kind"] == "idle":
                out[cell["key"]] = measure_idle(srv.pid, port, cell["connections"])
                continue
            # the first cell of a fresh pair also warms up the JIT / caches of both processes
            warmup = max(args.warmup, args.first_warmup) if i == 0 else args.warmup
            duration = args.duration
            if cell["kind"] != "echo":  # calls that take long: a window that holds several
                # --quick shortens them, emit less: its rate needs two ticks replies inside the window
                scale = (0.7 if cell["kind"] == "emit" else 0.35) if args.quick else 1.0
                duration = max(duration, BREADTH_MIN_DURATION * scale)
                warmup = max(warmup, BREADTH_MIN_WARMUP * scale)
            reset_peak_rss(srv.pid)
            cmd = {k: v for k, v in cell.items() if k not in ("key", "unit", "tls")}
            drv.writeline(json.dumps({**cmd, "duration": duration, "warmup": warmup}))
            res = json.loads(drv.readline(duration + warmup + 60.0))
            res["rss_mib"] = peak_rss_mib(srv.pid)
            if srv.p.poll() is not None:
                raise RuntimeError(f"{srv.label} died; stderr:\n{srv.stderr_tail()}")
            out[cell["key"]] = res
    finally:
        if drv is not None:
            drv.stop()
        srv.stop()
    return out


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def measure_idle(pid: int, port: int, n: int) -> dict[str, Any]:
    """Server RSS growth per 1,000 idle connections: open ``n``, wait until all are accepted."""
    before = _status_kib(pid, "VmRSS")
    fds = _open_fds(pid)
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10.0))
        deadline = time.monotonic() + 30.0
        while _open_fds(pid) < fds + n and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # let the server finish setting up what it accepted
        accepted = _open_fds(pid) - fds
        after = _status_kib(pid, "VmRSS")
    finally:
        for s in socks:
            s.close()
    return {"count": accepted, "rps": None, "p50_ms": None, "p99_ms": None, "errors": n - min(n, accepted),
            "rss_mib": (after - before) / 1024.0 * 1000.0 / n}


def median_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(raw: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Medians per pair and cell, plus ratios to the baseline's medians."""
    med: dict[str, dict[str, dict[str, Any]]] = {}
    for pair, cells in raw.items():
        med[pair] = {}
        for key, reps in cells.items():
            ok = [r for r in reps if "error" not in r]
            m: dict[str, Any] = {"reps": len(ok), "errors": sum(int(r.get("errors", 0)) for r in ok)}
            for metric in METRICS:
                m[metric] = median_or_none([r.get(metric) for r in ok])
            med[pair][key] = m
    base = med.get(BASELINE, {})
    for pair, cells in med.items():
        ceiling = ceiling_pair(*pair.split("->"))
        roof = med.get(pair_name(*ceiling), {}) if ceiling else {}
        for key, m in cells.items():
            m["ratio"] = _ratios(m, base.get(key, {}))
            if ceiling:
                m["ceiling_pair"] = pair_name(*ceiling)
                m["ceiling"] = _ratios(m, roof.get(key, {}))
    return med


def _ratios(m: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    return {metric: (m[metric] / b[metric] if m.get(metric) is not None and b.get(metric) else None)
            for metric in METRICS}


def run_framer(args: argparse.Namespace, env_node: dict[str, str], env_py: dict[str, str]) -> dict[str, Any]:
    flags = ["--quick"] if args.quick else []
    py = subprocess.run([sys.executable, str(BENCH / "framer.py"), "--json", *flags], env=env_py,
                        capture_output=True, text=True, timeout=600, cwd=str(REPO))
    js = subprocess.run([node(), str(BENCH / "js" / "framer.js"), *flags], env=env_node,
                        capture_output=True, text=True, timeout=600, cwd=str(REPO))
    out: dict[str, Any] = {}
    for name, proc in (("ours", py), ("nest", js)):
        if proc.returncode != 0:
            out[name] = {"error": proc.stderr[-2000:]}
        else:
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- reporting


def machine_info(nest_path: Path) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    from importlib import metadata

    for dist in ("anyio", "trio", "gevent", "uvloop"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    try:
        ms = json.loads((nest_path / "@nestjs" / "microservices" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        ms = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sansio_tcpmsg", "bindings"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "?", ""
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    node_v = subprocess.run([node(), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": mem, "os": platform.platform(),
        "python": platform.python_version(), "node": node_v, "nestjs_microservices": ms,
        "packages": versions, "commit": commit + ("+dirty" if dirty else ""),
    }


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "—"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def _ratio(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def markdown(report: dict[str, Any]) -> str:
    med = report["results"]
    cfg = report["config"]
    all_cells = cfg["cells"]
    cells = [c["key"] for c in all_cells if c["kind"] == "echo" and not c.get("tls")]
    breadth = [c for c in all_cells if c["key"] not in cells]
    m = report["machine"]
    lines = [
        f"# sansio-tcpmsg benchmarks ({report['started']})",
        "",
        f"Command: `{cfg['command']}` — {cfg['duration']} s per cell after {cfg['warmup']} s warm-up "
        f"({cfg['first_warmup']} s for the first cell of each fresh server/driver pair), "
        f"median of {cfg['repeat']} repetition(s).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; {m['os']}; Python {m['python']}, "
        f"Node {m['node']}, @nestjs/microservices {m['nestjs_microservices']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + f"; commit {m['commit']}.",
        "",
        "Pairs are `client->server`. `nest` = NestJS 12 (`ClientTCP` / `ServerTCP`); `raw-<model>` = "
        "the framework-free ceilings of each concurrency model (`bench/raw_server.py --model M`, "
        "`bench/raw_client.py --mode M`: the same framing and JSON, no features). Ratios (×) are to "
        f"`{BASELINE}` in the same cell of this run: for req/s higher is better, for latency and "
        "RSS lower is better. RSS = peak resident memory of the server process during the cell. "
        "\"× ceiling\" is the ratio to the same pair with our side(s) replaced by the ceiling of their "
        "model (`nest->gevent` to `nest->raw-gevent`, `gevent->gevent` to `raw-gevent->raw-gevent`).",
        "",
        "## Requests/s as a ratio to NestJS → NestJS",
        "",
        "| pair | " + " | ".join(cells) + " |",
        "| --- | " + " | ".join("---:" for _ in cells) + " |",
    ]
    for pair, by_cell in med.items():
        row = [_ratio(by_cell.get(c, {}).get("ratio", {}).get("rps")) for c in cells]
        base_row = [_fmt(by_cell.get(c, {}).get("rps")) for c in cells]
        lines.append(f"| {pair} | " + " | ".join(base_row if pair == BASELINE else row) + " |")
    lines += ["", f"(The `{BASELINE}` row shows its absolute req/s.)", "",
              "## Requests/s as a ratio to the same model's framework-free ceiling", "",
              "| pair | ceiling | " + " | ".join(cells) + " |",
              "| --- | --- | " + " | ".join("---:" for _ in cells) + " |"]
    for pair, by_cell in med.items():
        roof = next((r["ceiling_pair"] for r in by_cell.values() if "ceiling_pair" in r), None)
        if roof is None:
            continue
        row = [_ratio(by_cell.get(c, {}).get("ceiling", {}).get("rps")) for c in cells]
        lines.append(f"| {pair} | {roof} | " + " | ".join(row) + " |")
    if breadth:
        lines += ["", "## Beyond echo, NestJS as the baseline", "",
                  "Small payload. `stream`: 100 items per call, items/s; `conns`: that many clients, one call in "
                  "flight each, req/s; `idle`: server RSS growth per 1,000 idle connections (MiB, lower is better); "
                  "`emit`: events/s handled by the server (16 emitters, each sending 100 `tick` events then "
                  "calling `ticks`, which reads the server's count); `tls`: `echo` over TLS, req/s.", "",
                  "| pair | " + " | ".join(f"{c['key']} ({c['unit']})" for c in breadth) + " |",
                  "| --- | " + " | ".join("---:" for _ in breadth) + " |"]
        for pair, by_cell in med.items():
            if not any(c["key"] in by_cell for c in breadth):
                continue
            row = []
            for c in breadth:
                r = by_cell.get(c["key"], {})
                metric = "rss_mib" if c["kind"] == "idle" else "rps"
                row.append(_fmt(r.get(metric)) if pair == BASELINE else _ratio(r.get("ratio", {}).get(metric)))
            lines.append(f"| {pair} | " + " | ".join(row) + " |")
        lines += ["", f"(The `{BASELINE}` row shows absolute figures; the others, ratios to it.)"]
    lines += ["", "## All figures", "",
              "`rate` is req/s, or what the cell's unit says; for `idle`, RSS is MiB per 1,000 idle connections.",
              "",
              "| pair | cell | rate | × | × ceiling | p50 ms | × | p99 ms | × | server RSS MiB | × |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for pair, by_cell in med.items():
        for c in [c["key"] for c in all_cells]:
            r = by_cell.get(c)
            if r is None:
                continue
            rt = r["ratio"]
            err = f" ({r['errors']} errors)" if r.get("errors") else ""
            if not r["reps"]:
                lines.append(f"| {pair} | {c} | failed | | | | | | | | |")
                continue
            roof = _ratio(r["ceiling"]["rps"]) if "ceiling" in r else ""
            lines.append(
                f"| {pair} | {c} | {_fmt(r['rps'])}{err} | {_ratio(rt['rps'])} | {roof} | "
                f"{_fmt(r['p50_ms'], 3)} | {_ratio(rt['p50_ms'])} | {_fmt(r['p99_ms'], 3)} | "
                f"{_ratio(rt['p99_ms'])} | {_fmt(r['rss_mib'], 1)} | {_ratio(rt['rss_mib'])} |"
            )
    if report.get("failures"):
        lines += ["", "## Failures", ""]
        for f in report["failures"]:
            first = f["error"].strip().splitlines()
            lines.append(f"- rep {f['rep']} `{f['pair']}`: {first[0] if first else ''} "
                         f"{' '.join(first[-1:]) if len(first) > 1 else ''}")
    fr = report.get("framer")
    if fr:
        lines += ["", "## Framer alone (decode only, MB/s of wire bytes; best of runs)", ""]
        lines += framer_markdown(fr)
    return "\n".join(lines) + "\n"


def framer_markdown(fr: dict[str, Any]) -> list[str]:
    ours, nest = fr.get("ours", {}), fr.get("nest", {})
    out = ["| case | bytes | ours MB/s | JsonSocket MB/s | ours / JsonSocket |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, o in ours.get("cases", {}).items():
        n = nest.get("cases", {}).get(name, {})
        ratio = (o["mb_s"] / n["mb_s"]) if n.get("mb_s") else None
        out.append(f"| {name} | {o['bytes']:,} | {o['mb_s']:.1f} | {_fmt(n.get('mb_s'), 1)} | {_ratio(ratio)} |")
    out += ["", "Linearity (time ratio of the bigger input to the smaller; linear = the size ratio):", "",
            "| check | expected | ours | JsonSocket |", "| --- | ---: | ---: | ---: |"]
    for name, o in ours.get("linearity", {}).items():
        n = nest.get("linearity", {}).get(name, {})
        out.append(f"| {name} | {o['expected']:.0f} | {o['ratio']:.2f} | {_fmt(n.get('ratio'))} |")
    for side, d in (("ours", ours), ("nest", nest)):
        if "error" in d:
            out.append(f"\n{side} framer failed: `{d['error'].strip().splitlines()[-1:]}`")
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=None, help="seconds measured per cell (default 1.2; quick 0.2)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds of warm-up per cell (default 0.3; quick 0.05)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions, medians reported (default 3; quick 1)")
    ap.add_argument("--quick", action="store_true", help="a short smoke run (under a minute)")
    ap.add_argument("--only", default=None, help="comma-separated pairs or patterns, e.g. 'nest->anyio-*'")
    ap.add_argument("--payloads", default=",".join(PAYLOADS))
    ap.add_argument("--concurrency", default=",".join(map(str, CONCURRENCIES)))
    ap.add_argument("--no-framer", action="store_true")
    ap.add_argument("--no-breadth", action="store_true", help="echo cells only (no emit, stream, TLS, connections)")
    ap.add_argument("--connections", type=int, default=None,
                    help="connections of the conns and idle cells (default 1000; quick 200)")
    ap.add_argument("--list", action="store_true", help="list the pairs and exit")
    args = ap.parse_args()
    args.duration = args.duration if args.duration is not None else (0.2 if args.quick else 1.2)
    args.first_warmup = 0.3 if args.quick else 1.0
    args.warmup = args.warmup if args.warmup is not None else (0.05 if args.quick else 0.3)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    args.connections = args.connections or (200 if args.quick else 1000)

    pairs = all_pairs()
    if args.list:
        print("\n".join(pair_name(*p) for p in pairs))
        return
    if args.only is not None:
        pats = [p.strip() for p in args.only.split(",") if p.strip()]
        if pats == ["none"]:
            pairs = []
        else:
            chosen = [p for p in pairs if any(fnmatch.fnmatchcase(pair_name(*p), pat) for pat in pats)]
            if not chosen:
                raise SystemExit(f"--only {args.only!r} matches no pair; see --list")
            roofs = [c for c in (ceiling_pair(*p) for p in chosen) if c is not None and c not in chosen]
            wanted = set(chosen) | set(roofs) | {("nest", "nest")}
            pairs = [p for p in pairs if p in wanted]
    elif args.quick:  # a smoke run: each of ours as server and as client against NestJS, no ceilings
        pairs = [p for p in pairs if "nest" in p and not any(k in RAW for k in p)]
    payloads = [p for p in args.payloads.split(",") if p]
    concs = [int(c) for c in args.concurrency.split(",") if c]
    cells = echo_cells(payloads, concs) + ([] if args.no_breadth else breadth_cells(args.connections))
    tmp = tempfile.TemporaryDirectory(prefix="tcpmsg-bench-")
    certs = make_certs(Path(tmp.name)) if any(c.get("tls") for c in cells) else None

    nest_path = nest_modules()
    env_node = dict(os.environ, NODE_PATH=str(nest_path), NODE_NO_WARNINGS="1")
    env_py = _common.python_env()
    started = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    t_start = time.monotonic()

    raw: dict[str, dict[str, list[dict[str, Any]]]] = {pair_name(*p): {} for p in pairs}
    failures: list[dict[str, Any]] = []
    for rep in range(args.repeat):
        for client, server in pairs:
            name = pair_name(client, server)
            t0 = time.monotonic()
            try:
                res = run_pair(client, server, cells, args, env_node, env_py, certs)
            except Exception as exc:  # one broken pair must not stop the run
                failures.append({"rep": rep + 1, "pair": name, "error": str(exc)})
                print(f"[rep {rep + 1}] {name}: FAILED {str(exc).strip().splitlines()[0]}", file=sys.stderr)
                for cell in cells:
                    if runs_cell(client, server, cell):
                        raw[name].setdefault(cell["key"], []).append({"error": str(exc)})
                continue
            for key, r in res.items():
                raw[name].setdefault(key, []).append(r)
            summary = "  ".join(f"{k} {_fmt(r['rps'] if r['rps'] is not None else r['rss_mib'])}"
                                for k, r in res.items())
            print(f"[rep {rep + 1}] {name} ({time.monotonic() - t0:.1f} s): {summary}", file=sys.stderr)

    framer = None
    if not args.no_framer:
        print("framer ...", file=sys.stderr)
        framer = run_framer(args, env_node, env_py)

    argv = " ".join(sys.argv[1:])
    report = {
        "started": started,
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "config": {
            "command": ("python bench/run.py " + argv).strip(),
            "duration": args.duration, "warmup": args.warmup, "first_warmup": args.first_warmup,
            "repeat": args.repeat,
            "payloads": payloads, "concurrencies": concs, "cells": cells,
        },
        "machine": machine_info(nest_path),
        "baseline": BASELINE,
        "results": aggregate(raw),
        "raw": raw,
        "failures": failures,
        "framer": framer,
    }
    tmp.cleanup()
    md = markdown(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for base in (f"bench-{stamp}", "latest"):
        (RESULTS / f"{base}.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / f"{base}.md").write_text(md)
    print(md)
    print(f"Wrote {RESULTS / f'bench-{stamp}.md'} and .json ({report['elapsed_s']} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
