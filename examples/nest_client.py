"""Call a NestJS TCP microservice from Python (threads binding).

    python examples/nest_client.py HOST PORT    # call a running NestJS service
    python examples/nest_client.py              # no NestJS at hand: start a Python
                                                # stand-in with the same handlers, call it

The NestJS side is an ordinary microservice::

    const app = await NestFactory.createMicroservice(AppModule, {
      transport: Transport.TCP, options: { host: '127.0.0.1', port: 3000 } });

    @MessagePattern({ cmd: 'sum' })  sum(data: number[]) { return data.reduce((a, b) => a + b, 0); }
    @MessagePattern('echo')          echo(data) { return data; }
    @MessagePattern('stream')        stream({ count, gap_ms }) { return timer(0, gap_ms).pipe(take(count)); }
    @MessagePattern('error.object')  fail() { throw new RpcException({ code: 42, reason: 'bad' }); }
    @EventPattern('note')            note(data) { ... }
"""

from __future__ import annotations

import sys

import tcpmsg_threads

from sansio_tcpmsg import NoHandlerError, RemoteError, Router, RpcError


def call(host: str, port: int) -> None:
    with tcpmsg_threads.connect(host, port, timeout=10) as client:
        # An object pattern travels as given; NestJS routes it like @MessagePattern({cmd:'sum'}).
        print("sum:", client.send({"cmd": "sum"}, [1, 2, 3]))
        # Non-ASCII text: the frame length counts UTF-16 units, as NestJS does.
        print("echo:", client.send("echo", {"text": "héllo 中文 😀"}))
        # An Observable handler streams one frame per value.
        print("stream:", list(client.stream("stream", {"count": 3, "gap_ms": 10})))
        # RpcException({...}) arrives as RemoteError with the object as .error.
        try:
            client.send("error.object", None)
        except RemoteError as exc:
            print("error.object:", exc.error)
        # A pattern the service does not handle.
        try:
            client.send("no.such.pattern", 1)
        except NoHandlerError as exc:
            print("no handler:", exc.error)
        # An event: no reply.
        client.emit("note", {"from": "python"})
        print("event sent")


def stand_in() -> Router:
    """A Python service with the same handlers, for when no NestJS is running."""
    router = Router()

    @router.message({"cmd": "sum"})
    def add(data):
        return sum(data or [])

    @router.message("echo")
    def echo(data):
        return data

    @router.message("stream")
    def stream(data):
        yield from range(int(data.get("count", 0)))

    @router.message("error.object")
    def error_object(data):
        raise RpcError({"code": 42, "reason": "bad"})

    @router.event("note")
    def note(data):
        pass

    return router


def main(argv: list[str]) -> int:
    if len(argv) == 2:
        host, port = argv[0], int(argv[1])
        print(f"calling the service on {host}:{port}")
        call(host, port)
    elif not argv:
        with tcpmsg_threads.serve(stand_in(), "127.0.0.1", 0) as server:
            print(f"no HOST PORT given: calling a Python stand-in on 127.0.0.1:{server.port}")
            call("127.0.0.1", server.port)
    else:
        print("usage: nest_client.py [HOST PORT]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
