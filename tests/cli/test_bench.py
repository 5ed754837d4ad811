"""``tcpmsg bench`` as a real subprocess, against ``tcpmsg serve`` and a real NestJS 12 server."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import ROOT, Served, make_cert, no_traceback, one_line_error, start_serve, stop, tcpmsg

pytestmark = pytest.mark.timeout(120)

ERROR_KINDS = {"remote", "no_handler", "timeout", "connection", "protocol"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_serve(tmp_path_factory.mktemp("bench"))
    try:
        yield server
    finally:
        stop(server.proc)
        for stream in (server.proc.stdout, server.proc.stderr):
            if stream:
                stream.close()


def bench_json(*args: str) -> tuple[int, dict[str, Any]]:
    proc = tcpmsg("bench", *args, "--json")
    no_traceback(proc)
    assert proc.stdout.count("\n") == 1, proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def check_report(rep: dict[str, Any], concurrency: int, connections: int, duration: float) -> None:
    """The fields every report has, and how they must agree with each other."""
    assert rep["concurrency"] == concurrency and rep["connections"] == connections
    assert abs(rep["duration_s"] - duration) < 0.25, rep
    assert set(rep["errors"]) == ERROR_KINDS
    assert rep["error_count"] == sum(rep["errors"].values())
    assert rep["rps"] == pytest.approx(rep["requests"] / rep["duration_s"])
    assert 0 <= rep["client_cpu"] < 1.5  # this process's CPU time over the window: one thread
    lat = rep["latency_ms"]
    if rep["requests"]:
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"]
        assert sum(b["count"] for b in rep["histogram"]) == rep["requests"]
        bounds = [b["le_ms"] for b in rep["histogram"]]
        assert bounds == sorted(bounds) and bounds[-1] == pytest.approx(lat["max"])
    else:
        assert rep["histogram"] == []


def test_echo_against_our_server(served: Served) -> None:
    status, rep = bench_json(served.address, "echo", '{"n":1}', "-c", "8", "-d", "0.6")
    assert status == 0
    check_report(rep, 8, 1, 0.6)
    assert rep["requests"] > 50, rep
    assert rep["error_count"] == 0
    assert rep["target"] == served.address and rep["pattern"] == "echo" and rep["tls"] is False


def test_calls_spread_over_connections_with_warmup(served: Served) -> None:
    status, rep = bench_json(served.address, '{"cmd":"sum"}', "[1,2]", "-c", "6", "--connections", "3",
                             "-d", "0.5", "--warmup", "0.2")
    assert status == 0
    check_report(rep, 6, 3, 0.5)
    assert rep["requests"] > 20 and rep["error_count"] == 0
    assert rep["pattern"] == {"cmd": "sum"}


@pytest.mark.parametrize(("pattern", "data", "kind"), [("missing", "1", "no_handler"), ("fail", "1", "remote")])
def test_errors_are_counted_by_kind(served: Served, pattern: str, data: str, kind: str) -> None:
    status, rep = bench_json(served.address, pattern, data, "-c", "2", "-d", "0.4")
    assert status == 1
    check_report(rep, 2, 1, 0.4)
    assert rep["requests"] == 0
    assert rep["errors"][kind] > 5 and rep["error_count"] == rep["errors"][kind], rep


def test_timeouts_are_counted(served: Served) -> None:
    status, rep = bench_json(served.address, "slow", "5", "-c", "2", "-d", "1", "--timeout", "0.3")
    assert status == 1
    check_report(rep, 2, 1, 1.0)
    assert rep["requests"] == 0
    assert 2 <= rep["errors"]["timeout"] <= 8, rep  # 2 calls in flight, each given up after 0.3 s


def test_human_report_without_a_terminal(served: Served) -> None:
    proc = tcpmsg("bench", served.address, "echo", "1", "-c", "4", "-d", "0.4")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\r" not in out and "\x1b" not in out  # no live progress when stdout is not a terminal
    for word in ("requests", "errors     0", "p50", "p90", "p99", "max", "histogram", "client CPU"):
        assert word in out, out
    assert f"{served.address}, pattern \"echo\": 4 call(s) in flight on 1 connection(s)" in out


def test_live_progress_on_a_terminal(served: Served) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tcpmsg", "bench", served.address, "echo", "1", "-c", "4",
                             "-d", "1.5"], stdout=slave, stderr=subprocess.PIPE, cwd=ROOT)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = out.decode()
    assert "/s now" in text and "s left" in text, text  # at least one progress line
    assert "\r\x1b[K" in text
    assert "histogram" in text.rsplit("\r\x1b[K", 1)[-1]  # the report comes after the progress is cleared


def test_tls(tmp_path: Path) -> None:
    files = make_cert(tmp_path)
    if files is None:
        pytest.skip("openssl is not available")
    cert, key = files
    server = start_serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        status, rep = bench_json(server.address, "echo", "1", "-c", "4", "-d", "0.5", "--tls-ca", str(cert))
        assert status == 0
        check_report(rep, 4, 1, 0.5)
        assert rep["tls"] is True and rep["requests"] > 10 and rep["error_count"] == 0
    finally:
        stop(server.proc)


def test_against_nestjs(nestjs: str) -> None:
    status, rep = bench_json(nestjs, "echo", '{"s":"héllo 😀"}', "-c", "16", "--connections", "2", "-d", "0.8")
    assert status == 0
    check_report(rep, 16, 2, 0.8)
    assert rep["requests"] > 100 and rep["error_count"] == 0, rep
    status, rep = bench_json(nestjs, "missing", "1", "-c", "2", "-d", "0.3")
    assert status == 1 and rep["errors"]["no_handler"] > 0 and rep["requests"] == 0
    status, rep = bench_json(nestjs, "slow", '{"ms":2000}', "-c", "2", "-d", "0.8", "--timeout", "0.3")
    assert status == 1 and rep["errors"]["timeout"] >= 2 and rep["requests"] == 0


def _first_request_done(server: Served, pattern: str) -> None:
    """Wait (bounded) for the server's DEBUG line of a finished ``pattern`` request."""
    assert server.proc.stderr is not None
    fd, want = server.proc.stderr.fileno(), f"request {pattern!r}".encode()
    deadline = time.monotonic() + 30
    seen = b""
    while want not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 65536)  # the raw pipe: no buffered line select cannot see
            if not chunk:
                break
            seen += chunk
    assert want in seen, seen.decode(errors="replace")


