"""Serve the conformance router out of process, so tests can kill -9 it.

    python serve_router.py --binding threads --port 0 [--host H] [--name N] [--tls CERTDIR [--mtls]]

Prints ``PORT <n>`` once listening, then serves until killed.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the suite's modules; tests/facade.py

import conformance_router  # noqa: E402
import facade  # noqa: E402


def server_tls(certdir: str, mtls: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(certdir, "server.pem"), os.path.join(certdir, "server.key"))
    if mtls:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(os.path.join(certdir, "ca.pem"))
    return ctx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binding", required=True, choices=facade.BINDINGS)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default=facade.HOST)
    ap.add_argument("--name", help="what the whoami handler answers")
    ap.add_argument("--tls")
    ap.add_argument("--mtls", action="store_true")
    ap.add_argument("--limits", help="JSON object of sansio_tcpmsg.Limits fields")
    args = ap.parse_args()
    if args.name:
        conformance_router.SERVER_NAME = args.name
    binding = facade.make_binding(args.binding, router=lambda _: conformance_router.build_router())
    kw = {"port": args.port, "host": args.host}
    if args.tls:
        kw["tls"] = server_tls(args.tls, args.mtls)
    if args.limits:
        from sansio_tcpmsg import Limits

        kw["limits"] = Limits(**json.loads(args.limits))
    with binding.serve(**kw) as server:
        print(f"PORT {server.port}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
