"""Many endpoints, pools of connections, failover: every decision, Sans-IO.

A pooled client (``connect(endpoints=[...], pool_size=N)``) owns several single
connections; a :class:`Balancer` decides everything about them and the binding carries
it out: which endpoints exist (names are re-resolved every ``resolve_interval``), when a
connection is opened, which live connection takes a call (round robin or least pending),
how long an endpoint that refused or dropped stays out (exponential backoff, capped),
when a connection is too old to take new calls (``max_connection_age``), and whether a
failed call may be sent again (:func:`may_resend`).

Like the rest of the core it never touches a socket or a clock: inputs carry ``now``,
:meth:`Balancer.get_timer` says when to call :meth:`Balancer.handle_timer`, and what the
binding must do comes out of :meth:`Balancer.actions` (:class:`Connect`, :class:`Close`,
:class:`Resolve`, :class:`EndpointChanged`)::

    balancer = Balancer([("svc.ns.svc.cluster.local", 3000)], pool_size=2, now=now)
    for action in balancer.actions(): ...      # Resolve("svc...", 3000)
    balancer.resolved("svc...", 3000, ["10.0.0.1", "10.0.0.2"], now)
    for action in balancer.actions(): ...      # Connect(conn) x 4, EndpointChanged(...)
    balancer.connected(conn, now)              # when the binding's connection is up
    conn = balancer.pick(now)                  # a live connection, or None
    balancer.release(conn)                     # when the call is over
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import LocalProtocolError
from .status import ConnectionStatus

__all__ = [
    "Action",
    "Balancer",
    "Close",
    "Connect",
    "EndpointChanged",
    "EndpointInfo",
    "EndpointState",
    "PoolOptions",
    "PooledConnection",
    "Resolve",
    "Strategy",
    "may_resend",
    "parse_endpoints",
    "pool_options",
    "pool_targets",
]


class Strategy(str, enum.Enum):
    """How a call picks among live connections."""

    ROUND_ROBIN = "round_robin"
    LEAST_PENDING = "least_pending"


class EndpointState(str, enum.Enum):
    """Where one endpoint stands, as ``client.endpoints`` and the status callback say."""

    CONNECTING = "connecting"  # no live connection yet, first attempt under way
    UP = "up"  # at least one live connection takes calls
    DOWN = "down"  # refused or dropped: out until its backoff ends
    REMOVED = "removed"  # its name no longer resolves to it


class _ConnState(enum.Enum):
    CONNECTING = 0
    LIVE = 1
    RETIRING = 2  # takes no new calls; closed once its pending calls are over
    GONE = 3


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint as reported: its address, state and calls in flight."""

    host: str
    port: int
    state: EndpointState
    pending: int  # calls in flight on its connections
    connections: int  # live connections (retiring ones included)
    name: str  # the host name it was resolved from (its address if given as one)


class PooledConnection:
    """One connection of the pool. The binding keeps its own object in ``handle``."""

    __slots__ = ("_state", "endpoint", "handle", "opened_at", "pending")

    def __init__(self, endpoint: _Endpoint) -> None:
        self.endpoint = endpoint
        self._state = _ConnState.CONNECTING
        self.opened_at = 0.0
        self.pending = 0
        self.handle: Any = None

    @property
    def host(self) -> str:
        """The address to connect to."""
        return self.endpoint.host

    @property
    def port(self) -> int:
        """The port to connect to."""
        return self.endpoint.port

    @property
    def name(self) -> str:
        """The name the address came from (for TLS ``server_hostname``)."""
        return self.endpoint.name

    @property
    def live(self) -> bool:
        """Whether it takes new calls."""
        return self._state is _ConnState.LIVE

    def __repr__(self) -> str:
        return f"<PooledConnection {self.host}:{self.port} {self._state.name.lower()} pending={self.pending}>"


