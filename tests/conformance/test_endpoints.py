"""Many endpoints, pools and failover, for real: server processes killed by pid.

Three out-of-process servers answer ``whoami`` with their own name; a pooled client
(``connect(endpoints=[...])``) spreads calls over them, fails over when one is killed and
sends to it again once it is back. Names resolving to several loopback addresses go
through the client's ``resolver`` seam (no /etc/hosts).
"""

from __future__ import annotations

import collections
import socket
import time

import pytest
from conftest import client_ctx, free_port, server_ctx
from facade import HOST

import sansio_tcpmsg as st
from sansio_tcpmsg import EndpointState

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _pooled(binding):
    if not hasattr(binding.mod, "PooledClient"):
        pytest.skip(f"{binding.name} has no pooled client yet")

UP, DOWN, REMOVED = EndpointState.UP, EndpointState.DOWN, EndpointState.REMOVED


def three(server_process, hosts=(HOST, HOST, HOST), port=0):
    return {name: server_process(extra=["--name", name, "--host", host], port=port)
            for name, host in zip("abc", hosts, strict=True)}


def states(c):
    return {e.port if len({x.host for x in c.endpoints}) == 1 else e.host: e.state for e in c.endpoints}


def spread(c, n, **kw):
    return collections.Counter(c.send("whoami", None, **kw) for _ in range(n))


def test_calls_spread_evenly_over_three_servers(binding, server_process):
    procs = three(server_process)
    endpoints = [(HOST, p.port) for p in procs.values()]
    with binding.connect(None, endpoints=endpoints, timeout=10) as c:
        assert binding.wait_until(lambda: all(e.state is UP for e in c.endpoints), timeout=10), c.endpoints
        hits = spread(c, 300)
        assert set(hits) == {"a", "b", "c"}
        assert all(80 <= n <= 120 for n in hits.values()), hits
        assert [e.pending for e in c.endpoints] == [0, 0, 0]
        assert {e.state for e in c.statuses} >= {UP}
        assert c.status == st.ConnectionStatus.CONNECTED
    assert c.status == st.ConnectionStatus.DISCONNECTED


def test_sigkill_one_fails_only_its_calls_then_it_comes_back(binding, server_process):
    procs = three(server_process)
    b = procs["b"]
    endpoints = [(HOST, p.port) for p in procs.values()]
    with binding.connect(None, endpoints=endpoints, timeout=20, retry_delay=0.2, backoff_max=1.0) as c:
        assert binding.wait_until(lambda: all(e.state is UP for e in c.endpoints), timeout=10), c.endpoints
        # one batch after the other: round robin puts 2 of each batch's 6 on b
        plain = binding.spawn(c.send_many, [("whoami", 2.0)] * 6)
        assert binding.wait_until(lambda: sum(e.pending for e in c.endpoints) == 6, timeout=10), c.endpoints
        again = binding.spawn(c.send_many, [("whoami", 2.0, {"idempotent": True})] * 6)
        assert binding.wait_until(lambda: sum(e.pending for e in c.endpoints) == 12, timeout=10), c.endpoints
        assert [e.pending for e in c.endpoints] == [4, 4, 4], c.endpoints
        b.kill()
        # in flight on b: ConnectionClosedError, or re-sent elsewhere once when idempotent
        outcomes = plain.result(30)
        failed = [v for v in outcomes if isinstance(v, Exception)]
        assert failed and all(isinstance(v, st.ConnectionClosedError) for v in failed), outcomes
        assert {v for v in outcomes if not isinstance(v, Exception)} <= {"a", "c"}, outcomes
        assert len(failed) == 2, outcomes
        outcomes = again.result(30)
        assert not any(isinstance(v, Exception) for v in outcomes), outcomes
        assert collections.Counter(outcomes)["b"] == 0, outcomes
        # once noticed: every call succeeds, on a and c only
        assert binding.wait_until(lambda: states(c)[b.port] is DOWN, timeout=10), c.endpoints
        hits = spread(c, 150)
        assert set(hits) == {"a", "c"} and sum(hits.values()) == 150, hits
        # back on the same port: traffic again within the backoff (capped at 1 s here)
        b.start(b.port)
        t0 = time.monotonic()
        assert binding.wait_until(lambda: states(c)[b.port] is UP, timeout=10), c.endpoints
        assert time.monotonic() - t0 < 5.0
        hits = spread(c, 30)
        assert hits["b"] == 10, hits


