"""The Sans-IO core's own cost per request, without sockets, next to the same work framework-free.

    python bench/core_cost.py [--payloads small,1k] [--concurrency 64] [--batches 300]
                              [--repeat 5] [--codec json|orjson] [--json FILE]

Everything runs in this process, on bytes built beforehand, in bounded loops; CPU time
(``time.process_time``) is read around each run's loop, which calls the core (or the
ceiling) and nothing else, so what the machine's other processes do moves it little.
Per payload (``bench/_common.payload``) and per batch of C NestJS-shaped ``echo``
requests (uuid ids, framed by ``bench/_raw.request``):

- ``server, async``: one :class:`~sansio_tcpmsg.ServerConnection` built as tcpmsg_anyio
  builds it (``Handlers`` with ``Family.ASYNC``) and driven as its link drives it: the
  batch in one ``receive_data``, the events taken, each request answered with
  ``handler_returned`` (its data, as ``echo`` returns it) followed by ``events_received``,
  then one ``data_to_send``, ``note_send_buffer``, ``reading_paused`` and ``get_timer``
  per batch (one write);
- ``server, sync``: built as tcpmsg_sync builds it (``Family.SYNC``) and driven as its
  ``_Peer.core`` does: ``data_to_send`` and ``note_send_buffer`` after every reply;
- ``client``: one :class:`~sansio_tcpmsg.ClientConnection`: C ``send_request`` calls,
  one ``data_to_send``, then the C replies (as NestJS writes them) in one
  ``receive_data`` and their ``ResponseReceived`` events taken.

The ceilings do the same work with ``bench/_raw.py`` and nothing else: the server's is
``echo_replies`` (``Cutter`` + the reply JSON); the client's frames C requests with
``_raw.request`` into a dict of pending ids, then cuts the replies and pops each id (as
``bench/raw_client.py`` does). The handler itself is not run: what is measured is what
every binding pays around it.

``--codec orjson`` gives our connections ``tcpmsg_orjson.OrjsonCodec``. Runs are
interleaved per repetition; medians of µs per request are printed with
``ours / ceiling`` (lower is better), Markdown; ``--json`` writes the raw figures too.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import _common
import _raw

from sansio_tcpmsg import ClientConnection, Router, ServerConnection
from sansio_tcpmsg.handlers import Family, Handlers

PEER = ("127.0.0.1", 40000)
DISTINCT = 16  # distinct batches of requests, cycled (fresh ids per request in each)


def _router() -> tuple[Router, Router]:
    """The ``echo`` route, as an ``async def`` (anyio) and as a plain function (sync)."""
    async_router, sync_router = Router(), Router()

    @async_router.message("echo")
    async def echo_async(data: Any, ctx: Any) -> Any:
        return data

    @sync_router.message("echo")
    def echo(data: Any, ctx: Any) -> Any:
        return data

    return async_router, sync_router


def server_batches(payload: str, c: int) -> list[bytes]:
    """``DISTINCT`` writes of C requests each, with NestJS-shaped (uuid) ids."""
    data = _common.payload(payload)
    return [
        b"".join(_raw.request(data, f"8b2d1c3a-aaaa-4bbb-8ccc-{b * c + i:012x}") for i in range(c))
        for b in range(DISTINCT)
    ]


def server_async(batches: list[bytes], n: int, handlers: Handlers, codec: Any = None) -> float:
    """CPU seconds for ``n`` batches through a server connection driven as anyio's link."""
    conn = ServerConnection(handlers, peer=PEER, codec=codec)
    now = 1000.0
    clock = time.process_time
    t0 = clock()
    for i in range(n):
        batch = batches[i % DISTINCT]
        conn.receive_data(batch, now)
        for event in conn.events_received():
            conn.handler_returned(event.request_id, event.data, now)  # type: ignore[attr-defined]
            conn.events_received()
        out = conn.data_to_send()
        conn.note_send_buffer(len(out))
        conn.reading_paused  # noqa: B018 - the link reads it after each write
        conn.get_timer()
        conn.note_send_buffer(0)  # written
    total = clock() - t0
    assert not conn.closed and not conn.in_flight
    return total


def server_sync(batches: list[bytes], n: int, handlers: Handlers, codec: Any = None) -> float:
    """CPU seconds for ``n`` batches through a server connection driven as tcpmsg_sync's peer."""
    conn = ServerConnection(handlers, peer=PEER, codec=codec)
    now = 1000.0
    clock = time.process_time
    t0 = clock()
    for i in range(n):
        batch = batches[i % DISTINCT]
        conn.receive_data(batch, now)
        conn.data_to_send()
        events = conn.events_received()
        for event in events:
            conn.handler_returned(event.request_id, event.data, now)  # type: ignore[attr-defined]
            out = conn.data_to_send()
            conn.note_send_buffer(len(out))
            conn.events_received()
            conn.note_send_buffer(0)  # written
        conn.reading_paused  # noqa: B018
        conn.get_timer()
    total = clock() - t0
    assert not conn.closed and not conn.in_flight
    return total