def test_server_going_away_counts_connection_errors(tmp_path: Path) -> None:
    server = start_serve(tmp_path, "--log-level", "DEBUG")
    proc = subprocess.Popen([sys.executable, "-m", "tcpmsg", "bench", server.address, "slow", "0.5", "-c", "3",
                             "-d", "5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        # Not a fixed sleep: on a busy machine the bench may not have connected yet. Once a
        # call has finished, the bench keeps its 3 calls in flight: the kill loses them all.
        _first_request_done(server, "slow")
        server.proc.kill()  # by its pid: every call in flight is lost with the connection
        out, err = proc.communicate(timeout=60)
    finally:
        stop(server.proc)
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    rep = json.loads(out)
    assert proc.returncode == 1
    assert rep["errors"]["connection"] == 3, rep
    assert rep["duration_s"] < 4  # ends once every connection is gone, not after -d 5


def test_bad_arguments_and_refused_connection(served: Served) -> None:
    proc = tcpmsg("bench", served.address, "echo", "1", "-c", "2", "--connections", "3")
    assert proc.returncode == 2 and "--connections 3" in one_line_error(proc)
    for bad in (["-c", "0"], ["-d", "0"], ["-d", "nan"], ["--warmup", "-1"], ["--connections", "x"]):
        proc = tcpmsg("bench", served.address, "echo", "1", *bad)
        no_traceback(proc)
        assert proc.returncode == 2, (bad, proc.stderr)
    with_socket = __import__("socket").socket()
    with_socket.bind(("127.0.0.1", 0))
    port = with_socket.getsockname()[1]
    with_socket.close()  # nothing listens there now
    proc = tcpmsg("bench", f"127.0.0.1:{port}", "echo", "1", "-d", "0.2")
    assert proc.returncode == 3 and "cannot connect" in one_line_error(proc)


def test_percentiles_and_histogram_edges() -> None:
    from tcpmsg.bench import histogram, percentile

    assert percentile([], 50) == 0.0 and histogram([]) == []
    assert percentile([1.0], 99) == 1.0 and histogram([2.0]) == [(2.0, 1)]
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (0.05, 0.09, 0.099)
    hist = histogram(values)
    assert len(hist) == 10 and sum(n for _, n in hist) == 100 and hist[-1][0] == 0.1
    assert [b for b, _ in hist] == sorted(b for b, _ in hist)
    assert histogram([0.003] * 5) == [(0.003, 5)]  # all equal: one bucket


class OddServer:
    """A loopback server answering ``echo`` requests, with something odd before each reply."""

    def __init__(self, odd: bytes) -> None:
        import socket
        import threading

        self.odd = odd
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        buf = b""
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                out = b""
                while b"#" in buf:
                    size, rest = buf.split(b"#", 1)
                    if len(rest) < int(size):
                        break
                    packet, buf = json.loads(rest[: int(size)]), rest[int(size):]
                    reply = json.dumps({"response": packet["data"], "isDisposed": True, "id": packet["id"]})
                    out += self.odd + f"{len(reply)}#{reply}".encode()
                try:
                    sock.sendall(out)
                except OSError:
                    return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


def test_packets_that_answer_nothing_are_ignored() -> None:
    server = OddServer(b'9#{"foo":1}')
    try:
        status, rep = bench_json(f"127.0.0.1:{server.port}", "echo", "1", "-c", "4", "-d", "0.4")
    finally:
        server.close()
    assert status == 0
    check_report(rep, 4, 1, 0.4)
    assert rep["requests"] > 10 and rep["error_count"] == 0, rep


def test_protocol_error_ends_the_connection() -> None:
    server = OddServer(b"ab#{}")  # not a length: NestJS drops such a peer, and so do we
    try:
        status, rep = bench_json(f"127.0.0.1:{server.port}", "echo", "1", "-c", "4", "-d", "2")
    finally:
        server.close()
    assert status == 1
    assert rep["requests"] == 0 and rep["errors"]["protocol"] == 1, rep
    assert rep["errors"]["connection"] == 4, rep  # the calls in flight die with the connection
    assert rep["duration_s"] < 1.5  # ends once its only connection is gone
