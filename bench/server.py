"""One of our servers with the benchmark's handlers, as ``bench/js/server.js`` has them.

    python bench/server.py --binding anyio-asyncio|anyio-trio|gevent|threads [--port 0]
                           [--tls-cert PEM --tls-key PEM]

Handlers: ``echo`` (returns its data), the event ``tick`` (counts), ``ticks`` (returns
how many ``tick`` events were handled so far) and ``items`` (streams ``data["item"]``
``data["n"]`` times). Prints ``LISTENING <port>`` once bound, then serves until killed
(SIGTERM). ``TCPMSG_BENCH_CODEC=orjson`` serves with ``tcpmsg_orjson.OrjsonCodec``. ``anyio-asyncio`` uses uvloop when it is installed (``--no-uvloop`` to turn it off).
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
import threading
from typing import Any

import _common

from sansio_tcpmsg import Router


def _listening(port: int) -> None:
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binding", required=True, choices=_common.BINDINGS)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    router = Router()
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    ticks = [0]

    if args.binding.startswith("anyio"):
        import anyio
        import tcpmsg_anyio

        @router.message("echo")
        async def echo(data, ctx):  # type: ignore[no-untyped-def]
            return data

        @router.event("tick")
        async def tick(data: Any) -> None:
            ticks[0] += 1

        @router.message("ticks")
        async def count(data: Any) -> int:
            return ticks[0]

        @router.message("items")
        async def items(data: Any) -> Any:
            item = data["item"]
            for _ in range(data["n"]):
                yield item

        async def run() -> None:
            async with tcpmsg_anyio.serve(router, args.host, args.port, tls=tls, codec=_common.codec()) as server:
                _listening(server.port)
                await server.serve_forever()

        backend = args.binding.split("-", 1)[1]
        options = {}
        if backend == "asyncio" and not args.no_uvloop:
            try:
                import uvloop  # noqa: F401

                options = {"use_uvloop": True}
            except ImportError:
                pass
        anyio.run(run, backend=backend, backend_options=options)
        return

    if args.binding == "gevent":
        import tcpmsg_gevent as mod
    else:
        import tcpmsg_threads as mod  # type: ignore[no-redef]

    @router.message("echo")
    def echo_sync(data, ctx):  # type: ignore[no-untyped-def]
        return data

    tick_lock = threading.Lock()  # event handlers may run in several threads

    @router.event("tick")
    def tick_sync(data: Any) -> None:
        with tick_lock:
            ticks[0] += 1

    @router.message("ticks")
    def count_sync(data: Any) -> int:
        return ticks[0]

    @router.message("items")
    def items_sync(data: Any) -> Any:
        item = data["item"]
        for _ in range(data["n"]):
            yield item

    with mod.serve(router, args.host, args.port, tls=tls, codec=_common.codec()) as server:
        _listening(server.port)
        server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
