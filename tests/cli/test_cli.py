"""The ``tcpmsg`` command, run as real subprocesses against ``tcpmsg serve``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIMEOUT = 30


def tcpmsg(*args: str, timeout: float = TIMEOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpmsg", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tcpmsg: error: "), proc.stderr
    return lines[0]


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, events: Path) -> None:
        self.proc = proc
        self.port = port
        self.events = events

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_serve(tmp_path: Path, *extra: str, binding: str = "threads",
                target: str = "tests.cli.service:router") -> Served:
    events = tmp_path / "events.txt"
    env = dict(os.environ, TCPMSG_TEST_EVENTS=str(events), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpmsg", "serve", target,
         "--host", "127.0.0.1", "--port", "0", "--binding", binding, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    line = ""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    sel.close()
    match = re.match(r"listening on (\S+):(\d+)", line)
    if not match:
        stop(proc)
        raise AssertionError(f"serve did not start: {line!r}\n{proc.stderr.read() if proc.stderr else ''}")
    return Served(proc, int(match.group(2)), events)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        raise


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_serve(tmp_path)
    try:
        yield server
    finally:
        stop(server.proc)
        for stream in (server.proc.stdout, server.proc.stderr):
            if stream:
                stream.close()


# -- send -------------------------------------------------------------------------------


def test_send_json_pattern_and_data(served: Served) -> None:
    proc = tcpmsg("send", served.address, '{"cmd":"sum"}', "[1,2,3]")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 6


def test_send_plain_strings(served: Served) -> None:
    proc = tcpmsg("send", served.address, "echo", "hello")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"data": "hello", "metadata": None}


def test_send_port_only_means_localhost(served: Served) -> None:
    proc = tcpmsg("send", str(served.port), "echo", "[1]")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"] == [1]


def test_send_without_data_sends_null(served: Served) -> None:
    proc = tcpmsg("send", served.address, "echo")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"] is None


def test_send_metadata(served: Served) -> None:
    proc = tcpmsg("send", served.address, "echo", "1", "--metadata", '{"trace":"abc"}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"data": 1, "metadata": {"trace": "abc"}}


def test_send_unicode_round_trip(served: Served) -> None:
    proc = tcpmsg("send", served.address, "echo", '"é中😀"')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"] == "é中😀"


def test_send_remote_error_is_json_on_stderr(served: Served) -> None:
    proc = tcpmsg("send", served.address, "fail", "7")
    no_traceback(proc)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert json.loads(proc.stderr) == {"status": "error", "message": "nope", "data": 7}


def test_send_no_handler(served: Served) -> None:
    proc = tcpmsg("send", served.address, "missing", "1")
    no_traceback(proc)
    assert proc.returncode == 1
    assert "no matching message handler" in json.loads(proc.stderr)


def test_send_timeout(served: Served) -> None:
    proc = tcpmsg("send", served.address, "slow", "3", "--timeout", "0.3")
    line = one_line_error(proc)
    assert proc.returncode == 4
    assert "0.3" in line


# -- stream and emit ------------------------------------------------------------------


def test_stream_prints_each_value(served: Served) -> None:
    proc = tcpmsg("stream", served.address, "count", "4")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [0, 1, 2, 3]


def test_stream_values_arrive_one_by_one(served: Served) -> None:
    p = subprocess.Popen(
        [sys.executable, "-m", "tcpmsg", "stream", served.address, "count", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert p.stdout is not None
        first = p.stdout.readline()  # printed before the stream ends
        assert json.loads(first) == 0
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err
        assert [json.loads(x) for x in out.splitlines()] == [1, 2]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)


def test_stream_of_a_single_reply(served: Served) -> None:
    proc = tcpmsg("stream", served.address, '{"cmd":"sum"}', "[2,2]")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["4"]


def test_emit_runs_the_event_handler(served: Served) -> None:
    proc = tcpmsg("emit", served.address, "note", '{"n":1}')
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if served.events.exists() and served.events.read_text():
            break
        time.sleep(0.05)
    assert served.events.read_text() == "{'n': 1}\n"


# -- errors as one line ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["send", "stream", "emit"])
def test_connection_refused(command: str) -> None:
    proc = tcpmsg(command, f"127.0.0.1:{free_port()}", "echo", "1")
    line = one_line_error(proc)
    assert proc.returncode == 3
    assert "cannot connect" in line and "refused" in line.lower()


def test_bad_metadata_json(served: Served) -> None:
    proc = tcpmsg("send", served.address, "echo", "1", "--metadata", "{not json")
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert "--metadata" in line


@pytest.mark.parametrize(
    "args",
    [
        ["send"],
        ["send", "127.0.0.1:notaport", "echo"],
        ["send", "127.0.0.1:70000", "echo"],
        ["send", "3000", "echo", "1", "--timeout", "soon"],
        ["frobnicate"],
        [],
        ["serve", "tests.cli.service:router", "--binding", "carrier-pigeon"],
        ["serve", "no_such_module_xyz:router", "--port", "0"],
        ["serve", "tests.cli.service:nothing", "--port", "0"],
        ["serve", "tests.cli.service:os", "--port", "0"],
        ["send", "3000", "echo", "--tls-ca", "/no/such/ca.pem"],
        ["serve", "tests.cli.service", "--port", "0", "--tls-key", "x.pem"],
    ],
)
def test_bad_arguments(args: list[str]) -> None:
    proc = tcpmsg(*args)
    one_line_error(proc) if proc.stderr.startswith("tcpmsg: error") else no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") <= 2, proc.stderr  # usage line + one error line


def test_unsendable_pattern_is_one_line(served: Served) -> None:
    proc = tcpmsg("send", served.address, "true", "1")
    one_line_error(proc)
    assert proc.returncode == 2


@pytest.mark.parametrize("args", [[], ["send"], ["stream"], ["emit"], ["serve"], ["demo"]])
def test_help_everywhere(args: list[str]) -> None:
    proc = tcpmsg(*args, "--help")
    no_traceback(proc)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: tcpmsg")


def test_console_script_entry_point() -> None:
    exe = Path(sys.executable).parent / "tcpmsg"
    if not exe.exists():
        pytest.skip("the tcpmsg console script is not installed (pip install -e .)")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0 and "send" in proc.stdout


# -- serve ------------------------------------------------------------------------------


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = start_serve(tmp_path)
    assert tcpmsg("send", server.address, "echo", "1").returncode == 0
    status = stop(server.proc, signal.SIGTERM)
    assert server.proc.stderr is not None
    err = server.proc.stderr.read()
    assert status == 0, err
    assert "Traceback" not in err
    assert "stopped" in err


def test_serve_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    server = start_serve(tmp_path)
    status = stop(server.proc, signal.SIGINT)
    assert server.proc.stderr is not None
    err = server.proc.stderr.read()
    assert status == 0, err
    assert "Traceback" not in err


def test_serve_logs_connections(tmp_path: Path) -> None:
    server = start_serve(tmp_path)
    tcpmsg("send", server.address, "echo", "1")
    stop(server.proc)
    assert server.proc.stderr is not None
    err = server.proc.stderr.read()
    assert "tcpmsg.server" in err, err


def test_serve_port_in_use(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = tcpmsg("serve", "tests.cli.service:router", "--host", "127.0.0.1", "--port", str(port))
    line = one_line_error(proc)
    assert proc.returncode == 3
    assert str(port) in line


def test_serve_file_path(tmp_path: Path) -> None:
    proc = tcpmsg("serve", str(tmp_path / "missing.py"))
    one_line_error(proc)
    assert proc.returncode == 2


@pytest.mark.parametrize("binding", ["gevent", "anyio", "trio"])
def test_serve_other_bindings(tmp_path: Path, binding: str) -> None:
    module = {"gevent": "tcpmsg_gevent", "anyio": "tcpmsg_anyio", "trio": "tcpmsg_anyio"}[binding]
    code = f"import {module}"
    if binding == "trio":  # anyio 4 needs trio >= 0.25 (the [trio] extra's pin)
        code += "; import trio; assert tuple(map(int, trio.__version__.split('.')[:2])) >= (0, 25)"
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=TIMEOUT, cwd=ROOT)
    if check.returncode != 0:
        pytest.skip(f"{module} (or a recent enough trio) is not importable here")
    server = start_serve(tmp_path, binding=binding)
    try:
        proc = tcpmsg("send", server.address, '{"cmd":"sum"}', "[1,2]")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "3"
        proc = tcpmsg("stream", server.address, "count", "2")
        assert proc.stdout.splitlines() == ["0", "1"], proc.stderr
    finally:
        status = stop(server.proc)
    assert server.proc.stderr is not None
    err = server.proc.stderr.read()
    assert status == 0, err
    assert "Traceback" not in err


# -- TLS --------------------------------------------------------------------------------


def make_cert(tmp_path: Path) -> tuple[Path, Path] | None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        proc = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            capture_output=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (cert, key) if proc.returncode == 0 else None


def test_tls_send(tmp_path: Path) -> None:
    files = make_cert(tmp_path)
    if files is None:
        pytest.skip("openssl is not available")
    cert, key = files
    server = start_serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        proc = tcpmsg("send", server.address, "echo", "1", "--tls-ca", str(cert))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["data"] == 1
        proc = tcpmsg("send", server.address, "echo", "2", "--insecure")
        assert proc.returncode == 0, proc.stderr
        proc = tcpmsg("send", server.address, "echo", "3")  # plain TCP to a TLS server
        no_traceback(proc)
        assert proc.returncode != 0
    finally:
        stop(server.proc)


# -- demo -------------------------------------------------------------------------------


def test_demo() -> None:
    proc = tcpmsg("demo", timeout=60)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "reply: 6" in out
    assert re.search(r'client -> server  \d+#\{"pattern":\{"cmd":"sum"\},"data":\[1,2,3\],"id":', out), out
    assert re.search(r'server -> client  \d+#\{"response":6,"isDisposed":true,"id":', out), out
    assert "stream item: 0" in out and "stream item: 2" in out and "stream ended" in out
    assert re.search(r'client -> server  \d+#\{"pattern":"log","data":"hello"\}', out), out
    assert "event handler for 'log' ran" in out
    assert re.search(r'\d+#\{"err":\{', out), out
    assert "RemoteError, err =" in out
    assert "NoHandlerError" in out


def test_send_stream_emit_against_nestjs(nestjs: str) -> None:
    proc = tcpmsg("send", nestjs, '{"cmd":"sum"}', "[1,2,3]")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 6
    proc = tcpmsg("send", nestjs, "echo", "héllo 😀")
    assert proc.returncode == 0 and json.loads(proc.stdout) == "héllo 😀"
    proc = tcpmsg("stream", nestjs, "stream", '{"count":3,"gap_ms":20}')
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [0, 1, 2]
    assert tcpmsg("emit", nestjs, "note", '{"n":7}').returncode == 0
    for _ in range(50):  # the event travels on its own connection: wait until it is seen
        proc = tcpmsg("send", nestjs, "events.get", "0")
        assert proc.returncode == 0, proc.stderr
        if json.loads(proc.stdout)[-2:] == [["noteA", {"n": 7}], ["noteB", {"n": 7}]]:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"both NestJS event handlers should have seen the event: {proc.stdout}")
    proc = tcpmsg("send", nestjs, "error.object", "0")
    assert proc.returncode == 1
    assert json.loads(proc.stderr.strip().splitlines()[-1].split(" ", 2)[-1]) == {"code": 42, "reason": "bad"}


def test_serve_refuses_a_handler_the_binding_cannot_run(tmp_path: Path) -> None:
    module = tmp_path / "asyncsvc.py"
    module.write_text(
        "from sansio_tcpmsg import Router\n"
        "router = Router()\n"
        "@router.message('add')\n"
        "async def add(data):\n"
        "    return sum(data)\n",
        encoding="utf-8",
    )
    proc = tcpmsg("serve", f"{module}:router", "--binding", "threads", "--port", "0")
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert "async def asyncsvc.add for route 'add' needs tcpmsg_anyio; tcpmsg_threads runs" in line, line