class _Endpoint:
    __slots__ = ("conns", "failures", "host", "last_error", "name", "port", "removed",
                 "reported", "retry_at")

    def __init__(self, host: str, port: int, name: str) -> None:
        self.host, self.port, self.name = host, port, name
        self.conns: list[PooledConnection] = []
        self.failures = 0  # refusals and drops since the last successful connect
        self.retry_at = 0.0
        self.last_error = ""
        self.removed = False
        self.reported: EndpointState | None = None

    def state(self) -> EndpointState:
        if self.removed:
            return EndpointState.REMOVED
        if any(c._state is _ConnState.LIVE for c in self.conns):
            return EndpointState.UP
        return EndpointState.DOWN if self.failures else EndpointState.CONNECTING

    def info(self) -> EndpointInfo:
        conns = self.conns
        return EndpointInfo(
            self.host, self.port, self.state(), sum(c.pending for c in conns),
            sum(c._state is not _ConnState.CONNECTING for c in conns), self.name)


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a connection to ``conn.host:conn.port``; then call ``connected`` or ``connect_failed``."""

    conn: PooledConnection


@dataclass(frozen=True, slots=True)
class Close:
    """Close this connection (it has no call left); ``lost`` need not be called."""

    conn: PooledConnection


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve ``host`` (all its addresses); then call ``resolved`` or ``resolve_failed``."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class EndpointChanged:
    """An endpoint changed state (for the status callback)."""

    endpoint: EndpointInfo


Action = Connect | Close | Resolve | EndpointChanged


def parse_endpoints(endpoints: Iterable[Any]) -> list[tuple[str, int]]:
    """``[(host, port), ...]`` checked; raises ``LocalProtocolError`` naming a bad entry."""
    out: list[tuple[str, int]] = []
    for i, entry in enumerate(endpoints):
        if (not isinstance(entry, (tuple, list)) or len(entry) != 2
                or not isinstance(entry[0], str) or not entry[0]
                or not isinstance(entry[1], int) or isinstance(entry[1], bool)
                or not 0 < entry[1] < 65536):
            raise LocalProtocolError(
                f"endpoints[{i}] must be a (host, port) pair with a port in 1..65535, not {entry!r}")
        out.append((entry[0], entry[1]))
    if not out:
        raise LocalProtocolError("endpoints must name at least one (host, port)")
    return out


def pool_targets(host: str | None, port: int | None,
                 options: dict[str, Any]) -> list[tuple[str, int]] | None:
    """What ``connect(host, port, **options)`` makes: None for one plain connection to
    ``host:port``, else the ``(host, port)`` targets of a pooled client (``endpoints`` is
    taken out of ``options``; the rest are the pooled client's).

    A pooled client is made for ``endpoints=`` or for any pool option (``pool_size``
    other than 1, ``max_connection_age``, ``resolve_interval``); then a lone ``host`` is
    resolved, each address an endpoint. ``host``/``port`` and ``endpoints`` exclude
    each other (``TypeError``).
    """
    endpoints = options.pop("endpoints", None)
    if endpoints is not None:
        if host is not None or port is not None:
            raise TypeError("connect() takes either host/port or endpoints=, not both "
                            f"(host={host!r}, port={port!r}, endpoints={endpoints!r})")
        return parse_endpoints(endpoints)
    if (options.get("pool_size", 1) == 1 and options.get("max_connection_age") is None
            and options.get("resolve_interval") is None):
        return None
    return parse_endpoints([(host or "localhost", 3000 if port is None else port)])


@dataclass(frozen=True)
class PoolOptions:
    """What a pooled client makes of ``connect(...)``'s options (see :func:`pool_options`).

    ``member_options`` go to each pooled connection's own client; ``new_balancer(now=t)``
    is a fresh :class:`Balancer` for the pool's targets and options; ``resolver`` is the
    caller's ``(host, port) -> [address, ...]``, or None for the binding's own.
    """

    member_options: dict[str, Any]
    new_balancer: Callable[..., Balancer]
    timeout: float | None
    connect_timeout: float | None
    lazy: bool
    resolver: Callable[[str, int], Sequence[str]] | None
    on_status: Callable[[EndpointInfo], object] | None


def pool_options(
    targets: list[tuple[str, int]],
    accepted: Iterable[str],
    *,
    pool_size: int = 1,
    max_connection_age: float | None = None,
    resolve_interval: float | None = None,
    balance: str = "round_robin",
    backoff_max: float = 5.0,
    resolver: Callable[[str, int], Sequence[str]] | None = None,
    on_status: Callable[[EndpointInfo], object] | None = None,
    timeout: float | None = 30.0,
    connect_timeout: float | None = 10.0,
    retry_delay: float = 0.1,
    retries: int = 0,
    lazy: bool = False,
    **options: Any,
) -> PoolOptions:
    """Split a pooled client's ``connect(...)`` options (what :func:`pool_targets` left)
    into the pool's own and its connections' (``accepted`` names what a connection's
    client takes; anything else is a ``TypeError`` naming it). ``retry_delay`` is the
    pool's first backoff; ``retries`` is dropped: a pool retries by itself, forever.
    ``lazy`` is the pool's own: its connections are opened in the background."""
    unknown = set(options) - set(accepted)
    if unknown:
        raise TypeError(f"connect() got unexpected keyword arguments {sorted(unknown)}")
    del retries
    return PoolOptions(
        member_options=dict(options, timeout=timeout, connect_timeout=connect_timeout),
        new_balancer=functools.partial(
            Balancer, targets, pool_size=pool_size, strategy=balance, backoff=retry_delay,
            backoff_max=backoff_max, max_connection_age=max_connection_age,
            resolve_interval=resolve_interval),
        timeout=timeout, connect_timeout=connect_timeout, lazy=lazy, resolver=resolver,
        on_status=on_status)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def may_resend(*, sent: bool, idempotent: bool, resent: bool) -> bool:
    """Whether a call whose connection failed may go out again on another one.

    A call that never reached a connection may always go elsewhere; one that was
    handed to a connection that then died may have run, so it goes again only when the
    caller said it is idempotent, and only once.
    """
    return not sent or (idempotent and not resent)


class Balancer:
    """The state of a pooled client: endpoints, their connections, backoff, age, names.

    ``endpoints`` are ``(host, port)`` pairs; a host that is not an IP address is
    resolved (a :class:`Resolve` action) now and every ``resolve_interval`` seconds, and
    each of its addresses is an endpoint. Each endpoint gets ``pool_size`` connections.
    A refused connect or a dropped connection keeps that endpoint's next attempt off for
    ``backoff * 2 ** (failures - 1)`` seconds, at most ``backoff_max``.
    """

    def __init__(
        self,
        endpoints: Iterable[tuple[str, int]],
        *,
        now: float,
        pool_size: int = 1,
        strategy: Strategy | str = Strategy.ROUND_ROBIN,
        backoff: float = 0.1,
        backoff_max: float = 5.0,
        max_connection_age: float | None = None,
        resolve_interval: float | None = 30.0,
    ) -> None:
        if resolve_interval is None:
            resolve_interval = 30.0
        targets = parse_endpoints(endpoints)
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise LocalProtocolError(f"pool_size must be an int >= 1, not {pool_size!r}")
        try:
            self.strategy = Strategy(strategy)
        except ValueError:
            raise LocalProtocolError(
                f"strategy must be one of {[s.value for s in Strategy]}, not {strategy!r}") from None
        for label, value in (("backoff", backoff), ("backoff_max", backoff_max),
                             ("resolve_interval", resolve_interval),
                             ("max_connection_age", max_connection_age)):
            if value is not None and (not isinstance(value, (int, float)) or not value > 0):
                raise LocalProtocolError(f"{label} must be a number > 0, not {value!r}")
        self.pool_size = pool_size
        self.backoff, self.backoff_max = backoff, backoff_max
        self.max_connection_age = max_connection_age
        self.resolve_interval = resolve_interval
        self.closed = False
        self._endpoints: dict[tuple[str, int], _Endpoint] = {}
        self._names: dict[tuple[str, int], float] = {}  # name -> when to resolve it next
        self._unresolved: dict[tuple[str, int], str] = {}  # names never resolved: why
        self._live: list[PooledConnection] = []
        self._next = 0
        self._actions: list[Action] = []
        for host, port in targets:
            if _is_address(host):
                self._add(host, port, host)
            else:
                self._names[(host, port)] = now
                self._unresolved[(host, port)] = "not resolved yet"
        self.handle_timer(now)

    # -- what the binding reads ---------------------------------------------------------

    def actions(self) -> list[Action]:
        """What to do now (drained)."""
        actions, self._actions = self._actions, []
        return actions

    @property
    def endpoints(self) -> list[EndpointInfo]:
        """Every current endpoint, its state and pending calls."""
        return [ep.info() for ep in self._endpoints.values()]

    def status(self, previous: ConnectionStatus) -> ConnectionStatus:
        """The client's status now: ``connected`` while a connection is live, else
        ``reconnecting`` once it was connected (``disconnected`` after :meth:`close`)."""
        if self.closed:
            return ConnectionStatus.DISCONNECTED
        if self._live:
            return ConnectionStatus.CONNECTED
        if previous is ConnectionStatus.CONNECTED:
            return ConnectionStatus.RECONNECTING
        return previous

    @property
    def has_live(self) -> bool:
        """Whether some connection takes calls now."""
        return bool(self._live)

    def unavailable(self) -> str | None:
        """Why no call can go anywhere now (every endpoint failed), or None.

        None while some connection is live or some endpoint or name is still on its
        first attempt: a caller waits for those.
        """
        if self._live:
            return None
        reasons = []
        for (host, port), why in self._unresolved.items():
            if why == "not resolved yet":
                return None
            reasons.append(f"{host}:{port} ({why})")
        for ep in self._endpoints.values():
            if not ep.failures:
                return None
            reasons.append(f"{ep.host}:{ep.port} ({ep.last_error})")
        return "no endpoint is available: " + ", ".join(reasons)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (None: only on input)."""
        if self.closed:
            return None
        times = list(self._names.values())
        for ep in self._endpoints.values():
            if not ep.removed and len(ep.conns) < self.pool_size:
                times.append(ep.retry_at)
        age = self.max_connection_age
        if age is not None:
            times.extend(c.opened_at + age for c in self._live)
        return min(times, default=None)

    # -- inputs -------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Resolve names that are due, retire old connections, open missing ones."""
        if self.closed:
            return
        for key, due in self._names.items():
            if due <= now:
                self._names[key] = now + self.resolve_interval
                self._actions.append(Resolve(*key))
        age = self.max_connection_age
        if age is not None:
            for conn in [c for c in self._live if c.opened_at + age <= now]:
                self._retire(conn)
        for ep in self._endpoints.values():
            self._fill(ep, now)

    def resolved(self, host: str, port: int, addresses: Sequence[str], now: float) -> None:
        """The addresses ``host`` resolves to now: new ones become endpoints, gone ones leave."""
        if self.closed or (host, port) not in self._names:
            return
        if addresses:
            self._unresolved.pop((host, port), None)
        else:
            self._unresolved[(host, port)] = "resolves to no address"
        wanted = set(addresses)
        for key, ep in list(self._endpoints.items()):
            if ep.name == host and ep.port == port and ep.host not in wanted:
                self._remove(key, ep)
        for address in addresses:
            if (address, port) not in self._endpoints:
                self._add(address, port, host)
                self._fill(self._endpoints[(address, port)], now)

    def resolve_failed(self, host: str, port: int, reason: str, now: float) -> None:
        """Resolving ``host`` failed: keep its known addresses, try again later."""
        if (host, port) in self._unresolved:
            self._unresolved[(host, port)] = reason
            self._names[(host, port)] = now + min(self.backoff_max, self.resolve_interval)

    def connected(self, conn: PooledConnection, now: float) -> None:
        """``conn`` is open: it takes calls (unless the pool no longer wants it)."""
        ep = conn.endpoint
        if conn._state is not _ConnState.CONNECTING or ep.removed:
            # Given up while it was opening (the client closed, the name moved away).
            if conn._state is _ConnState.CONNECTING:
                self._drop(conn)
            self._actions.append(Close(conn))
            return
        conn._state = _ConnState.LIVE
        conn.opened_at = now
        ep.failures = 0
        self._live.append(conn)
        self._report(ep)

    def connect_failed(self, conn: PooledConnection, now: float, reason: str) -> None:
        """Opening ``conn`` failed (refused, timed out, TLS): back its endpoint off."""
        if conn._state is _ConnState.CONNECTING:
            self._drop(conn)
            self._fail(conn.endpoint, now, reason)

    def lost(self, conn: PooledConnection, now: float, reason: str = "connection lost") -> None:
        """``conn`` closed by itself (the peer left, a write failed). Idempotent.

        A retiring connection has its replacement already; a live one puts its
        endpoint in backoff before the next attempt.
        """
        state = conn._state
        if state is _ConnState.LIVE or state is _ConnState.RETIRING:
            self._drop(conn)
            if state is _ConnState.LIVE:
                self._fail(conn.endpoint, now, reason)
            else:
                self._report(conn.endpoint)

    def pick(self, now: float, avoid: PooledConnection | None = None) -> PooledConnection | None:
        """A live connection for one call (its pending count taken), or None if none is live.

        ``avoid``: a connection the call just failed on; another endpoint is picked if one
        is live, else another connection, else ``avoid`` itself.
        """
        live = self._live
        n = len(live)
        if not n:
            return None
        i = self._next % n
        if self.strategy is Strategy.LEAST_PENDING:
            best = live[i]
            for j in range(i + 1, i + n):
                c = live[j % n]
                if c.pending < best.pending:
                    best = c
            conn = best
        else:
            conn = live[i]
        if avoid is not None and conn.endpoint is avoid.endpoint and n > 1:
            # A call that just failed there goes to another endpoint if there is one:
            # its siblings on the same endpoint have likely lost their peer as well.
            others = ([c for c in live if c.endpoint is not avoid.endpoint]
                      or [c for c in live if c is not avoid])
            conn = others[i % len(others)]
        self._next = i + 1
        conn.pending += 1
        return conn

    def release(self, conn: PooledConnection) -> None:
        """The call :meth:`pick` gave ``conn`` is over; a retiring connection may close."""
        conn.pending -= 1
        if conn._state is _ConnState.RETIRING and not conn.pending:
            self._drop(conn)
            self._actions.append(Close(conn))
            self._report(conn.endpoint)

    def close(self) -> None:
        """The client closes: close every connection; nothing is opened again."""
        self.closed = True
        for ep in self._endpoints.values():
            for conn in list(ep.conns):
                if conn._state is not _ConnState.CONNECTING:
                    self._actions.append(Close(conn))
                self._drop(conn)

    # -- internals ----------------------------------------------------------------------

    def _add(self, host: str, port: int, name: str) -> None:
        self._endpoints.setdefault((host, port), _Endpoint(host, port, name))

    def _remove(self, key: tuple[str, int], ep: _Endpoint) -> None:
        ep.removed = True
        del self._endpoints[key]
        for conn in list(ep.conns):
            if conn._state is _ConnState.LIVE:
                self._retire(conn)
        self._report(ep)

    def _fill(self, ep: _Endpoint, now: float) -> None:
        """Open connections up to ``pool_size`` (retiring ones do not count) if not backing off."""
        if ep.retry_at > now:
            return
        wanted = self.pool_size - sum(c._state is not _ConnState.RETIRING for c in ep.conns)
        for _ in range(wanted):
            conn = PooledConnection(ep)
            ep.conns.append(conn)
            self._actions.append(Connect(conn))
        self._report(ep)

    def _retire(self, conn: PooledConnection) -> None:
        self._live.remove(conn)
        conn._state = _ConnState.RETIRING
        if not conn.pending:
            self._drop(conn)
            self._actions.append(Close(conn))

    def _drop(self, conn: PooledConnection) -> None:
        if conn._state is _ConnState.LIVE:
            self._live.remove(conn)
        conn._state = _ConnState.GONE
        conn.endpoint.conns.remove(conn)

    def _fail(self, ep: _Endpoint, now: float, reason: str) -> None:
        ep.failures += 1
        ep.last_error = reason
        delay = min(self.backoff * 2 ** min(ep.failures - 1, 60), self.backoff_max)
        ep.retry_at = max(ep.retry_at, now + delay)
        self._report(ep)

    def _report(self, ep: _Endpoint) -> None:
        state = ep.state()
        if state is not ep.reported:
            ep.reported = state
            self._actions.append(EndpointChanged(ep.info()))
