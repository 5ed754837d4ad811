"""``tcpmsg demo``: the example service, a relay that prints the frames, and five calls."""

from __future__ import annotations

import argparse
import ssl
import time

from sansio_tcpmsg import RemoteError

from .cli import EXIT_OK, EXIT_REMOTE, _calling, server_tls
from .output import dumps, say
from .relay import Relay
from .service import event_seen, example_router

__all__ = ["run_demo"]


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; return the exit status."""
    import tcpmsg_threads

    server_context = server_tls(args)
    client_context: ssl.SSLContext | None = None
    if server_context is not None:
        client_context = ssl.create_default_context(cafile=args.tls_ca)
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE  # the demo's own throwaway server
        if args.tls_ca:
            client_context.load_cert_chain(args.tls_cert, args.tls_key)
    router = example_router()
    event_seen.clear()
    failures = 0
    with tcpmsg_threads.serve(router, "127.0.0.1", 0, tls=server_context) as server:
        relay = Relay(("127.0.0.1", server.port), encrypted=server_context is not None)
        try:
            say(f"tcpmsg demo: the example service listens on 127.0.0.1:{server.port};")
            say(f"the client talks to it through a relay on 127.0.0.1:{relay.port} that prints each write.")
            say("Frames are <N>#<json>, N = the JSON text's length in UTF-16 code units.")
            with _calling(args), tcpmsg_threads.connect("127.0.0.1", relay.port, tls=client_context, timeout=10.0) as client:
                say("")
                say('1. a request with one reply: send({"cmd": "sum"}, [1, 2, 3])')
                say(f"    reply: {dumps(client.send({'cmd': 'sum'}, [1, 2, 3]))}")

                say("")
                say('2. a streamed reply: stream("count", 3)')
                for value in client.stream("count", 3):
                    say(f"    stream item: {dumps(value)}")
                say("    stream ended")

                say("")
                say('3. an event, no reply: emit("log", "hello")')
                client.emit("log", "hello")
                if not event_seen.wait(10):
                    say("    the event handler did not run within 10 s")
                    failures += 1

                say("")
                say('4. an application error: send("fail", "divide by zero")')
                try:
                    client.send("fail", "divide by zero")
                    say("    unexpected: a reply")
                    failures += 1
                except RemoteError as exc:
                    say(f"    RemoteError, err = {dumps(exc.error)}")

                say("")
                say('5. a pattern nobody handles: send("nope", 1)')
                try:
                    client.send("nope", 1)
                    say("    unexpected: a reply")
                    failures += 1
                except RemoteError as exc:
                    say(f"    {type(exc).__name__}, err = {dumps(exc.error)}")
        finally:
            time.sleep(0.05)  # let the relay print the last bytes before it closes
            relay.close()
    say("")
    say("done." if not failures else f"{failures} step(s) went wrong.")
    return EXIT_OK if not failures else EXIT_REMOTE