def raw_server(batches: list[bytes], n: int) -> float:
    """CPU seconds for ``n`` batches through the framework-free ``echo`` (``_raw``)."""
    cutter = _raw.Cutter()
    clock = time.process_time
    t0 = clock()
    for i in range(n):
        batch = batches[i % DISTINCT]
        _raw.echo_replies(cutter, batch)
    return clock() - t0


def client_replies(payload: str, c: int, n: int) -> list[bytes]:
    """The replies NestJS writes to batch after batch of C requests with ids "1", "2", ..."""
    data = _common.payload(payload)
    return [
        _raw.echo_replies(_raw.Cutter(), b"".join(_raw.request(data, str(b * c + i + 1)) for i in range(c)))
        for b in range(n)
    ]


def client(replies: list[bytes], n: int, c: int, data: Any, codec: Any = None) -> float:
    """CPU seconds for ``n`` batches of C calls through a client connection."""
    conn = ClientConnection(codec=codec)
    now = 1000.0
    clock = time.process_time
    t0 = clock()
    for i in range(n):
        for _ in range(c):
            conn.send_request("echo", data)
        conn.data_to_send()
        conn.receive_data(replies[i], now)
        events = conn.events_received()
        assert len(events) == c
    total = clock() - t0
    assert not conn.pending
    return total


def raw_client(replies: list[bytes], n: int, c: int, data: Any) -> float:
    """The same calls framework-free: frames by ``_raw.request``, replies popped by id."""
    cutter = _raw.Cutter()
    frame = _raw.request
    pending: dict[str, Any] = {}
    next_id = 0
    clock = time.process_time
    t0 = clock()
    for i in range(n):
        frames = []
        for _ in range(c):
            next_id += 1
            request_id = str(next_id)
            pending[request_id] = None
            frames.append(frame(data, request_id))
        b"".join(frames)
        results = [(pending.pop(p["id"]), p.get("response")) for p in cutter.feed(replies[i])]
        assert len(results) == c
    total = clock() - t0
    assert not pending
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payloads", default="small,1k")
    ap.add_argument("--concurrency", type=int, default=64, help="requests per batch (one read, one write)")
    ap.add_argument("--batches", type=int, default=300, help="batches per measurement")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--codec", default="json", choices=("json", "orjson"),
                    help="our connections' codec (orjson: tcpmsg_orjson.OrjsonCodec)")
    ap.add_argument("--json", help="also write the raw figures to this file")
    args = ap.parse_args()
    os.environ["TCPMSG_BENCH_CODEC"] = args.codec
    codec = _common.codec()
    c, n = args.concurrency, args.batches
    payloads = [p for p in args.payloads.split(",") if p]
    async_router, sync_router = _router()
    async_handlers = Handlers(async_router, family=Family.ASYNC, binding="core_cost")
    sync_handlers = Handlers(sync_router, family=Family.SYNC, binding="core_cost")
    # cell -> (ours, ceiling) runs, each CPU seconds for n batches
    cells: dict[tuple[str, str], tuple[Callable[[], float], Callable[[], float]]] = {}
    for p in payloads:
        batches = server_batches(p, c)
        replies = client_replies(p, c, n)
        data = _common.payload(p)
        cells[("server, async", p)] = (
            lambda b=batches: server_async(b, n, async_handlers, codec), lambda b=batches: raw_server(b, n))
        cells[("server, sync", p)] = (
            lambda b=batches: server_sync(b, n, sync_handlers, codec), lambda b=batches: raw_server(b, n))
        cells[("client", p)] = (
            lambda r=replies, d=data: client(r, n, c, d, codec), lambda r=replies, d=data: raw_client(r, n, c, d))
    runs: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.repeat + 1):  # the first round warms up, and is dropped
        for (side, p), (ours, ceiling) in cells.items():
            key = f"{side}/{p}"
            for who, run in (("ours", ours), ("ceiling", ceiling)):
                gc.collect()
                runs.setdefault(key, {}).setdefault(who, []).append(run() / (n * c) * 1e6)
    for figures in runs.values():
        for values in figures.values():
            del values[0]
    print(f"CPU µs per request of the core alone (no sockets), batches of C={c}, {n} batches a run, "
          f"median of {args.repeat}; our codec: {args.codec}. Ratio = ours / ceiling (lower is better).\n")
    print("| side | payload | ours µs | ceiling µs | ours/ceiling |")
    print("| --- | --- | ---: | ---: | ---: |")
    table = []
    for (side, p) in cells:
        figures = runs[f"{side}/{p}"]
        o, k = statistics.median(figures["ours"]), statistics.median(figures["ceiling"])
        table.append({"side": side, "payload": p, "ours_us": o, "ceiling_us": k})
        print(f"| {side} | {p} | {o:.2f} | {k:.2f} | {o / k:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"concurrency": c, "batches": n, "repeat": args.repeat, "codec": args.codec,
                       "table": table, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
