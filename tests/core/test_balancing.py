"""The balancer: endpoints, pools, round robin / least pending, backoff, age, names."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from sansio_tcpmsg import ConnectionStatus
from sansio_tcpmsg.balancing import (
    Balancer,
    Close,
    Connect,
    EndpointChanged,
    EndpointState,
    PooledConnection,
    Resolve,
    Strategy,
    may_resend,
    parse_endpoints,
    pool_options,
    pool_targets,
)
from sansio_tcpmsg.errors import LocalProtocolError

A, B, C = ("10.0.0.1", 3000), ("10.0.0.2", 3000), ("10.0.0.3", 3000)


def connects(b: Balancer) -> list[PooledConnection]:
    return [a.conn for a in b.actions() if isinstance(a, Connect)]


def up(endpoints: list[tuple[str, int]], now: float = 0.0, **kw: Any) -> tuple[Balancer, list[PooledConnection]]:
    b = Balancer(endpoints, now=now, **kw)
    conns = connects(b)
    for c in conns:
        b.connected(c, now)
    b.actions()
    return b, conns


def states(b: Balancer) -> dict[str, EndpointState]:
    return {e.host: e.state for e in b.endpoints}


def test_one_connect_per_endpoint_and_slot_then_up() -> None:
    b = Balancer([A, B], now=0.0, pool_size=2)
    actions = b.actions()
    conns = [a.conn for a in actions if isinstance(a, Connect)]
    assert [(c.host, c.port) for c in conns] == [A, A, B, B]
    assert [a.endpoint.state for a in actions if isinstance(a, EndpointChanged)] == [EndpointState.CONNECTING] * 2
    assert not b.has_live and b.pick(0.0) is None and b.unavailable() is None
    b.connected(conns[0], 1.0)
    [changed] = b.actions()
    assert isinstance(changed, EndpointChanged) and changed.endpoint.state is EndpointState.UP
    assert changed.endpoint.name == "10.0.0.1" and changed.endpoint.connections == 1
    assert b.has_live and conns[0].live and not conns[1].live
    assert "10.0.0.1:3000 connecting" in repr(conns[1]) or "connecting" in repr(conns[1])
    assert conns[0].name == "10.0.0.1"


def test_round_robin_spreads_evenly() -> None:
    b, conns = up([A, B, C])
    hits = Counter()
    for _ in range(300):
        c = b.pick(0.0)
        assert c is not None
        hits[c.host] += 1
        b.release(c)
    assert set(hits.values()) == {100}


def test_least_pending_prefers_the_idle_connection() -> None:
    b, conns = up([A, B, C], strategy="least_pending")
    assert b.strategy is Strategy.LEAST_PENDING
    first = b.pick(0.0)
    second = b.pick(0.0)
    third = b.pick(0.0)
    assert {first, second, third} == set(conns)
    b.release(second)  # type: ignore[arg-type]
    assert b.pick(0.0) is second
    assert [e.pending for e in b.endpoints] == [1, 1, 1]


def test_avoid_skips_the_failed_connection_unless_it_is_the_only_one() -> None:
    b, conns = up([A, B])
    assert b.pick(0.0, avoid=conns[0]) is conns[1]
    assert b.pick(0.0, avoid=conns[1]) is conns[0]
    single, [only] = up([A])
    assert single.pick(0.0, avoid=only) is only
    pooled, conns = up([A, B], pool_size=2)
    a1, a2, b1, b2 = conns
    for _ in range(4):  # whichever comes next, a call that failed on A goes to B
        assert pooled.pick(0.0, avoid=a1) in (b1, b2)
    pooled.lost(b1, 0.0)
    pooled.lost(b2, 0.0)
    for _ in range(2):  # no other endpoint: another connection of A
        assert pooled.pick(0.0, avoid=a1) is a2


def test_refused_endpoint_backs_off_exponentially_capped_and_comes_back() -> None:
    b = Balancer([A, B], now=0.0, backoff=1.0, backoff_max=3.0)
    ca, cb = connects(b)
    b.connected(cb, 0.0)
    b.connect_failed(ca, 0.0, "ConnectionRefusedError")
    assert states(b) == {"10.0.0.1": EndpointState.DOWN, "10.0.0.2": EndpointState.UP}
    assert b.get_timer() == 1.0
    b.handle_timer(0.5)
    assert [a for a in b.actions() if isinstance(a, Connect)] == []
    delays = []
    now = 0.0
    for _ in range(4):
        timer = b.get_timer()
        assert timer is not None
        delays.append(timer - now)
        now = timer
        b.handle_timer(now)
        [conn] = connects(b)
        b.connect_failed(conn, now, "refused")
    assert delays == [1.0, 2.0, 3.0, 3.0]
    b.handle_timer(b.get_timer())  # type: ignore[arg-type]
    [conn] = connects(b)
    b.connected(conn, now + 3)
    assert states(b)["10.0.0.1"] is EndpointState.UP
    assert b.get_timer() is None


def test_connect_failed_twice_or_for_a_live_connection_is_ignored() -> None:
    b, [conn] = up([A])
    b.connect_failed(conn, 0.0, "late")
    assert conn.live and b.actions() == []
    b.connected(conn, 0.0)  # already live
    assert b.actions() == [Close(conn)] or conn.live


def test_drop_takes_endpoint_out_and_calls_go_to_the_others() -> None:
    b, (ca, cb, cc) = up([A, B, C], backoff=0.5)
    b.lost(cb, 2.0, "EOF")
    b.lost(cb, 2.0)  # idempotent
    [changed] = b.actions()
    assert isinstance(changed, EndpointChanged)
    assert changed.endpoint.state is EndpointState.DOWN and changed.endpoint.host == "10.0.0.2"
    hosts = set()
    for _ in range(10):
        c = b.pick(2.0)
        assert c is not None
        hosts.add(c.host)
        b.release(c)
    assert hosts == {"10.0.0.1", "10.0.0.3"}
    assert b.get_timer() == 2.5
    b.handle_timer(2.5)
    [again] = connects(b)
    assert again.host == "10.0.0.2"


def test_a_drop_in_a_pool_keeps_the_endpoint_up_with_its_other_connection() -> None:
    b, (c1, c2) = up([A], pool_size=2)
    b.lost(c1, 1.0)
    assert states(b) == {"10.0.0.1": EndpointState.UP}
    assert b.pick(1.0) is c2


def test_unavailable_names_every_failed_endpoint() -> None:
    b = Balancer([A, B], now=0.0)
    ca, cb = connects(b)
    b.connect_failed(ca, 0.0, "refused")
    assert b.unavailable() is None  # B still on its first attempt
    b.connect_failed(cb, 0.0, "timed out")
    assert b.unavailable() == "no endpoint is available: 10.0.0.1:3000 (refused), 10.0.0.2:3000 (timed out)"


def test_max_connection_age_retires_and_replaces() -> None:
    b, [old] = up([A], now=0.0, max_connection_age=10.0)
    assert b.get_timer() == 10.0
    call = b.pick(5.0)
    assert call is old
    b.handle_timer(10.0)
    [new] = connects(b)
    assert not old.live and b.pick(10.0) is None  # the old one takes no new call
    b.connected(new, 10.5)
    assert b.pick(11.0) is new
    b.release(new)
    assert [e.connections for e in b.endpoints] == [2]
    b.release(old)
    assert Close(old) in b.actions()
    assert [e.connections for e in b.endpoints] == [1]
    assert b.get_timer() == 20.5


def test_idle_old_connection_closes_at_once_and_its_loss_is_quiet() -> None:
    b, [old] = up([A], max_connection_age=1.0)
    b.handle_timer(1.0)
    actions = b.actions()
    assert Close(old) in actions and any(isinstance(a, Connect) for a in actions)
    b.lost(old, 1.0)
    assert b.actions() == []


def test_retiring_connection_lost_before_its_calls_end() -> None:
    b, [old] = up([A], max_connection_age=1.0)
    b.pick(0.5)
    b.handle_timer(1.0)
    [new] = connects(b)
    b.lost(old, 1.1)
    assert states(b) == {"10.0.0.1": EndpointState.CONNECTING}
    b.connected(new, 1.2)
    assert b.pick(1.2) is new


def test_names_are_resolved_now_and_every_interval() -> None:
    b = Balancer([("svc", 3000), A], now=0.0, resolve_interval=30.0)
    actions = b.actions()
    assert Resolve("svc", 3000) in actions
    assert b.unavailable() is None
    b.resolved("svc", 3000, ["10.1.0.1", "10.1.0.2", "10.1.0.1"], 0.1)
    new = connects(b)
    assert sorted(c.host for c in new) == ["10.1.0.1", "10.1.0.2"]
    assert all(c.name == "svc" for c in new)
    for c in new:
        b.connected(c, 0.2)
    assert b.unavailable() is None
    b.actions()
    b.handle_timer(29.0)
    assert b.get_timer() == 30.0
    b.handle_timer(30.0)
    assert b.actions() == [Resolve("svc", 3000)]
    busy = b.pick(30.0)
    while busy is not None and busy.host != "10.1.0.1":
        busy = b.pick(30.0)
    assert busy is not None
    b.resolved("svc", 3000, ["10.1.0.2", "10.1.0.3"], 30.1)
    actions = b.actions()
    assert [a.endpoint.state for a in actions if isinstance(a, EndpointChanged)
            if a.endpoint.host == "10.1.0.1"] == [EndpointState.REMOVED]
    assert not busy.live
    b.release(busy)
    assert Close(busy) in b.actions()
    assert "10.1.0.1" not in states(b) and "10.1.0.3" in states(b)


def test_connection_opening_when_its_address_goes_away_is_closed_once_open() -> None:
    b = Balancer([("svc", 3000)], now=0.0)
    b.actions()
    b.resolved("svc", 3000, ["10.1.0.1", "10.1.0.2"], 0.0)
    c1, c2 = connects(b)
    b.resolved("svc", 3000, ["10.1.0.2"], 0.1)
    b.actions()
    b.connected(c1, 0.2)
    assert b.actions() == [Close(c1)]
    b.connect_failed(c1, 0.3, "late")  # already gone: nothing
    assert b.actions() == []


def test_failed_resolution_is_retried_sooner_and_reported() -> None:
    b = Balancer([("nowhere", 3000)], now=0.0, backoff_max=2.0)
    b.actions()
    b.resolve_failed("nowhere", 3000, "Name or service not known", 0.0)
    assert b.unavailable() == "no endpoint is available: nowhere:3000 (Name or service not known)"
    assert b.get_timer() == 2.0
    b.resolved("nowhere", 3000, [], 2.0)
    assert b.unavailable() == "no endpoint is available: nowhere:3000 (resolves to no address)"
    b.resolved("elsewhere", 3000, ["10.0.0.9"], 2.0)  # not a name of ours: ignored
    assert b.endpoints == []


def test_resolution_failure_after_success_keeps_the_addresses() -> None:
    b = Balancer([("svc", 3000)], now=0.0)
    b.actions()
    b.resolved("svc", 3000, ["10.1.0.1"], 0.0)
    b.resolve_failed("svc", 3000, "SERVFAIL", 1.0)
    assert [e.host for e in b.endpoints] == ["10.1.0.1"]
    assert b.get_timer() == 30.0  # the next resolution, not sooner


def test_close_closes_open_connections_and_any_that_open_later() -> None:
    b = Balancer([A, B], now=0.0)
    ca, cb = connects(b)
    b.connected(ca, 0.0)
    b.actions()
    b.close()
    assert b.actions() == [Close(ca)]
    assert b.get_timer() is None and b.pick(0.0) is None
    b.handle_timer(100.0)
    b.resolved("x", 1, ["10.0.0.1"], 0.0)
    assert b.actions() == []
    b.connected(cb, 1.0)
    assert b.actions() == [Close(cb)]


@pytest.mark.parametrize("bad", [[], [("h",)], [("h", "3000")], [("", 1)], [("h", 0)], [("h", 70000)],
                                 [("h", True)], ["h:1"], [(1, 2)]])
def test_bad_endpoints_are_named(bad: Any) -> None:
    with pytest.raises(LocalProtocolError, match="endpoints"):
        parse_endpoints(bad)


@pytest.mark.parametrize("kw,word", [
    ({"pool_size": 0}, "pool_size"), ({"pool_size": True}, "pool_size"), ({"pool_size": 1.5}, "pool_size"),
    ({"strategy": "random"}, "strategy"), ({"backoff": 0}, "backoff"), ({"backoff_max": "1"}, "backoff_max"),
    ({"resolve_interval": -1}, "resolve_interval"), ({"max_connection_age": 0}, "max_connection_age"),
])
def test_bad_options_are_named(kw: dict[str, Any], word: str) -> None:
    with pytest.raises(LocalProtocolError, match=word):
        Balancer([A], now=0.0, **kw)


def test_may_resend() -> None:
    assert may_resend(sent=False, idempotent=False, resent=True)
    assert not may_resend(sent=True, idempotent=False, resent=False)
    assert may_resend(sent=True, idempotent=True, resent=False)
    assert not may_resend(sent=True, idempotent=True, resent=True)


def test_ipv6_addresses_are_endpoints_not_names() -> None:
    b = Balancer([("::1", 3000)], now=0.0)
    [conn] = connects(b)
    assert conn.host == "::1" and b.get_timer() is None


def test_pool_targets_decide_what_connect_makes() -> None:
    assert pool_targets("h", 1, {}) is None
    assert pool_targets(None, None, {"endpoints": None, "pool_size": 1}) is None
    assert pool_targets("h", 1, {"pool_size": 2}) == [("h", 1)]
    assert pool_targets(None, None, {"max_connection_age": 5.0}) == [("localhost", 3000)]
    assert pool_targets(None, 7, {"resolve_interval": 1.0}) == [("localhost", 7)]
    options = {"endpoints": [A, B], "pool_size": 2}
    assert pool_targets(None, None, options) == [A, B]
    assert options == {"pool_size": 2}  # the pooled client's own options remain
    with pytest.raises(TypeError, match="host/port or endpoints"):
        pool_targets("h", None, {"endpoints": [A]})
    with pytest.raises(TypeError, match="port=1"):
        pool_targets(None, 1, {"endpoints": [A]})


def test_status_follows_live_connections() -> None:
    S = ConnectionStatus
    b = Balancer([A], now=0.0, resolve_interval=None)
    assert b.resolve_interval == 30.0
    [conn] = connects(b)
    assert b.status(S.DISCONNECTED) is S.DISCONNECTED
    b.connected(conn, 0.0)
    assert b.status(S.DISCONNECTED) is S.CONNECTED
    b.lost(conn, 1.0)
    assert b.status(S.CONNECTED) is S.RECONNECTING
    assert b.status(S.RECONNECTING) is S.RECONNECTING
    b.close()
    assert b.status(S.RECONNECTING) is S.DISCONNECTED


def test_pool_options_split_the_pools_own_from_its_connections() -> None:
    resolver = lambda host, port: ["127.0.0.1"]  # noqa: E731
    pool = pool_options([A, B], ["tls", "codec", "timeout"], pool_size=2, balance="least_pending",
                        retry_delay=0.5, retries=3, lazy=True, resolver=resolver, timeout=None,
                        tls=None)
    assert pool.member_options == {"tls": None, "timeout": None, "connect_timeout": 10.0}
    assert (pool.timeout, pool.connect_timeout, pool.lazy) == (None, 10.0, True)
    assert pool.resolver is resolver and pool.on_status is None
    balancer = pool.new_balancer(now=0.0)
    assert balancer.strategy is Strategy.LEAST_PENDING
    assert [(e.host, e.port) for e in balancer.endpoints] == [A, B]
    with pytest.raises(TypeError, match=r"\['colour'\]"):
        pool_options([A], ["tls"], colour="red")
