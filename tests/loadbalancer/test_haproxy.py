"""Behind a real HAProxy: three of our server processes, our client and a NestJS 12 client.

HAProxy runs ``examples/deploy/haproxy.cfg`` as shipped (addresses from the environment):
``mode tcp``, the built-in health route checked with ``tcp-check send-binary``/``expect``,
``send-proxy-v2`` with ``check-send-proxy``. Under steady load from both clients, one
backend is SIGKILLed and another SIGTERMed (it drains): HAProxy marks both down by its
checks (the draining one while it still runs), no call is lost except those in flight on
the killed one, and the backends see each client's own address, not HAProxy's.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = ROOT / "examples" / "deploy" / "haproxy.cfg"
LOAD_JS = HERE / "js" / "load.js"
sys.path.insert(0, str(ROOT / "tests" / "interop"))
sys.path.insert(0, str(ROOT / "bindings"))

import tcpmsg_threads  # noqa: E402

from sansio_tcpmsg import TcpMsgError  # noqa: E402

pytestmark = pytest.mark.timeout(180)

IN_CI = os.environ.get("CI") == "true"
BINDINGS = {"app1": "threads", "app2": "anyio", "app3": "gevent"}
DRAIN_DELAY = 2.0  # > HAProxy's inter 300ms x fall 2, with room for a loaded machine
LANES = 4  # connections per client
PAUSE = 0.02  # seconds between the calls of a lane


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} (CI=true: the CI must install it)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def haproxy_bin() -> str:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        _missing("haproxy is not installed (Debian: apt-get install haproxy)")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="module")
def nest12() -> Path:
    import nest

    if not nest.node_available():
        _missing("node and npm are needed for the NestJS client")
    return nest.ensure_installed(12)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- processes ------------------------------------------------------------------------


class Backend:
    def __init__(self, name: str, binding: str, log_dir: Path) -> None:
        self.name = name
        self.stderr = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, APP_NAME=name, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "bindings")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcpmsg", "serve", "tests.loadbalancer.service:router", "--host", "127.0.0.1",
             "--port", "0", "--binding", binding, "--proxy-protocol", "--drain-delay", str(DRAIN_DELAY),
             "--grace", "5"],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, cwd=ROOT, env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            raise AssertionError(f"{name} did not start: {line!r}")
        self.port = int(match.group(1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.stderr.close()


class HAProxy:
    def __init__(self, binary: str, backends: list[Backend], tmp: Path) -> None:
        self.port = free_port()
        self.stats_socket = tmp / "haproxy.sock"
        env = dict(os.environ, TCPMSG_FRONTEND=f"127.0.0.1:{self.port}",
                   TCPMSG_STATS_SOCKET=str(self.stats_socket))
        for i, backend in enumerate(backends, 1):
            env[f"TCPMSG_APP{i}"] = f"127.0.0.1:{backend.port}"
        self.log = open(tmp / "haproxy.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([binary, "-db", "-f", str(CONFIG)], stdout=self.log, stderr=self.log, env=env)

    def stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend's servers: name -> row (``status``, ``check_status``...)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == "tcpmsg_servers"}

    def status(self, server: str) -> str:
        return self.stats()[server]["status"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def wait_for(predicate: Any, timeout: float, what: str) -> float:
    """Wait until ``predicate()`` holds; the time it held at."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.time()
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


# -- load -----------------------------------------------------------------------------


@dataclass
class Call:
    client: str
    lane: int
    t: float  # when the call started (wall clock: node reports it too)
    ok: bool
    name: str | None = None  # the backend that answered
    peer: tuple[str, int] | None = None
    local: int | None = None  # the client's own port for that connection
    error: str = ""


@dataclass
class Load:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)


