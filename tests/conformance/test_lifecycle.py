"""Connection lifecycle: status, close, reconnect, retries, killed servers, graceful close."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import BINDING_NAME, free_port

import sansio_tcpmsg as st
from sansio_tcpmsg import ConnectionStatus as S

CONNECTED, DISCONNECTED, RECONNECTING = S.CONNECTED, S.DISCONNECTED, S.RECONNECTING


def test_status_connected_then_disconnected_on_close(binding, server):
    with binding.connect(server.port) as c:
        assert c.status == CONNECTED
        assert c.statuses == [CONNECTED]
    assert c.status == DISCONNECTED
    assert c.statuses == [CONNECTED, DISCONNECTED]


def test_close_fails_pending_calls_at_once(binding, server):
    with binding.connect(server.port, timeout=None) as c:
        calls = [binding.spawn(c.send, "slow", 5) for _ in range(3)]
        stream_call = binding.spawn(lambda: list(c.stream("count", {"n": 50, "gap": 0.2})))
        binding.sleep(0.3)
        t0 = time.monotonic()
        c.close()
        for call in [*calls, stream_call]:
            with pytest.raises(st.ConnectionClosedError):
                call.result(timeout=3)
        assert time.monotonic() - t0 < 1.0


def test_server_close_fails_pending_when_grace_runs_out(binding):
    with binding.serve() as s:
        with binding.connect(s.port, timeout=None) as c:
            call = binding.spawn(c.send, "slow", 5)
            binding.sleep(0.3)
            t0 = time.monotonic()
            s.close(grace=0.3)
            with pytest.raises(st.ConnectionClosedError):
                call.result(timeout=5)
            assert time.monotonic() - t0 < 2.5


def test_graceful_close_lets_inflight_finish_then_frees_port(binding):
    with binding.serve() as s:
        port = s.port
        with binding.connect(port, timeout=10) as c:
            assert c.send("echo", 0) == 0
            call = binding.spawn(c.send, "slow", {"sleep": 0.6, "value": "done"})
            stream_call = binding.spawn(lambda: list(c.stream("count", {"n": 4, "gap": 0.1})))
            binding.sleep(0.2)
            t0 = time.monotonic()
            s.close(grace=5)
            closed_after = time.monotonic() - t0
            assert call.result(timeout=5) == "done"
            assert stream_call.result(timeout=5) == [0, 1, 2, 3]
            assert closed_after < 3, f"close waited {closed_after:.2f} s for a 0.6 s request"
            # then connections are closed: the client sees it
            assert binding.wait_until(lambda: c.status == DISCONNECTED, timeout=3), c.statuses
        # the port is free: nothing accepts, and a new listener can bind it
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
            probe.listen()


def test_server_close_twice_and_exit(binding):
    with binding.serve() as s:
        with binding.connect(s.port) as c:
            assert c.send("echo", 1) == 1
        s.close(grace=1)
        s.close(grace=1)  # closing again is harmless; leaving the block too


def test_client_close_twice(binding, server):
    with binding.connect(server.port) as c:
        assert c.send("echo", 1) == 1
        c.close()
        c.close()


def test_nothing_left_running(binding):
    if BINDING_NAME.startswith("anyio"):
        binding.sleep(0)  # tasks are counted in the portal's loop
    # settle previous tests' leftovers first
    baseline = binding.live_count()
    with binding.serve() as s:
        with binding.connect(s.port) as c:
            assert c.send("echo", 1) == 1
            assert list(c.stream("count", {"n": 3, "gap": 0.01})) == [0, 1, 2]
            c.emit("evt", ["leftover", 1])
            c.send_many([("slow", 0.05)] * 20)
            call = binding.spawn(c.send, "slow", 0.2)
            assert call.result(timeout=5) == 0.2
            if hasattr(call, "thread"):
                call.thread.join(2)
        s.close(grace=2)
    left = binding.wait_until(lambda: binding.live_count() <= baseline, timeout=5)
    import threading as _t

    assert left, f"{binding.live_count()} running vs {baseline} before: {[t.name for t in _t.enumerate()]}"


# --- out-of-process servers: killed, restarted -----------------------------------------


def test_reconnect_after_server_restart(binding, server_process):
    proc = server_process()
    with binding.connect(proc.port, timeout=5) as c:
        assert c.send("echo", 1) == 1
        proc.kill()
        assert binding.wait_until(lambda: c.status == DISCONNECTED, timeout=5), c.statuses
        proc.start()  # same port
        assert c.send("echo", 2) == 2
        assert c.status == CONNECTED
        i = c.statuses.index(DISCONNECTED)
        assert c.statuses[:i + 1] == [CONNECTED, DISCONNECTED]
        assert c.statuses[i + 1:] == [RECONNECTING, CONNECTED], c.statuses


def test_call_while_server_down_raises_oserror_then_recovers(binding, server_process):
    proc = server_process()
    with binding.connect(proc.port, timeout=5) as c:
        assert c.send("echo", 1) == 1
        proc.kill()
        binding.wait_until(lambda: c.status == DISCONNECTED, timeout=5)
        with pytest.raises(OSError):
            c.send("echo", 2)
        proc.start()
        assert c.send("echo", 3) == 3


def test_server_killed_mid_request_fails_pending(binding, server_process):
    proc = server_process()
    with binding.connect(proc.port, timeout=None) as c:
        assert c.send("echo", 1) == 1
        call = binding.spawn(c.send, "slow", 10)
        stream_call = binding.spawn(lambda: list(c.stream("count", {"n": 100, "gap": 0.1})))
        binding.sleep(0.4)
        t0 = time.monotonic()
        proc.kill()
        with pytest.raises(st.ConnectionClosedError):
            call.result(timeout=5)
        with pytest.raises(st.ConnectionClosedError):
            stream_call.result(timeout=5)
        assert time.monotonic() - t0 < 2
        proc.start()
        assert c.send("echo", "back") == "back"


def test_connect_retries_with_backoff_until_server_starts(binding, server_process):
    port = free_port()
    box = {}

    def start_later():
        time.sleep(0.4)
        try:
            box["proc"] = server_process(port=port)
        except BaseException as exc:  # surfaced below
            box["error"] = exc

    starter = threading.Thread(target=start_later, daemon=True)
    t0 = time.monotonic()

    def connect_and_send():
        with binding.connect(port, retries=10, retry_delay=0.05, timeout=5) as c:
            return c.send("echo", "late server"), time.monotonic() - t0, list(c.statuses)

    starter.start()
    call = binding.spawn(connect_and_send)
    value, elapsed, statuses = call.result(timeout=20)
    starter.join(10)
    assert "error" not in box, box.get("error")
    assert value == "late server"
    assert elapsed < 8
    assert statuses[-1] == CONNECTED


def test_connect_retries_give_up_with_oserror_after_backoff(binding):
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(OSError):
        with binding.connect(port, retries=3, retry_delay=0.1):
            pass
    elapsed = time.monotonic() - t0
    # 3 retries after 0.1, 0.2, 0.4 s: about 0.7 s of backoff
    assert 0.55 <= elapsed < 3, elapsed


def test_close_from_another_task_or_thread(binding, server):
    """A client shared by many tasks may be closed by any of them (a shutdown handler)."""
    with binding.connect(server.port, timeout=None) as c:
        call = binding.spawn(c.send, "slow", 5)
        binding.sleep(0.3)
        c.close_elsewhere()
        with pytest.raises(st.ConnectionClosedError):
            call.result(timeout=3)
        assert c.status == DISCONNECTED


def _progress(c, token):
    recs = c.send("events_seen", token)
    return [r for r in recs if r[0] == "item"], [r for r in recs if r[0] == "closed"]


def test_client_gone_stops_streaming_handler(binding, server):
    """A streaming handler whose client disconnected is stopped (its generator closed)."""
    import uuid

    token = uuid.uuid4().hex
    with binding.connect(server.port) as c:
        it = c.stream("tracked", [token, 1000], timeout=20)
        assert [next(it) for _ in range(3)] == [0, 1, 2]
    with binding.connect(server.port) as watcher:
        binding.sleep(0.3)
        items1, _ = _progress(watcher, token)
        binding.sleep(0.5)
        items2, closed = _progress(watcher, token)
        assert len(items2) == len(items1) < 200, f"handler still streaming to a closed connection ({len(items2)} items)"
        assert binding.wait_until(lambda: _progress(watcher, token)[1], timeout=3), "the generator was never closed"
    if hasattr(it, "close"):
        it.close()


def test_server_close_stops_endless_stream(binding):
    import uuid

    token = uuid.uuid4().hex
    with binding.serve(grace=0.3) as srv:
        with binding.connect(srv.port, timeout=None) as c:
            call = binding.spawn(lambda: list(c.stream("tracked", [token, 100000])))
            binding.sleep(0.2)
            t0 = time.monotonic()
            srv.close(grace=0.3)
            assert time.monotonic() - t0 < 3
            with pytest.raises(st.ConnectionClosedError):
                call.result(timeout=5)
