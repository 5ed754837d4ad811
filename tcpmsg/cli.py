"""The ``tcpmsg`` command: talk to, serve and demonstrate NestJS TCP microservices.

Standard library only; the client commands and the demo use the threads binding, and
``serve --binding`` imports the chosen binding only when asked for it::

    tcpmsg send 3000 '{"cmd":"sum"}' '[1,2,3]'      # prints 6
    tcpmsg send 3000 echo --string 2024-01-01        # DATA as a string, not JSON
    tcpmsg stream 127.0.0.1:3000 count 3              # prints 0, 1, 2 on their own lines
    tcpmsg emit 3000 user.created '{"id":1}'
    tcpmsg serve myapp.service:router --port 3000
    tcpmsg serve myapp.service:router --port 3000 --workers 4 --proxy-protocol
    tcpmsg ping 127.0.0.1:3000                          # health probe: exit 0 if it answers
    tcpmsg serve myapp.service:router --binding gevent --monkey-patch
    tcpmsg demo

Exit status: 0 success, 1 the server answered with an error (its ``err`` as JSON on
stderr), 2 bad arguments, 3 cannot connect or the connection was lost, 4 timeout,
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from sansio_tcpmsg import (
    ConnectionClosedError,
    Keepalive,
    Limits,
    LocalProtocolError,
    NoHandlerError,
    RemoteError,
    Router,
    TcpMsgError,
)
from sansio_tcpmsg.handlers import UnsupportedHandler
from sansio_tcpmsg.health import HEALTH_ROUTE

from . import arguments, bench
from .output import dumps, say

__all__ = ["EXIT_CONNECTION", "EXIT_REMOTE", "EXIT_TIMEOUT", "EXIT_USAGE", "main"]

PROG = "tcpmsg"
EXIT_OK = 0
EXIT_REMOTE = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130

BINDINGS = ("threads", "gevent", "anyio", "trio")

log = logging.getLogger("tcpmsg.cli")


class CliError(Exception):
    """A failure reported as one line on stderr, with an exit status; ``details`` (a
    traceback) are printed before that line."""

    def __init__(self, message: str, status: int = EXIT_USAGE, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.details = details


# -- argument parsing ---------------------------------------------------------------


# What JSON text starts with, apart from true/false/null: an object, an array, a string,
# a number. A word that starts otherwise (echo, user.created, NaN) is a string.
_STARTS_LIKE_JSON = re.compile(r"\s*(?:[{\[\"0-9]|-[0-9])")


def parse_value(text: str, name: str = "value") -> Any:
    """``text`` as JSON when it parses, else as a string; but text that starts like JSON
    (``{``, ``[``, a quote, a digit, ``-`` and a digit) and does not parse is an error
    naming where it breaks (``--string`` sends such text as a string)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        if _STARTS_LIKE_JSON.match(text):
            raise CliError(f"{name} starts like JSON but is not JSON: {exc.msg} at position {exc.pos} "
                           f"(line {exc.lineno} column {exc.colno}) of {text!r}; "
                           "pass --string to send it as a string") from None
        return text
    except ValueError:  # NaN, Infinity: not JSON, sent as the words they are
        return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_option(text: str, option: str) -> Any:
    """Strict JSON for options such as ``--metadata``: a clear error when it is not."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise CliError(f"{option} is not valid JSON ({exc}): {text!r}") from None


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:3000`` for IPv6); the host defaults to localhost."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = "localhost"
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        host = "localhost"
    try:
        port = int(port_text)
    except ValueError:
        raise CliError(f"bad address {text!r}: expected [HOST:]PORT, e.g. 3000 or 127.0.0.1:3000") from None
    if not 0 < port < 65536:
        raise CliError(f"bad address {text!r}: port must be between 1 and 65535")
    return host, port


def _keepalive(text: str) -> Keepalive | bool:
    """``on``, ``off``, or ``IDLE,INTERVAL,COUNT`` in seconds and probes."""
    if text in ("on", "off"):
        return text == "on"
    try:
        idle, interval, count = (int(part) for part in text.split(","))
        return Keepalive(idle, interval, count)
    except (ValueError, LocalProtocolError):
        raise argparse.ArgumentTypeError(
            f"expected on, off or IDLE,INTERVAL,COUNT (positive whole numbers), e.g. 60,10,6: {text!r}"
        ) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535: {text!r}")
    return port


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line and our usage exit status."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _add_tls(parser: argparse.ArgumentParser, server: bool) -> None:
    group = parser.add_argument_group("TLS")
    if server:
        group.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate (chain)")
        group.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert (if not in it)")
        group.add_argument("--tls-ca", metavar="PEM", help="require client certificates signed by this CA (mutual TLS)")
        group.add_argument("--insecure", action="store_true",
                           help="with --tls-ca: ask for a client certificate but do not require one")
    else:
        group.add_argument("--tls-ca", metavar="PEM", help="use TLS; trust this CA (default: the system's)")
        group.add_argument("--tls-cert", metavar="PEM", help="use TLS; present this client certificate (mutual TLS)")
        group.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert (if not in it)")
        group.add_argument("--insecure", action="store_true",
                           help="use TLS without verifying the server's certificate or name")
        group.add_argument("--server-name", metavar="NAME",
                           help="name to verify in the server's certificate (default: HOST)")


def _add_client_args(parser: argparse.ArgumentParser, *, data: bool = True, timeout: bool = True) -> None:
    parser.add_argument("address", metavar="[HOST:]PORT", help="where the service listens (host defaults to localhost)")
    parser.add_argument("pattern", metavar="PATTERN",
                        help='the message pattern; JSON if it parses (\'{"cmd":"sum"}\', 42), else a string')
    if data:
        parser.add_argument("data", metavar="DATA", nargs="?", default="null",
                            help="the payload; JSON if it parses, else a string; text that starts like JSON "
                            "({ [ \" digit) must parse (default: null)")
        parser.add_argument("--string", action="store_true",
                            help="send DATA as a string, whatever it looks like (e.g. 2024-01-01, [draft])")
    parser.add_argument("--metadata", metavar="JSON", help="metadata to attach (NestJS 12 reads it with ctx.getMetadata())")
    if timeout:
        parser.add_argument("--timeout", type=arguments.positive_seconds, default=30.0, metavar="SECONDS",
                            help="give up when no (final) reply came after this long (default: 30)")
    parser.add_argument("--connect-timeout", type=arguments.positive_seconds, default=10.0, metavar="SECONDS",
                        help="give up connecting after this long (default: 10)")
    _add_tls(parser, server=False)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(
        prog=PROG,
        description="Talk to NestJS TCP microservices (frames <N>#<json>), serve a Python router, or watch a demo.",
        epilog="Exit status: 0 ok, 1 the server answered with an error (its err as JSON on stderr), "
        "2 bad arguments, 3 cannot connect / connection lost, 4 timeout, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("send", help="send a request and print its reply as JSON",
                       description="Send a request; print the reply as JSON on stdout. On an error reply, "
                       "print the remote err as JSON on stderr and exit 1.")
    _add_client_args(p)
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("stream", help="send a request and print each streamed value as it arrives",
                       description="Send a request; print each value of the (streamed) reply on its own line "
                       "as JSON, as soon as it arrives.")
    _add_client_args(p)
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("emit", help="send an event (no reply)",
                       description="Send an event (a packet without id: the server answers nothing).")
    _add_client_args(p, timeout=False)
    p.set_defaults(func=cmd_emit)

    p = sub.add_parser("bench", help="load-test a service: requests/s, latency percentiles, errors",
                       description=bench.DESCRIPTION)
    _add_client_args(p)
    bench.add_arguments(p)
    p.set_defaults(func=bench.cmd_bench)

    p = sub.add_parser("serve", help="serve a Router from a Python module",
                       description="Serve a sansio_tcpmsg.Router found in a Python module until Ctrl-C or SIGTERM. "
                       "Prints 'listening on HOST:PORT' on stdout once bound; logs connections and errors on stderr.")
    p.add_argument("target", metavar="MODULE[:ROUTER]",
                   help="module (dotted name, or a path to a .py file) and the router's name in it (default: router)")
    p.add_argument("--host", default="localhost", help="interface to listen on (default: localhost)")
    p.add_argument("--port", type=_port, default=3000, help="port to listen on; 0 picks a free one (default: 3000)")
    p.add_argument("--binding", choices=BINDINGS, default="threads", help="the I/O binding to serve with (default: threads)")
    p.add_argument("--max-connections", type=int, default=None, metavar="N", help="close connections over this many")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging level on stderr (default: INFO)")
    group = p.add_argument_group("deployment")
    group.add_argument("--workers", type=arguments.count, default=1, metavar="N",
                       help="run N worker processes sharing the port (SO_REUSEPORT); a worker that dies is "
                       "restarted, SIGTERM/SIGINT drain them all (default: 1, no worker process)")
    group.add_argument("--reuse-port", action="store_true",
                       help="set SO_REUSEPORT so that other processes may listen on the same port")
    group.add_argument("--proxy-protocol", action="store_true",
                       help="every connection begins with a PROXY protocol header (v1 or v2) from a balancer; "
                       "handlers see the original client's address; connections without one are refused")
    group.add_argument("--keepalive", type=_keepalive, default=True, metavar="on|off|IDLE,INTERVAL,COUNT",
                       help="TCP keepalive on accepted connections (default: on, 60,10,6)")
    group.add_argument("--grace", type=arguments.seconds, default=5.0, metavar="SECONDS",
                       help="on SIGTERM/SIGINT, how long in-flight requests may take to finish (default: 5)")
    group.add_argument("--drain-delay", type=arguments.seconds, default=0.0, metavar="SECONDS",
                       help="on SIGTERM/SIGINT, first answer health checks with 'draining' for this long while "
                       "serving as usual, so a balancer stops sending (default: 0)")
    p.add_argument("--monkey-patch", action="store_true",
                   help="with --binding gevent: run gevent.monkey.patch_all() before the module is "
                   "imported, so that blocking calls in handlers (time.sleep, sockets, database "
                   "drivers) yield to other greenlets instead of stopping the whole server")
    _add_tls(p, server=True)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ping", help="health probe: exit 0 if a server answers a request",
                       description=f"Send a health request ({HEALTH_ROUTE!r}) and wait for the answer. Exit 0 when "
                       "a server answers (ours say 'serving'; a NestJS server answers that it has no such handler, "
                       "which proves it alive too), 1 when it answers that it is draining, 3 when it cannot be "
                       "reached, 4 on timeout. For Kubernetes exec probes and scripts.")
    p.add_argument("address", metavar="[HOST:]PORT", help="where the service listens (host defaults to localhost)")
    p.add_argument("--timeout", type=arguments.positive_seconds, default=5.0, metavar="SECONDS",
                   help="give up after this long, connecting included (default: 5)")
    _add_tls(p, server=False)
    p.set_defaults(func=cmd_ping)

    p = sub.add_parser("demo", help="serve a built-in example service and call it, showing the frames",
                       description="Serve a small example service on a free loopback port and send it real "
                       "requests (a reply, a stream, an event, an error, a missing handler) through a relay that "
                       "prints every byte each side writes.")
    _add_tls(p, server=True)
    p.set_defaults(func=_cmd_demo)
    return parser


def _version() -> str:
    from sansio_tcpmsg import __version__

    return __version__


# -- TLS ------------------------------------------------------------------------------


def _tls_files(args: argparse.Namespace) -> None:
    for option in ("tls_ca", "tls_cert", "tls_key"):
        path = getattr(args, option, None)
        if path is not None and not os.path.isfile(path):
            raise CliError(f"--{option.replace('_', '-')}: no such file: {path}")


def client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client's TLS context, or None when no TLS option was given."""
    if not (args.tls_ca or args.tls_cert or args.tls_key or args.insecure):
        return None
    _tls_files(args)
    if args.tls_key and not args.tls_cert:
        raise CliError("--tls-key needs --tls-cert")
    try:
        context = ssl.create_default_context(cafile=args.tls_ca)
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if args.tls_cert:
            context.load_cert_chain(args.tls_cert, args.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise CliError(f"cannot load TLS files: {_oserror_text(exc)}") from None
    return context


def server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context, or None when no TLS option was given."""
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    _tls_files(args)
    if not args.tls_cert:
        raise CliError("serving TLS needs --tls-cert (and --tls-key unless the key is in it)")
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            context.load_verify_locations(args.tls_ca)
            context.verify_mode = ssl.CERT_OPTIONAL if args.insecure else ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as exc:
        raise CliError(f"cannot load TLS files: {_oserror_text(exc)}") from None
    return context


def _oserror_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


# -- client commands ------------------------------------------------------------------


@contextmanager
def _client(args: argparse.Namespace, timeout: float | None) -> Iterator[Any]:
    import tcpmsg_threads

    host, port = parse_address(args.address)
    tls = client_tls(args)
    kwargs: dict[str, Any] = {"tls": tls, "timeout": timeout, "connect_timeout": args.connect_timeout}
    if tls is not None and args.server_name:
        kwargs["server_hostname"] = args.server_name
    client = tcpmsg_threads.connect(host, port, **kwargs)
    try:
        client.connect()
    except OSError as exc:  # its message names the address (sansio_tcpmsg.diagnose)
        raise CliError(_oserror_text(exc), EXIT_CONNECTION) from None
    except TcpMsgError as exc:  # pragma: no cover - connect raises OSErrors
        raise CliError(f"cannot connect to {_host_port(host, port)}: {exc}", EXIT_CONNECTION) from None
    try:
        yield client
    finally:
        try:
            client.close()
        except Exception:  # closing must not hide what happened  # pragma: no cover
            log.debug("error while closing the client", exc_info=True)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _call_args(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    if args.metadata is not None:
        kwargs["metadata"] = parse_json_option(args.metadata, "--metadata")
    data = args.data if args.string else parse_value(args.data, "DATA")
    return parse_value(args.pattern, "PATTERN"), data, kwargs


def cmd_send(args: argparse.Namespace) -> int:
    pattern, data, kwargs = _call_args(args)
    with _client(args, args.timeout) as client, _calling(args):
        value = client.send(pattern, data, **kwargs)
    say(dumps(value))
    return EXIT_OK


def cmd_stream(args: argparse.Namespace) -> int:
    pattern, data, kwargs = _call_args(args)
    with _client(args, args.timeout) as client, _calling(args):
        for value in client.stream(pattern, data, **kwargs):
            say(dumps(value))
    return EXIT_OK


def cmd_emit(args: argparse.Namespace) -> int:
    pattern, data, kwargs = _call_args(args)
    with _client(args, None) as client, _calling(args):
        client.emit(pattern, data, **kwargs)
    return EXIT_OK


def cmd_ping(args: argparse.Namespace) -> int:
    args.connect_timeout = args.timeout
    with _client(args, args.timeout) as client, _calling(args):
        try:
            value = client.send(HEALTH_ROUTE, None)
        except NoHandlerError:
            value = "alive (no health route: not a sansio-tcpmsg server)"
    say(value if isinstance(value, str) else dumps(value))
    return EXIT_OK


class RemoteFailure(Exception):
    """The server answered with ``err``; printed as JSON on stderr, exit status 1."""

    def __init__(self, error: Any) -> None:
        super().__init__(error)
        self.error = error


@contextmanager
def _calling(args: argparse.Namespace) -> Iterator[None]:
    """Turn what a call raises into a one-line failure with its exit status."""
    try:
        yield
    except RemoteError as exc:
        raise RemoteFailure(exc.error) from None
    except TimeoutError as exc:  # RequestTimeout names the pattern and the timeout
        raise CliError(str(exc) or "timed out", EXIT_TIMEOUT) from None
    except ConnectionClosedError as exc:
        raise CliError(f"connection lost: {exc}" if str(exc) else "connection lost", EXIT_CONNECTION) from None
    except LocalProtocolError as exc:
        raise CliError(f"cannot send that: {exc}") from None
    except TcpMsgError as exc:
        raise CliError(f"{type(exc).__name__}: {exc}", EXIT_CONNECTION) from None
    except BrokenPipeError:
        raise  # our stdout went away (e.g. piped into head): main() ends quietly
    except OSError as exc:
        raise CliError(f"connection failed: {_oserror_text(exc)}", EXIT_CONNECTION) from None


# -- serve ----------------------------------------------------------------------------


def load_router(target: str) -> Router:
    """The Router named by ``MODULE[:ROUTER]``; MODULE may be a path to a .py file."""
    module_name, _, attr = target.partition(":")
    attr = attr or "router"
    if not module_name:
        raise CliError(f"bad target {target!r}: expected MODULE[:ROUTER], e.g. myapp.service:router")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise CliError(f"no such file: {module_name}")
        sys.path.insert(0, str(path.resolve().parent))
        module_name = path.stem
    else:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise CliError(f"cannot import {module_name!r}: {exc}") from None  # it is not there
        raise CliError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}",
                       details=_user_traceback(exc)) from None
    except Exception as exc:
        raise CliError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}",
                       details=_user_traceback(exc)) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from None
    if callable(obj) and not isinstance(obj, Router):
        try:
            obj = obj()
        except Exception as exc:
            raise CliError(f"calling {target} failed: {type(exc).__name__}: {exc}",
                           details=_user_traceback(exc)) from None
    if not isinstance(obj, Router):
        raise CliError(f"{target} is a {type(obj).__name__}, not a sansio_tcpmsg.Router")
    return obj


def _user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback from the user's code on: without this module's frame and the
    import machinery's."""
    machinery = (__file__, "<frozen importlib", os.path.dirname(importlib.__file__ or "") + os.sep)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(machinery):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _import_binding(name: str) -> Any:
    module = {"threads": "tcpmsg_threads", "gevent": "tcpmsg_gevent", "anyio": "tcpmsg_anyio", "trio": "tcpmsg_anyio"}[name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = {"threads": "", "gevent": "gevent", "anyio": "anyio", "trio": "trio"}[name]
        hint = f" (pip install 'sansio-tcpmsg[{extra}]')" if extra else ""
        raise CliError(f"the {name} binding is not available: {exc}{hint}") from None


def _listening(host: str, port: int, routes: list[str]) -> None:
    # The first line on stdout, so that scripts and tests can read the bound port.
    say(f"listening on {_host_port(host, port)}")
    log.info("serving %d route(s): %s", len(routes), ", ".join(routes) or "(none)")


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _gevent_monkey(args)
    if args.workers > 1:
        from .workers import run_workers

        load_router(args.target)  # a bad target fails here, once, rather than in every worker
        server_tls(args)
        try:
            return run_workers(args.target, args.workers, host=args.host, port=args.port, binding=args.binding,
                               grace=args.grace, drain_delay=args.drain_delay, serve_args=_worker_args(args))
        except (RuntimeError, OSError) as exc:
            raise CliError(f"cannot serve on {_host_port(args.host, args.port)}: {exc}", EXIT_CONNECTION) from None
    if os.environ.get("TCPMSG_PARENT_PID"):
        from .workers import stop_with_parent

        stop_with_parent(int(os.environ["TCPMSG_PARENT_PID"]))
    router = load_router(args.target)
    if args.binding == "gevent" and not args.monkey_patch and not _monkey_patched():
        log.warning(
            "handlers run in greenlets: a blocking call in one (time.sleep, a socket or database "
            "driver not made for gevent) stops every connection; pass --monkey-patch to run "
            "gevent.monkey.patch_all() first, or patch in your module before its other imports")
    tls = server_tls(args)
    limits = Limits(max_connections=args.max_connections) if args.max_connections else None
    binding = _import_binding(args.binding)
    kwargs: dict[str, Any] = {
        "tls": tls, "limits": limits, "grace": args.grace, "drain_delay": args.drain_delay,
        "proxy_protocol": args.proxy_protocol, "reuse_port": args.reuse_port, "keepalive": args.keepalive,
    }
    try:
        if args.binding == "threads":
            _serve_threads(binding, router, args, kwargs)
        elif args.binding == "gevent":
            _serve_gevent(binding, router, args, kwargs)
        else:
            import anyio

            backend = "trio" if args.binding == "trio" else "asyncio"
            anyio.run(_serve_anyio, binding, router, args, kwargs, backend=backend)
    except OSError as exc:
        why = _oserror_text(exc)  # a bind error names the address already (diagnose.listen_error)
        where = _host_port(args.host, args.port)
        raise CliError(why if where in why else f"cannot serve on {where}: {why}", EXIT_CONNECTION) from None
    except UnsupportedHandler as exc:  # e.g. an async def handler for --binding threads
        raise CliError(str(exc), EXIT_USAGE) from None
    log.info("stopped")
    return EXIT_OK


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The options every worker of ``--workers`` is started with, besides the shared ones."""
    out = ["--log-level", args.log_level]
    if args.max_connections:
        out += ["--max-connections", str(args.max_connections)]
    if args.proxy_protocol:
        out.append("--proxy-protocol")
    keepalive = args.keepalive
    if keepalive is not True:
        out += ["--keepalive", "off" if keepalive is False else f"{keepalive.idle},{keepalive.interval},{keepalive.count}"]
    for option in ("tls_cert", "tls_key", "tls_ca"):
        if getattr(args, option):
            out += [f"--{option.replace('_', '-')}", os.path.abspath(getattr(args, option))]
    if args.insecure:
        out.append("--insecure")
    if args.monkey_patch:
        out.append("--monkey-patch")
    return out


def _gevent_monkey(args: argparse.Namespace) -> None:
    """``--monkey-patch``: patch the standard library before the user's module is imported."""
    if not args.monkey_patch:
        return
    if args.binding != "gevent":
        raise CliError("--monkey-patch is for --binding gevent")
    try:
        monkey: Any = importlib.import_module("gevent.monkey")
    except ImportError as exc:
        raise CliError(f"the gevent binding is not available: {exc} (pip install 'sansio-tcpmsg[gevent]')") from None
    monkey.patch_all()
    log.info("standard library monkey-patched by gevent")


def _monkey_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def _serve_threads(binding: Any, router: Router, args: argparse.Namespace, kwargs: dict[str, Any]) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with binding.serve(router, args.host, args.port, **kwargs) as server:
            _listening(server.host, server.port, router.routes)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_gevent(binding: Any, router: Router, args: argparse.Namespace, kwargs: dict[str, Any]) -> None:
    gevent: Any = importlib.import_module("gevent")
    gevent_event: Any = importlib.import_module("gevent.event")
    stop = gevent_event.Event()

    def on_signal(signum: int) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    handlers = [gevent.signal_handler(sig, on_signal, sig) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        with binding.serve(router, args.host, args.port, **kwargs) as server:
            _listening(server.host, server.port, router.routes)
            stop.wait()
    finally:
        for handler in handlers:
            handler.cancel()


async def _serve_anyio(binding: Any, router: Router, args: argparse.Namespace, kwargs: dict[str, Any]) -> None:
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with binding.serve(router, args.host, args.port, **kwargs) as server:
            _listening(server.host, server.port, router.routes)
            async for signum in signals:
                log.info("%s received, stopping", signal.Signals(signum).name)
                break


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # the demo's service and relay load only when asked for

    return run_demo(args)


# -- entry point ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CliError as exc:
        if exc.details:
            sys.stderr.write(exc.details)
        say(f"{PROG}: error: {exc}", sys.stderr)
        return exc.status
    except RemoteFailure as exc:
        say(dumps(exc.error), sys.stderr)
        return EXIT_REMOTE
    except KeyboardInterrupt:
        say(f"{PROG}: interrupted", sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout went away (e.g. piped into head): nothing more to say.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep the interpreter's flush quiet
        except OSError:  # pragma: no cover
            pass
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
