"""``client.submit`` and ``client.map``: many calls in flight from one thread (threads) or
greenlet (gevent), resolved by the client's reader. The anyio binding has no futures: many
calls in flight there are tasks (``send_many`` in the other tests)."""

from __future__ import annotations

import time

import pytest
from conftest import client_ctx, server_ctx

from sansio_tcpmsg import ConnectionClosedError, RemoteError, RequestTimeout


@pytest.fixture(autouse=True)
def _sync_only(binding):
    if binding.name.startswith("anyio"):
        pytest.skip("anyio: calls in flight are tasks, not futures")


def test_submit_many_from_one_caller(binding, client):
    futures = [client.raw.submit("echo", {"i": i, "pad": "é" * i}) for i in range(300)]
    assert [f.result(10) for f in futures] == [{"i": i, "pad": "é" * i} for i in range(300)]
    assert all(f.done() for f in futures)
    assert futures[0].exception(0) is None


def test_submit_outcomes(binding, client):
    done: list[object] = []
    ok = client.raw.submit("echo", "x")
    ok.add_done_callback(done.append)
    failed = client.raw.submit("boom_dict", None)
    late = client.raw.submit("slow", 5, timeout=0.2)
    assert ok.result(5) == "x"
    with pytest.raises(RemoteError) as info:
        failed.result(5)
    assert info.value.error == {"code": 42, "why": "dict payload"}
    assert isinstance(failed.exception(5), RemoteError)
    t0 = time.monotonic()
    assert isinstance(late.exception(5), RequestTimeout)
    assert time.monotonic() - t0 < 2
    binding.wait_until(lambda: done, timeout=5)
    assert done == [ok]


def test_result_timeout_is_the_waits_own(binding, client):
    """``result(timeout=)`` bounds the wait only: the call goes on and can still succeed."""
    future = client.raw.submit("slow", {"sleep": 0.5, "value": "late"})
    with pytest.raises(TimeoutError):
        future.result(0.05)
    assert not future.done()
    assert future.result(5) == "late"


def test_no_thread_per_call(binding, server_process):
    """64 slow calls in flight from one caller cost no thread or greenlet each."""
    proc = server_process()
    with binding.connect(proc.port, timeout=10) as c:
        assert c.send("echo", 0) == 0
        before = binding.live_count()
        futures = [c.raw.submit("slow", {"sleep": 0.5, "value": i}) for i in range(64)]
        during = binding.live_count()
        assert [f.result(10) for f in futures] == list(range(64))
    assert during - before <= 2, (before, during)


def test_connection_loss_resolves_every_future(binding, server_process):
    proc = server_process()
    with binding.connect(proc.port, timeout=None) as c:
        futures = [c.raw.submit("slow", 30) for _ in range(20)]
        assert c.send("echo", 1) == 1  # the requests are on the wire
        proc.kill()
        for f in futures:
            assert isinstance(f.exception(5), ConnectionClosedError)


def test_lost_connections_leave_no_task_behind(binding, server_process):
    """The reader and the writer task of a connection the server dropped end with it,
    while the client goes on with a new connection."""
    proc = server_process()
    with binding.connect(proc.port, timeout=10) as c:
        futures = [c.raw.submit("echo", i) for i in range(50)]  # starts the writer task
        assert [f.result(10) for f in futures] == list(range(50))
        running = binding.live_count()
        for _ in range(3):
            proc.restart()
            assert binding.wait_until(lambda: c.status.value == "disconnected", timeout=5)
            futures = [c.raw.submit("echo", i) for i in range(50)]
            assert [f.result(10) for f in futures] == list(range(50))
        assert binding.wait_until(lambda: binding.live_count() <= running, timeout=5), (
            binding.live_count(), running)


def test_close_resolves_every_future(binding, server):
    with binding.connect(server.port, timeout=None) as c:
        futures = [c.raw.submit("slow", 30) for _ in range(10)]
        c.close()
        for f in futures:
            assert isinstance(f.exception(5), ConnectionClosedError)


