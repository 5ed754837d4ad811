"""NestJS <-> NestJS smoke test of the interop fixtures (tests/interop/nest.py).

Proves the pinned NestJS server (js/server.js) and client driver (js/client.js) work
for every major before they are used against the Python implementation. Skips when
node/npm are missing, unless CI=true (then missing node is a failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nest  # noqa: E402

if not nest.node_available():
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError("CI=true but node/npm are not available for NestJS interop tests")
    pytest.skip("node/npm not available", allow_module_level=True)

NO_HANDLER = "There is no matching message handler defined in the remote service."


@pytest.fixture(scope="module", params=nest.MAJORS, ids=lambda m: f"nest{m}")
def server(request: pytest.FixtureRequest) -> Iterator[nest.NestServer]:
    with nest.NestServer(request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: nest.NestServer) -> Iterator[nest.NestClient]:
    with nest.NestClient(server.major, server.port) as cli:
        yield cli


@pytest.mark.parametrize(
    "pattern,data,expected",
    [
        ("echo", {"a": [1, "é中😀\u2028"]}, [{"a": [1, "é中😀\u2028"]}]),
        ({"cmd": "sum"}, [1, 2, 3], [6]),
        ({"z": "x", "a": {"b": 1}}, 0, ["nested"]),
        (42, 0, ["forty-two"]),
        ("é中😀\u2028", "ü", ["ü"]),
        ("stream", {"count": 3, "gap_ms": 5}, [0, 1, 2]),
        ("stream", {"count": 4}, [0, 1, 2, 3]),
        ("stream.empty", 0, []),
        ("undefined", 0, []),
        ("slow", {"ms": 50}, [{"ms": 50}]),
    ],
)
def test_send(client: nest.NestClient, pattern: Any, data: Any, expected: list[Any]) -> None:
    res = client.request("send", pattern, data)
    assert "error" not in res
    assert res["values"] == expected


@pytest.mark.parametrize(
    "pattern,err",
    [
        ("error.object", {"code": 42, "reason": "bad"}),
        ("error.string", {"status": "error", "message": "text error"}),
        ("error.plain", {"status": "error", "message": "Internal server error"}),
        ("no.such.pattern", NO_HANDLER),
    ],
)
def test_errors(client: nest.NestClient, pattern: str, err: Any) -> None:
    res = client.request("send", pattern, 1)
    assert res["error"] == err
    assert res["values"] == []


def test_big(client: nest.NestClient) -> None:
    res = client.request("send", "big", {"size": 11 * 1024 * 1024}, timeout=30)
    assert res["values"] == ["x" * (11 * 1024 * 1024)]


def test_events(client: nest.NestClient) -> None:
    before = client.request("send", "events.get", 0)["values"][0]
    assert client.request("emit", "note", {"n": 1})["done"] is True
    client.request("emit", {"k": 1, "evt": "obj"}, "o")
    # events have no reply: poll until both are recorded
    deadline = time.monotonic() + 5
    while True:
        after = client.request("send", "events.get", 0)["values"][0]
        if len(after) >= len(before) + 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after[len(before):] == [["noteA", {"n": 1}], ["noteB", {"n": 1}], ["objEvent", "o"]]


def test_metadata(client: nest.NestClient) -> None:
    res = client.request("send", "metadata", 1, metadata={"trace": "abc", "n": 1})
    if client.major >= 12:
        assert res["values"] == [{"trace": "abc", "n": 1}]
    else:
        assert res["values"] == [None]
    assert client.request("send", "metadata", 1)["values"] == [None]


def test_many_in_flight(client: nest.NestClient) -> None:
    cmds: list[dict[str, Any]] = []
    for i in range(50):
        cmds.append({"op": "send", "pattern": "slow", "data": {"ms": 50 - i, "i": i}})
        cmds.append(
            {"op": "send", "pattern": "metadata", "data": {"i": i}, "metadata": {"i": i}}
        )
    results = client.send_many(cmds, timeout=20)
    for i in range(50):
        assert results[2 * i]["values"] == [{"ms": 50 - i, "i": i}]
        assert results[2 * i + 1]["values"] == [{"i": i} if client.major >= 12 else None]


def test_restart_and_reconnect(server: nest.NestServer) -> None:
    """A NestJS client survives a server restart on the same port: the request in
    flight fails with 'Connection closed', the next send reconnects by itself."""
    with nest.NestClient(server.major, server.port) as cli:
        assert cli.request("send", "echo", 1)["values"] == [1]
        tag = cli.submit({"op": "send", "pattern": "slow", "data": {"ms": 5000}})
        time.sleep(0.2)
        old_pid = server.pid
        server.restart()
        assert server.pid != old_pid
        res = cli.wait([tag], timeout=10)[tag]
        assert res["error"] == {"$error": "Error", "message": "Connection closed"}
        assert cli.request("send", "echo", 2)["values"] == [2]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI missing")
@pytest.mark.parametrize("major", nest.MAJORS, ids=lambda m: f"nest{m}")
def test_mutual_tls(major: int, tmp_path: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=test-ca")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", "/CN=localhost")
        (tmp_path / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "ext.cnf")
    srv_tls = {"cert": tmp_path / "server.pem", "key": tmp_path / "server.key",
               "ca": tmp_path / "ca.pem"}
    cli_tls = {"cert": tmp_path / "client.pem", "key": tmp_path / "client.key",
               "ca": tmp_path / "ca.pem"}
    with nest.NestServer(major, tls=srv_tls) as srv:
        with nest.NestClient(major, srv.port, tls=cli_tls) as cli:
            assert cli.request("send", "echo", "tls")["values"] == ["tls"]
            assert cli.request("send", "stream", {"count": 2})["values"] == [0, 1]
