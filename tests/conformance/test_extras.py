"""More of the contract: big and non-ASCII payloads, concurrent streams, stream metadata,
logging, serve_forever."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import BINDING_NAME

import sansio_tcpmsg as st


def test_large_non_ascii_payload(client):
    """UTF-16 lengths over many reads: astral characters count 2, BMP ones 1."""
    value = {"s": "😀é中a" * 60_000, "k": ["\u2028", "\ud7ff", "\U0010ffff"]}
    assert client.send("echo", value, timeout=20) == value


def test_many_sizes_in_a_row(client):
    for n in (0, 1, 9, 10, 99, 100, 9_999, 10_000, 123_457):
        assert client.send("blob", n, timeout=10) == "x" * n


def test_stream_metadata(client):
    assert list(client.stream("meta", None, metadata={"m": 1})) == [{"m": 1}]


@pytest.mark.timeout(40)
def test_concurrent_streams_and_sends(client, binding):
    streams = [binding.spawn(lambda k=k: list(client.stream("count", {"n": 10 + k, "gap": 0.005})))
               for k in range(12)]
    sends = [binding.spawn(client.send, "slow", {"sleep": 0.01, "value": k}) for k in range(30)]
    for k, call in enumerate(streams):
        assert call.result(timeout=20) == list(range(10 + k))
    for k, call in enumerate(sends):
        assert call.result(timeout=20) == k


def test_handler_exception_logged_rpc_error_not(client, caplog):
    caplog.set_level(logging.INFO, logger="tcpmsg")
    with pytest.raises(st.RemoteError):
        client.send("boom_other", None)
    with pytest.raises(st.RemoteError):
        client.send("boom_dict", None)
    time.sleep(0.05)
    errors = [r for r in caplog.records if r.name == "tcpmsg.server" and r.levelno >= logging.ERROR]
    assert errors, "a non-RpcError handler exception was not logged at ERROR on tcpmsg.server"
    assert any(r.exc_info for r in errors), "handler exception logged without its traceback"
    assert any("secret details" in (r.getMessage() + str(r.exc_info[1] if r.exc_info else "")) for r in errors)
    assert len(errors) == 1, f"RpcError must not be logged as an error: {[r.getMessage() for r in errors]}"


def test_connections_logged(binding, caplog):
    caplog.set_level(logging.INFO, logger="tcpmsg")
    with binding.serve(grace=1) as srv:
        with binding.connect(srv.port) as c:
            c.send("echo", 1)
        binding.sleep(0.2)
    infos = [r for r in caplog.records if r.name == "tcpmsg.server" and r.levelno == logging.INFO]
    assert len(infos) >= 2, f"expected connection opened/closed at INFO, got {[r.getMessage() for r in infos]}"


def test_serve_forever_returns_after_close(binding):
    if BINDING_NAME == "gevent":
        pytest.skip("the facade serves gevent from a hub of its own; tests/bindings/test_gevent.py serves forever in one hub")
    with binding.serve(grace=1) as srv:
        if BINDING_NAME.startswith("anyio"):
            future = binding.portal.start_task_soon(srv.raw.serve_forever)
            with binding.connect(srv.port) as c:
                assert c.send("echo", 1) == 1
            srv.close(grace=1)
            assert future.result(5) is None
        else:
            call = binding.spawn(srv.raw.serve_forever)
            with binding.connect(srv.port) as c:
                assert c.send("echo", 1) == 1
            assert not call.done()
            srv.close(grace=1)
            assert call.result(timeout=5) is None


def test_anyio_statuses_iterator(binding, server_process):
    """anyio only: ``client.statuses()`` yields every change and ends when the client closes."""
    if not BINDING_NAME.startswith("anyio"):
        pytest.skip("client.statuses() is anyio's")
    proc = server_process()
    with binding.connect(proc.port, timeout=5) as c:
        assert c.send("echo", 1) == 1

        async def collect():
            return [s async for s in c.raw.statuses()]

        future = binding.portal.start_task_soon(collect)
        binding.sleep(0.1)
        proc.kill()
        assert binding.wait_until(lambda: c.status == st.ConnectionStatus.DISCONNECTED, timeout=5)
        proc.start()
        assert c.send("echo", 2) == 2
        c.close()
        got = future.result(5)
    S = st.ConnectionStatus
    assert got == [S.DISCONNECTED, S.RECONNECTING, S.CONNECTED, S.DISCONNECTED], got