def test_map_in_order_bounded_window(binding, client):
    assert list(client.raw.map("echo", range(500), window=8)) == list(range(500))
    assert list(client.raw.map({"cmd": "sum", "v": 2}, ([i, i] for i in range(100)))) == [2 * i for i in range(100)]
    assert list(client.raw.map("echo", [])) == []
    for window in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="window"):
            client.raw.map("echo", [1], window=window)


def test_map_raises_at_the_failed_call(binding, client):
    got = []
    with pytest.raises(RequestTimeout):
        for value in client.raw.map("slow", [0, 0, 5, 0], timeout=0.3, window=2):
            got.append(value)
    assert got == [0, 0]
    assert client.send("echo", "after") == "after"


def test_submit_beside_blocking_callers(binding, client):
    """Futures from one caller and plain sends from 8 others share the reader."""
    def sender(who: int) -> int:
        for i in range(50):
            assert client.send("echo", [who, i]) == [who, i]
        return who

    senders = [binding.spawn(sender, who) for who in range(8)]
    futures = [client.raw.submit("echo", i) for i in range(400)]
    assert [f.result(20) for f in futures] == list(range(400))
    assert [s.result(20) for s in senders] == list(range(8))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stress_callers_futures_and_timeouts_share_one_client(binding, certs, tls):
    """16 blocking callers and 2 callers each keeping 200 futures in flight share one
    client (over TLS too), 3 rounds: every reply reaches its own caller or future, each
    done callback runs once, calls that time out mid-flight (their replies come later and
    are dropped) raise ``RequestTimeout`` in time and disturb no one, streams run beside
    them. Pins the wake-up paths: callers reading for others (threads) or switched in
    by the reader (gevent), waits with and without a timer of their own, submitted
    calls written by the writer task."""
    server_kw = {"tls": server_ctx(certs)} if tls else {}
    client_kw = {"tls": client_ctx(certs), "server_hostname": "localhost"} if tls else {}
    late = {"sleep": 0.3, "value": "late"}
    with binding.serve(**server_kw) as srv, binding.connect(srv.port, timeout=30, **client_kw) as c:
        for rnd in range(3):
            def caller(who: int, rnd: int = rnd) -> int:
                timed_out = 0
                for i in range(40):
                    if i % 10 == who % 10:
                        t0 = time.monotonic()
                        with pytest.raises(RequestTimeout):
                            c.send("slow", late, timeout=0.05)
                        assert time.monotonic() - t0 < 2.0
                        timed_out += 1
                    elif i % 10 == (who + 5) % 10:
                        assert list(c.stream("count", {"n": 3})) == [0, 1, 2]
                    else:
                        payload = [rnd, who, i, "é" * (i * 7)]
                        assert c.send("echo", payload) == payload
                return timed_out

            def submitter(who: int, rnd: int = rnd) -> int:
                calls: list[object] = []
                futures = []
                for i in range(200):
                    if i % 25 == 0:
                        expected, future = None, c.raw.submit("slow", late, timeout=0.05)
                    else:
                        expected = [rnd, "f", who, i]
                        future = c.raw.submit("echo", expected)
                    future.add_done_callback(calls.append)
                    futures.append((expected, future))
                for expected, future in futures:
                    if expected is None:
                        assert isinstance(future.exception(10), RequestTimeout)
                    else:
                        assert future.result(10) == expected
                assert binding.wait_until(lambda: len(calls) == len(futures), timeout=10)
                assert sorted(map(id, calls)) == sorted(id(f) for _, f in futures)
                return len(futures)

            callers = [binding.spawn(caller, who) for who in range(16)]
            submitters = [binding.spawn(submitter, who) for who in range(2)]
            assert [r.result(120) for r in callers] == [4] * 16
            assert [s.result(120) for s in submitters] == [200, 200]
        assert c.send("echo", "after") == "after"
