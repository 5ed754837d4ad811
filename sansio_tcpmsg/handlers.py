"""What a handler is, which binding runs it, and what its result means: decided once.

Every binding and :mod:`sansio_tcpmsg.testing` follow the same table:

==========================================  ===================  ======================
handler                                     threads, gevent      anyio
==========================================  ===================  ======================
plain function returning a value            the reply            the reply (worker
                                                                 thread)
plain function returning an iterator        streams each item    streams each item
generator function                          streams              streams
``async def`` returning a value             refused at serve     the reply
                                            time (``TypeError``)
async generator function                    refused at serve     streams
                                            time
==========================================  ===================  ======================

A list, tuple, dict or string is one value, never a stream. A binding builds a
:class:`Handlers` from the router when it is served (:class:`UnsupportedHandler`, a
``TypeError``, for a kind it cannot run, naming the handler and its route), then calls what
:meth:`Handlers.message_handler` gives it; :class:`~sansio_tcpmsg.ServerConnection`
turns the result or the exception into the reply (``handler_returned``,
``handler_raised``), and the binding only decides where the code runs and how it waits.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .routing import Context, Handler, Middleware, Router

__all__ = [
    "Family",
    "Handlers",
    "Kind",
    "Stream",
    "UnsupportedHandler",
    "aclose",
    "close",
    "on_finish",
    "describe",
    "watching",
    "watching_async",
    "family_of",
    "kind_of",
    "log",
    "stream_of",
]

#: The server's logger: handler failures (ERROR, with traceback), events nobody handles
#: (WARNING), and one DEBUG line per request and per event.
log = logging.getLogger("tcpmsg.server")


class UnsupportedHandler(TypeError):
    """A handler or middleware the binding cannot run: raised by ``serve(...)``."""


class Kind(enum.Enum):
    """How a handler (or a middleware) is written."""

    PLAIN = "plain function"
    GENERATOR = "generator function"
    ASYNC = "async def"
    ASYNC_GENERATOR = "async generator function"


class Family(enum.Enum):
    """The two families of bindings, by what they can run."""

    #: tcpmsg_threads, tcpmsg_gevent: plain functions and generators.
    SYNC = "sync"
    #: tcpmsg_anyio: every kind; plain functions and generators run in worker threads.
    ASYNC = "async"


_RUNS: Mapping[Family, frozenset[Kind]] = {
    Family.SYNC: frozenset({Kind.PLAIN, Kind.GENERATOR}),
    Family.ASYNC: frozenset(Kind),
}
# What each family calls a middleware with: a plain function, or an async def it awaits.
_MIDDLEWARE: Mapping[Family, Kind] = {Family.SYNC: Kind.PLAIN, Family.ASYNC: Kind.ASYNC}
_SAYS: Mapping[Family, str] = {
    Family.SYNC: "runs plain functions and generators",
    Family.ASYNC: "runs async def middleware (await call_next(data, ctx))",
}


def kind_of(func: Callable[..., Any]) -> Kind:
    """The kind of ``func``, seen through ``functools.wraps`` decorators, the router's
    one-argument adapter, ``functools.partial`` and objects with a ``__call__``."""
    fn = inspect.unwrap(func)
    if not (inspect.isroutine(fn) or isinstance(fn, functools.partial)):
        fn = getattr(fn, "__call__", fn)  # an object: its method says (inspect sees partials)
    if inspect.isasyncgenfunction(fn):
        return Kind.ASYNC_GENERATOR
    if inspect.isgeneratorfunction(fn):
        return Kind.GENERATOR
    if inspect.iscoroutinefunction(fn):
        return Kind.ASYNC
    return Kind.PLAIN


def describe(func: Callable[..., Any]) -> str:
    """``"async def handler app.svc.add"``: its kind and where it is defined."""
    fn = inspect.unwrap(func)
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{kind_of(func).value} {module}.{name}"


class Stream(enum.Enum):
    """A result that streams: the binding drains it, one ``send_item`` per item."""

    #: An iterator (a generator, ``iter(...)``, ``map(...)``): drained where blocking is fine.
    ITEMS = "iterator"
    #: An async iterator (an async generator): drained in the event loop.
    ASYNC_ITEMS = "async iterator"


# Results that are one value for sure, told apart without the (slower) ABC checks (the
# server's reply path tests it itself before calling stream_of).
_VALUES = frozenset({dict, list, str, int, float, bool, type(None), tuple, bytes})


def stream_of(result: Any, family: Family | None = None) -> Stream | None:
    """None if ``result`` is one value (the reply), else how it streams.

    Raises :class:`TypeError` for an awaitable (a plain function that returned a
    coroutine: declare it ``async def``) and, on the sync family, an async iterator.
    """
    if type(result) in _VALUES:
        return None
    if isinstance(result, Iterator):
        return Stream.ITEMS
    if isinstance(result, AsyncIterator):
        if family is Family.SYNC:
            raise TypeError(
                f"{type(result).__name__} returned: an async iterator needs tcpmsg_anyio;"
                f" this binding {_SAYS[Family.SYNC]}"
            )
        return Stream.ASYNC_ITEMS
    if isinstance(result, Awaitable):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # no "never awaited" warning on top of this error
        raise TypeError(
            f"{type(result).__name__} returned by a plain function: declare the handler"
            " async def (decorators must keep functools.wraps) and serve it with tcpmsg_anyio"
        )
    return None


def family_of(router: Router) -> Family:
    """The family a router needs: ASYNC if any handler or middleware is ``async``."""
    entries = [*router._messages.values(), *(e for es in router._events.values() for e in es)]
    funcs: list[Callable[..., Any]] = list(router._middleware)  # even with no handler yet
    for handler, stacks in entries:
        funcs += [handler, *_flatten(stacks)]
    asynchronous = any(kind_of(f) in (Kind.ASYNC, Kind.ASYNC_GENERATOR) for f in funcs)
    return Family.ASYNC if asynchronous else Family.SYNC


def close(items: Iterator[Any]) -> None:
    """Close an iterator a binding stops draining early (a generator's ``finally`` runs)."""
    method = getattr(items, "close", None)
    if method is not None:
        method()


async def aclose(items: AsyncIterator[Any]) -> None:
    """Close an async iterator a binding stops draining (an async generator's ``finally``
    runs; one without ``aclose`` has nothing to close)."""
    method = getattr(items, "aclose", None)
    if method is not None:
        await method()


def on_finish(result: Any, done: Callable[[BaseException | None], object]) -> Any:
    """What a middleware returns to learn when a call is over (timing, spans, gauges).

    For one value: ``done(None)`` at once, and ``result`` itself. For a stream (see
    :func:`stream_of`): an iterator, or async iterator, of the same items that calls
    ``done`` once, after the last item (``None``), when getting an item raised (the
    exception, which still propagates), or when the binding stops early (``None``).
    """
    stream = stream_of(result)
    if stream is None:
        done(None)
        return result
    if stream is Stream.ITEMS:
        return _watched(result, done)
    return _watched_async(result, done)


def _watched(items: Iterator[Any], done: Callable[[BaseException | None], object]) -> Iterator[Any]:
    error: BaseException | None = None
    try:
        for item in items:
            yield item
    except GeneratorExit:  # closed early: the caller left, not a failure
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        close(items)
        done(error)


async def _watched_async(
    items: AsyncIterator[Any], done: Callable[[BaseException | None], object]
) -> AsyncIterator[Any]:
    error: BaseException | None = None
    try:
        async for item in items:
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        await aclose(items)
        done(error)


Watch = Callable[["Context"], Generator[None, Any, Any]]
"""What a middleware does around ``call_next``, as a generator function of ``ctx``: the code
before its one ``yield`` runs first; the ``yield`` gives the call's result, or raises the
call's exception (let it propagate); what it returns is the middleware's result."""


def watching(watch: Watch) -> Middleware:
    """A sync middleware (threads, gevent) made of ``watch``: one body serves both
    :func:`watching` and :func:`watching_async`, as spans and metrics need."""

    def middleware(data: Any, ctx: Context, call_next: Handler) -> Any:
        steps = watch(ctx)
        next(steps)
        try:
            result = call_next(data, ctx)
        except BaseException as exc:
            _thrown(steps, exc)
            raise
        return _sent(steps, result)

    return middleware


def watching_async(watch: Watch) -> Callable[[Any, Context, Handler], Awaitable[Any]]:
    """The async middleware (anyio) made of ``watch``: as :func:`watching`, awaited."""

    async def middleware(data: Any, ctx: Context, call_next: Handler) -> Any:
        steps = watch(ctx)
        next(steps)
        try:
            result = await call_next(data, ctx)
        except BaseException as exc:
            _thrown(steps, exc)
            raise
        return _sent(steps, result)

    return middleware


def _thrown(steps: Generator[None, Any, Any], exc: BaseException) -> None:
    try:
        steps.throw(exc)  # a watch that lets it propagate raises it from here
    except StopIteration:
        return  # it returned instead: the call's exception still propagates
    steps.close()
    raise RuntimeError("a watch yielded twice; it must yield once") from exc


def _sent(steps: Generator[None, Any, Any], result: Any) -> Any:
    try:
        steps.send(result)
    except StopIteration as done:
        return done.value
    steps.close()
    raise RuntimeError("a watch yielded twice; it must yield once")


def _link(middleware: Middleware, call_next: Handler) -> Handler:
    def call(data: Any, ctx: Context) -> Any:
        return middleware(data, ctx, call_next)

    return call


def _chain(middleware: Sequence[Middleware], innermost: Handler) -> Handler:
    """``innermost`` wrapped by ``middleware``, the first one outermost."""
    for one in reversed(middleware):
        innermost = _link(one, innermost)
    return innermost


def _flatten(stacks: Sequence[Sequence[Middleware]]) -> list[Middleware]:
    return [one for stack in stacks for one in stack]


class Handlers:
    """A router's handlers as one binding runs them: checked, each wrapped in its middleware.

    ``family`` says what the binding can run (``binding`` is its name, for messages);
    ``invoke`` maps a kind to how the binding calls a handler of that kind (default: as
    is), e.g. anyio runs a plain function in a worker thread. Raises
    :class:`UnsupportedHandler` (a ``TypeError``) at once for a handler or middleware the
    binding cannot run. Built once per server;
    :class:`~sansio_tcpmsg.ServerConnection` takes it in place of the router.
    """

    def __init__(
        self,
        router: Router,
        *,
        family: Family,
        binding: str,
        invoke: Mapping[Kind, Callable[[Handler], Handler]] | None = None,
    ) -> None:
        self.family = family
        self.binding = binding
        invoke = invoke or {}

        def prepare(route: str, handler: Handler, stacks: Sequence[Sequence[Middleware]]) -> Handler:
            kind = kind_of(handler)
            if kind not in _RUNS[family]:
                raise UnsupportedHandler(
                    f"{describe(handler)} for route {route!r} needs tcpmsg_anyio;"
                    f" {binding} {_SAYS[Family.SYNC]}"
                )
            middleware = _flatten(stacks)
            for one in middleware:
                if kind_of(one) is not _MIDDLEWARE[family]:
                    raise UnsupportedHandler(
                        f"middleware {describe(one)} (route {route!r}) cannot run on {binding},"
                        f" which {_SAYS[family]}"
                    )
            wrap = invoke.get(kind)
            return _chain(middleware, handler if wrap is None else wrap(handler))

        self._messages = {
            route: prepare(route, handler, stacks) for route, (handler, stacks) in router._messages.items()
        }
        self._events = {
            route: tuple(prepare(route, handler, stacks) for handler, stacks in entries)
            for route, entries in router._events.items()
        }

    def message_handler(self, route: str | None) -> Handler | None:
        """What to call for requests on ``route`` (middleware included), if anything."""
        return self._messages.get(route) if route is not None else None

    def event_handlers(self, route: str | None) -> tuple[Handler, ...]:
        """What to call, in order, for events on ``route`` (possibly nothing)."""
        return self._events.get(route, ()) if route is not None else ()
