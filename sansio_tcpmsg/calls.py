"""Client middleware: code around each ``send``, ``stream`` and ``emit`` of any client.

:func:`intercept` wraps a client of any binding (single or pooled)::

    def timing(call, call_next):
        started = time.perf_counter()
        try:
            return call_next(call)
        finally:
            log.info("%s took %.1f ms", call.pattern, (time.perf_counter() - started) * 1000)

    with intercept(tcpmsg_threads.connect(port=3000), timing) as client:
        client.send("sum", [1, 2])

A middleware is called as ``middleware(call, call_next)`` with a :class:`Call`; it returns
``call_next(call)`` (or ``call_next`` of a changed call, made with
``dataclasses.replace``), or a value of its own, and may call ``call_next`` again (a
retry). For a ``stream`` call, ``call_next`` gives the iterator. On anyio, middleware
are ``async def`` and await ``call_next(call)``; on threads and gevent, plain functions.
The first middleware is the outermost. Everything else (``status``, ``submit``,
``endpoints``, ...) is the wrapped client's, untouched. Metadata for every call is
simpler with the client's ``on_dispatch`` hook.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .handlers import Kind, aclose, describe, kind_of

__all__ = ["Call", "CallMiddleware", "Intercepted", "intercept"]


@dataclass(frozen=True, slots=True)
class Call:
    """One client call, as client middleware sees it."""

    #: ``"send"``, ``"stream"`` or ``"emit"``: the client method called.
    kind: str
    pattern: Any
    data: Any
    #: The call's keyword arguments (``timeout``, ``metadata``, ...), passed on as given.
    options: Mapping[str, Any]


CallMiddleware = Callable[[Call, Callable[[Call], Any]], Any]
"""``middleware(call, call_next)``; on anyio an ``async def`` awaiting ``call_next``."""


def _link(middleware: CallMiddleware, call_next: Callable[[Call], Any]) -> Callable[[Call], Any]:
    def call(one: Call) -> Any:
        return middleware(one, call_next)

    return call


# Per client family (async or not): the middleware kind it takes, and how to say so.
_KINDS = {
    True: (Kind.ASYNC, "an async client takes async def middleware (await call_next(call))"),
    False: (Kind.PLAIN, "a sync client takes plain function middleware"),
}


class Intercepted:
    """A client whose ``send``, ``stream`` and ``emit`` go through middleware (made by
    :func:`intercept`); usable as the client is, ``with`` or ``async with`` included."""

    def __init__(self, client: Any, middleware: tuple[CallMiddleware, ...]) -> None:
        self.client = client
        asynchronous = self._async = kind_of(client.send) is Kind.ASYNC
        wanted, says = _KINDS[asynchronous]
        for one in middleware:
            if kind_of(one) is not wanted:
                raise TypeError(f"client middleware {describe(one)} cannot wrap {type(client).__qualname__}: {says}")
        chain: Callable[[Call], Any] = self._perform_async if asynchronous else self._perform
        for one in reversed(middleware):
            chain = _link(one, chain)
        self._chain = chain

    def _perform(self, call: Call) -> Any:
        return getattr(self.client, call.kind)(call.pattern, call.data, **call.options)

    async def _perform_async(self, call: Call) -> Any:
        result = self._perform(call)
        return result if call.kind == "stream" else await result  # stream: an async iterator

    def send(self, pattern: Any, data: Any = None, **options: Any) -> Any:
        """The client's ``send`` through the middleware (awaitable on anyio)."""
        return self._chain(Call("send", pattern, data, options))

    def emit(self, pattern: Any, data: Any = None, **options: Any) -> Any:
        """The client's ``emit`` through the middleware (awaitable on anyio)."""
        return self._chain(Call("emit", pattern, data, options))

    def stream(self, pattern: Any, data: Any = None, **options: Any) -> Any:
        """The client's ``stream`` through the middleware: an iterator (async on anyio)."""
        result = self._chain(Call("stream", pattern, data, options))
        return _after(result) if self._async else result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def __enter__(self) -> Intercepted:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self.client.__exit__(*exc)

    async def __aenter__(self) -> Intercepted:
        await self.client.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        return await self.client.__aexit__(exc_type, exc, tb)


async def _after(pending: Any) -> AsyncIterator[Any]:
    """``async for`` over the iterator a chain of async middleware gives in the end."""
    items = await pending
    try:
        async for item in items:
            yield item
    finally:
        await aclose(items)  # leaving early cancels the request


def intercept(client: Any, *middleware: CallMiddleware) -> Intercepted:
    """``client`` (any binding's, single or pooled) with ``middleware`` around each
    ``send``, ``stream`` and ``emit``, the first outermost. Raises :class:`TypeError` for a
    middleware of the wrong kind (``async def`` for anyio clients, plain functions else)."""
    return Intercepted(client, middleware)
