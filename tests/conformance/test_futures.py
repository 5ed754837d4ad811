"""``client.submit`` and ``client.map``: many calls in flight from one thread (threads) or
greenlet (gevent), resolved by the client's reader. The anyio binding has no futures: many
calls in flight there are tasks (``send_many`` in the other tests)."""

from __future__ import annotations

import time

import pytest

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