def client_ports_to(frontend: int) -> set[int]:
    """Local ports of every established connection to the frontend: clients' sockets."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state == "01" and int(remote.split(":")[1], 16) == frontend:
            ports.add(int(local.split(":")[1], 16))
    return ports


def python_lane(lane: int, port: int, load: Load, stop: threading.Event) -> None:
    client = tcpmsg_threads.connect("127.0.0.1", port, timeout=10, connect_timeout=5)
    last_peer = None
    i = 0
    try:
        while not stop.is_set():
            started = time.time()
            try:
                reply = client.send("work", {"lane": lane, "i": i})
            except (TcpMsgError, OSError) as exc:
                load.add(Call("python", lane, started, False, error=f"{type(exc).__name__}: {exc}"))
            else:
                peer = (reply["peer"][0], reply["peer"][1])
                local = None
                if peer != last_peer:  # a new connection: is that port ours (a client's)?
                    local = peer[1] if peer[1] in client_ports_to(port) else -1
                    last_peer = peer
                load.add(Call("python", lane, started, True, reply["name"], peer, local))
            i += 1
            time.sleep(PAUSE)
    finally:
        client.close()


class NestLoad:
    def __init__(self, node_modules: Path, port: int, duration: float, load: Load) -> None:
        env = dict(os.environ, NODE_PATH=str(node_modules), HOST="127.0.0.1", PORT=str(port), LANES=str(LANES),
                   PAUSE=str(int(PAUSE * 1000)), DURATION=str(int(duration * 1000)))
        self.proc = subprocess.Popen(["node", str(LOAD_JS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.load = load
        self.ready = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line == "READY":
                self.ready.set()
            elif line == "DONE":
                self.done.set()
            elif line:
                rec = json.loads(line)
                t = rec["t"] / 1000
                if rec["ok"]:
                    reply = rec["reply"]
                    self.load.add(Call("nest", rec["lane"], t, True, reply["name"], tuple(reply["peer"]),
                                       rec["local"]))
                else:
                    self.load.add(Call("nest", rec["lane"], t, False, error=rec["error"]))

    def wait(self) -> str:
        self.proc.wait(60)
        self.thread.join(10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


# -- the test -------------------------------------------------------------------------


@pytest.fixture
def cluster(haproxy_bin: str, tmp_path: Path) -> Iterator[tuple[HAProxy, dict[str, Backend]]]:
    backends: dict[str, Backend] = {}
    haproxy = None
    try:
        for name, binding in BINDINGS.items():
            backends[name] = Backend(name, binding, tmp_path)
        haproxy = HAProxy(haproxy_bin, list(backends.values()), tmp_path)
        wait_for(lambda: haproxy.stats_socket.exists(), 10, "HAProxy's stats socket")
        wait_for(lambda: all(haproxy.status(n) == "UP" for n in backends), 15, "every backend UP")
        yield haproxy, backends
    finally:
        if haproxy is not None:
            haproxy.stop()
        for backend in backends.values():
            backend.stop()
        for log in sorted(tmp_path.glob("*.log")):  # shown by pytest when the test fails
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")


def test_kill_and_drain_under_load(cluster: tuple[HAProxy, dict[str, Backend]], nest12: Path) -> None:
    haproxy, backends = cluster
    load = Load()
    stop = threading.Event()
    duration = 16.0
    nest = NestLoad(nest12, haproxy.port, duration, load)
    lanes = [threading.Thread(target=python_lane, args=(n, haproxy.port, load, stop), daemon=True)
             for n in range(LANES)]
    for thread in lanes:
        thread.start()
    assert nest.ready.wait(30), "the NestJS lanes did not start"
    time.sleep(2.0)

    # SIGKILL one backend: HAProxy notices by its checks.
    killed, drained = backends["app1"], backends["app2"]
    killed.proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    killed.proc.wait(10)
    wait_for(lambda: haproxy.status("app1") == "DOWN", 10, "app1 marked DOWN")
    time.sleep(1.0)

    # SIGTERM another: it fails its checks first, and HAProxy marks it down while it runs.
    drained.proc.send_signal(signal.SIGTERM)
    down_at = wait_for(lambda: haproxy.status("app2") == "DOWN", 10, "app2 marked DOWN")
    assert drained.proc.poll() is None, "app2 exited before HAProxy marked it down"
    check_status = haproxy.stats()["app2"]["check_status"]
    assert drained.proc.wait(DRAIN_DELAY + 10) == 0
    exited_at = time.time()
    time.sleep(2.0)
    stop.set()
    for thread in lanes:
        thread.join(20)
    nest_stderr = nest.wait()
    stats = haproxy.stats()

    calls = load.calls
    failed = [c for c in calls if not c.ok]
    by_client = {who: [c for c in calls if c.client == who] for who in ("python", "nest")}
    summary = (f"{len(calls)} calls ({len(by_client['python'])} ours, {len(by_client['nest'])} NestJS), "
               f"{len(failed)} failed: {[(c.client, c.lane, round(c.t - killed_at, 3), c.error) for c in failed]}; "
               f"app2 DOWN {exited_at - down_at:.2f} s before it exited ({check_status}); nest stderr: {nest_stderr!r}")
    print(summary)

    # Both clients were busy all along, on every backend until it went.
    for own in by_client.values():
        assert len(own) > 100, summary
        assert {c.name for c in own if c.ok} >= {"app2", "app3"}, summary
    assert stats["app1"]["status"] == "DOWN" and stats["app2"]["status"] == "DOWN", stats
    assert stats["app3"]["status"] == "UP", stats
    assert check_status.startswith("L7"), check_status  # app2 answered its checks: "draining"

    # No call lost but those in flight on the killed backend, right when it died.
    for call in failed:
        earlier = [c for c in calls if c.client == call.client and c.lane == call.lane and c.ok and c.t < call.t]
        assert earlier and earlier[-1].name == "app1", summary
        assert killed_at - 0.5 < call.t < killed_at + 1.0, summary
    assert len(failed) <= 2 * 2 * LANES, summary  # at most a call or two per lane on app1
    # After the drain nothing answered from app1 or app2.
    late = [c for c in calls if c.ok and c.t > exited_at + 0.5]
    assert late and {c.name for c in late} == {"app3"}, summary

    # The backends saw each client's own address, never HAProxy's.
    for call in calls:
        if call.ok:
            assert call.peer is not None and call.peer[0] == "127.0.0.1", call
            if call.local is not None:
                assert call.peer[1] == call.local, call  # NestJS: its port; ours: a client socket