def test_a_name_with_several_addresses_is_several_endpoints_re_resolved(binding, server_process):
    port = free_port()
    try:
        procs = three(server_process, hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3"), port=port)
    except RuntimeError as exc:
        pytest.skip(f"cannot serve on 127.0.0.2/127.0.0.3 here: {exc}")
    answers = {"svc.test": ["127.0.0.1", "127.0.0.2", "127.0.0.3"]}
    asked = []

    def resolver(host, port):
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(f"{host} does not resolve here")
        return list(answers[host])

    with binding.connect(None, endpoints=[("svc.test", port)], resolver=resolver,
                         resolve_interval=0.3, timeout=10) as c:
        assert binding.wait_until(lambda: len(c.endpoints) == 3 and all(e.state is UP for e in c.endpoints),
                                  timeout=10), c.endpoints
        assert {e.name for e in c.endpoints} == {"svc.test"}
        assert set(spread(c, 30).values()) == {10}
        answers["svc.test"] = ["127.0.0.1", "127.0.0.3"]  # a pod went away
        assert binding.wait_until(lambda: "127.0.0.2" not in states(c), timeout=10), c.endpoints
        assert binding.wait_until(lambda: REMOVED in {e.state for e in c.statuses}, timeout=5), c.statuses
        hits = spread(c, 30)
        assert hits == {"a": 15, "c": 15}, hits
        assert len(asked) >= 2
    del procs


def test_host_with_pool_options_is_resolved_too(binding, server):
    with binding.connect(server.port, pool_size=3, timeout=10) as c:
        assert binding.wait_until(lambda: c.endpoints and c.endpoints[0].connections == 3, timeout=10), c.endpoints
        assert [(e.host, e.port, e.state) for e in c.endpoints] == [(HOST, server.port, UP)]
        assert c.send("whoami", None) == "in-process"
        assert list(c.stream("count", {"n": 3})) == [0, 1, 2]
        c.emit("evt", "pooled")


def peers(c, n):
    return collections.Counter(tuple(c.send({"cmd": "ctx"}, None)["peer"]) for _ in range(n))


def test_least_pending_sends_to_the_idle_connection(binding, server):
    with binding.connect(server.port, pool_size=2, balance="least_pending", timeout=10) as c:
        assert binding.wait_until(lambda: c.endpoints[0].connections == 2, timeout=10), c.endpoints
        slow = binding.spawn(c.send, "whoami", 2.0)
        assert binding.wait_until(lambda: c.endpoints[0].pending == 1, timeout=5)
        during = peers(c, 20)
        assert len(during) == 1, during  # all on the connection without the slow call
        assert slow.result(10) == "in-process"
        after = peers(c, 20)
        assert len(after) == 2 and set(after.values()) == {10}, after  # both idle: in turn
    with binding.connect(server.port, pool_size=2, timeout=10) as c:  # round robin
        assert binding.wait_until(lambda: c.endpoints[0].connections == 2, timeout=10), c.endpoints
        slow = binding.spawn(c.send, "whoami", 1.0)
        assert binding.wait_until(lambda: c.endpoints[0].pending == 1, timeout=5)
        assert set(peers(c, 20).values()) == {10}
        assert slow.result(10) == "in-process"


def test_old_connections_retire_after_their_calls(binding, server):
    with binding.connect(server.port, max_connection_age=0.5, timeout=10) as c:
        slow = binding.spawn(c.send, "whoami", 1.5)
        assert binding.wait_until(lambda: c.endpoints[0].connections == 2, timeout=5), c.endpoints
        assert c.send("echo", 1) == 1  # on the fresh connection
        assert slow.result(10) == "in-process"
        assert binding.wait_until(lambda: c.endpoints[0].connections == 1, timeout=5), c.endpoints
        assert c.send("echo", 2) == 2


def test_every_endpoint_down_is_an_error_naming_them(binding):
    ports = [free_port(), free_port()]
    with pytest.raises(st.ConnectionClosedError) as info:
        with binding.connect(None, endpoints=[(HOST, p) for p in ports], connect_timeout=5):
            pass
    assert all(f"{HOST}:{p}" in str(info.value) for p in ports), info.value
    # nothing keeps trying in the background; connect() again starts over
    c = binding.client(None, endpoints=[(HOST, p) for p in ports], connect_timeout=5)
    for _ in range(2):
        with pytest.raises(st.ConnectionClosedError):
            c.connect()
    with binding.serve(port=ports[1]) as server:
        c.connect()
        assert c.send("whoami", None) == "in-process"
        # each endpoint's first attempt runs in a background task: under load the
        # refused one may end after the live one has answered (gevent resolves in a thread)
        assert binding.wait_until(lambda: [e.state for e in c.endpoints] == [DOWN, UP], timeout=10), c.endpoints
        c.close()
    del server


def test_host_and_endpoints_together_is_a_type_error(binding):
    with pytest.raises(TypeError, match="endpoints"):
        with binding.connect(3000, endpoints=[(HOST, 3000)]):
            pass


@pytest.mark.parametrize("bad", [[], [("h", "x")], "h:1"])
def test_bad_endpoints_are_named(binding, bad):
    with pytest.raises(ValueError, match="endpoints"):
        with binding.connect(None, endpoints=bad):
            pass


def test_idempotent_calls_survive_a_kill_even_before_it_is_noticed(binding, server_process):
    procs = three(server_process)
    endpoints = [(HOST, p.port) for p in procs.values()]
    with binding.connect(None, endpoints=endpoints, pool_size=2, timeout=20, backoff_max=1.0) as c:
        assert binding.wait_until(lambda: all(e.connections == 2 for e in c.endpoints), timeout=10), c.endpoints
        procs["c"].kill()
        hits = spread(c, 60, idempotent=True)  # some are sent to c's dead connections first
        assert sum(hits.values()) == 60 and hits["c"] == 0, hits
        assert binding.wait_until(lambda: states(c)[procs["c"].port] is DOWN, timeout=10), c.endpoints


def test_submit_and_map_spread_over_the_pool(binding, server_process):
    if not hasattr(binding.mod.PooledClient, "submit"):
        pytest.skip("submit() and map() are the sync bindings'")
    procs = three(server_process)
    with binding.connect(None, endpoints=[(HOST, p.port) for p in procs.values()], timeout=10) as c:
        assert binding.wait_until(lambda: all(e.state is UP for e in c.endpoints), timeout=10), c.endpoints
        futures = [c.raw.submit("whoami", 0.05) for _ in range(30)]
        hits = collections.Counter(f.result(10) for f in futures)
        assert hits == {"a": 10, "b": 10, "c": 10}, hits
        assert list(c.raw.map("echo", range(40), window=8)) == list(range(40))
        assert binding.wait_until(lambda: all(e.pending == 0 for e in c.endpoints), timeout=5), c.endpoints
        with pytest.raises(ValueError, match="window"):
            c.raw.map("echo", [1], window=0)


def test_names_resolved_by_default_and_tls_checks_the_name(binding, certs):
    with binding.serve(tls=server_ctx(certs)) as srv:
        # getaddrinfo("localhost"): each address an endpoint; the certificate names "localhost"
        with binding.connect(None, endpoints=[("localhost", srv.port)], tls=client_ctx(certs),
                             timeout=10) as c:
            assert c.send("whoami", None) == "in-process"
            assert {e.name for e in c.endpoints} == {"localhost"}
            assert "127.0.0.1" in {e.host for e in c.endpoints}, c.endpoints

        def resolver(host, port):
            return ["127.0.0.1"]

        # a name the certificate does not carry is refused ...
        with pytest.raises(OSError, match="127.0.0.1"):
            with binding.connect(None, endpoints=[("svc.test", srv.port)], resolver=resolver,
                                 tls=client_ctx(certs), connect_timeout=5):
                pass
        # ... unless server_hostname says which name to check
        with binding.connect(None, endpoints=[("svc.test", srv.port)], resolver=resolver,
                             tls=client_ctx(certs), server_hostname="localhost", timeout=10) as c:
            assert c.send("echo", 1) == 1
