"""Fixtures for the conformance suite: one binding per session, chosen by TCPMSG_BINDING.

    TCPMSG_BINDING=threads|gevent|anyio-asyncio|anyio-trio python -m pytest tests/conformance
"""

from __future__ import annotations

import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the suite's modules; tests/facade.py
import conformance_router  # noqa: E402
import facade  # noqa: E402
from facade import HOST  # noqa: E402

BINDING_NAME = os.environ.get("TCPMSG_BINDING", "threads")
DEFAULT_TIMEOUT = 30


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


def pytest_report_header(config):
    return f"tcpmsg conformance binding: {BINDING_NAME}"


def make_binding(name: str) -> facade.Binding:
    """The facade of binding ``name``, serving the suite's router unless told otherwise."""
    return facade.make_binding(name, router=lambda _: conformance_router.build_router())


@pytest.fixture(scope="session")
def binding():
    if BINDING_NAME not in facade.BINDINGS:
        raise pytest.UsageError(f"TCPMSG_BINDING must be one of {facade.BINDINGS}")
    why = facade.available(BINDING_NAME)
    if why:
        pytest.skip(why)
    b = make_binding(BINDING_NAME)
    yield b
    b.shutdown()


@pytest.fixture
def server(binding):
    with binding.serve(grace=1.0) as s:
        yield s


@pytest.fixture
def client(binding, server):
    with binding.connect(server.port) as c:
        yield c


# ---------------------------------------------------------------------------------------
# out-of-process servers


class ServerProcess:
    def __init__(self, name: str, port: int = 0, extra: list[str] | None = None, stderr_path: Path | None = None):
        self.name = name
        self.extra = extra or []
        self.stderr_path = stderr_path
        self.proc: subprocess.Popen | None = None
        self.port = port
        self.start(port)

    def start(self, port: int | None = None) -> None:
        port = self.port if port is None else port
        env = dict(os.environ, PYTHONPATH=facade.pythonpath(HERE))
        err = open(self.stderr_path, "ab") if self.stderr_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(HERE / "serve_router.py"), "--binding", self.name, "--port", str(port), *self.extra],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
        if err is not subprocess.DEVNULL:
            err.close()
        deadline = time.monotonic() + 15
        line = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                ch = os.read(fd, 1)
                if not ch:
                    break
                line += ch
                if ch == b"\n":
                    break
            elif self.proc.poll() is not None:
                break
        if not line.startswith(b"PORT "):
            self.kill()
            detail = self.stderr_path.read_text(errors="replace")[-2000:] if self.stderr_path else ""
            raise RuntimeError(f"{self.name} server process did not start (got {line!r}) {detail}")
        self.port = int(line.split()[1])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def restart(self) -> None:
        self.kill()
        self.start(self.port)


@pytest.fixture
def server_process(tmp_path):
    """Factory: ``server_process(binding_name, port=0, extra=[...])`` -> ServerProcess."""
    started: list[ServerProcess] = []

    def make(name: str = BINDING_NAME, port: int = 0, extra: list[str] | None = None) -> ServerProcess:
        why = facade.available(name)
        if why:
            pytest.skip(why)
        p = ServerProcess(name, port, extra, tmp_path / f"server-{name}-{len(started)}.log")
        started.append(p)
        return p

    yield make
    for p in started:
        p.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# TLS material made by the test itself (``cryptography``)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    from certificates import CA, ExtendedKeyUsageOID, cert_pem, key_pem
    from cryptography import x509

    d = tmp_path_factory.mktemp("certs")

    def write(stem: str, cert, key) -> None:
        (d / f"{stem}.pem").write_bytes(cert_pem(cert))
        (d / f"{stem}.key").write_bytes(key_pem(key))

    ca = CA("tcpmsg conformance CA")
    write("ca", ca.cert, ca.key)
    # The server certificate names "localhost" only: 127.0.0.1 must be reached by that name.
    write("server", *ca.issue("localhost", [ExtendedKeyUsageOID.SERVER_AUTH], [x509.DNSName("localhost")]))
    write("client", *ca.issue("conformance client", [ExtendedKeyUsageOID.CLIENT_AUTH]))
    other = CA("some other CA")
    write("otherca", other.cert, other.key)
    write("intruder", *other.issue("intruder", [ExtendedKeyUsageOID.CLIENT_AUTH]))
    return d


def server_ctx(certs: Path, mtls: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
    if mtls:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs / "ca.pem")
    return ctx


def client_ctx(certs: Path, cert: str | None = None, ca: str = "ca") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / f"{ca}.pem"))
    if cert:
        ctx.load_cert_chain(certs / f"{cert}.pem", certs / f"{cert}.key")
    return ctx


@pytest.fixture(autouse=True)
def _revive_binding(request):
    if "binding" in request.fixturenames:
        request.getfixturevalue("binding").revive()
    yield
