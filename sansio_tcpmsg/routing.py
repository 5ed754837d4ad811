"""Handlers keyed by route, registered with decorators, as NestJS controllers are."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .frozen import fast_init
from .patterns import normalize_pattern

__all__ = ["Context", "Handler", "Middleware", "Router"]

Handler = Callable[[Any, "Context"], Any]
"""A handler as the bindings call it: ``handler(data, ctx)``."""

Middleware = Callable[[Any, "Context", Handler], Any]
"""``middleware(data, ctx, call_next)``: returns ``call_next(data, ctx)`` or its own value
(on anyio an ``async def`` that awaits ``call_next``)."""

# A handler and the middleware stacks around it, outermost first. The stacks are the
# routers' own lists, so middleware added after a handler still wraps it.
_Entry = tuple[Handler, tuple[list[Middleware], ...]]

F = TypeVar("F", bound=Callable[..., Any])


@fast_init
@dataclass(frozen=True, slots=True)
class Context:
    """What a handler knows about the packet besides its data (NestJS ``TcpContext``)."""

    #: The pattern as the client sent it (a string, a number or an object).
    pattern: Any
    #: The route the pattern normalizes to, or None when it cannot be routed.
    route: str | None
    #: The ``metadata`` a NestJS 12 client attached, or None.
    metadata: Any
    #: Who sent it: whatever the binding passed, usually the peer's (host, port).
    peer: Any
    #: True for an event (``emit``: no reply), False for a request; middleware that
    #: count or trace calls tell them apart by it.
    is_event: bool = False


def _with_context(func: Callable[..., Any]) -> Handler:
    """Adapt a handler that declares only ``data`` to the ``(data, ctx)`` call."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return func
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params):
        return func

    @functools.wraps(func)  # keeps ``__wrapped__``: bindings see an async handler as async
    def call(data: Any, ctx: Context) -> Any:
        return func(data)

    return call


class Router:
    """Message and event handlers by route.

    >>> router = Router()
    >>> @router.message({"cmd": "sum"})
    ... def add(data, ctx):
    ...     return sum(data)

    One message handler per route, the last registered wins; every event handler of a
    route runs, in the order they were registered (both as in NestJS).
    """

    def __init__(self) -> None:
        self._middleware: list[Middleware] = []
        self._messages: dict[str, _Entry] = {}
        self._events: dict[str, tuple[_Entry, ...]] = {}

    def message(self, pattern: Any) -> Callable[[F], F]:
        """Decorator: ``func`` answers requests whose pattern normalizes like ``pattern``."""
        route = normalize_pattern(pattern)

        def register(func: F) -> F:
            self._messages[route] = (_with_context(func), (self._middleware,))
            return func

        return register

    def event(self, pattern: Any) -> Callable[[F], F]:
        """Decorator: ``func`` runs for events whose pattern normalizes like ``pattern``."""
        route = normalize_pattern(pattern)

        def register(func: F) -> F:
            entry = (_with_context(func), (self._middleware,))
            self._events[route] = (*self._events.get(route, ()), entry)
            return func

        return register

    def use(self, middleware: Middleware) -> Middleware:
        """Wrap every handler of this router, requests and events, in ``middleware``.

        Called as ``middleware(data, ctx, call_next)``; it returns ``call_next(data, ctx)``
        (on anyio: ``await call_next(data, ctx)``) or a value of its own, and may change
        ``data`` or the result, or raise (an :class:`~sansio_tcpmsg.RpcError` answers the
        caller). The first registered is the outermost. Usable as a decorator.
        """
        self._middleware.append(middleware)
        return middleware

    def include(self, other: Router) -> None:
        """Add every handler of ``other`` to this router, as if registered here now.

        ``other``'s handlers keep ``other``'s middleware, inside this router's own.
        """
        for route, (handler, stacks) in other._messages.items():
            self._messages[route] = (handler, (self._middleware, *stacks))
        for route, entries in other._events.items():
            added = tuple((handler, (self._middleware, *stacks)) for handler, stacks in entries)
            self._events[route] = (*self._events.get(route, ()), *added)

    def message_handler(self, route: str | None) -> Handler | None:
        """The handler for requests on ``route``, if any (without middleware)."""
        entry = self._messages.get(route) if route is not None else None
        return None if entry is None else entry[0]

    def event_handlers(self, route: str | None) -> tuple[Handler, ...]:
        """The handlers for events on ``route``, in order, possibly none (without middleware)."""
        entries = self._events.get(route, ()) if route is not None else ()
        return tuple(handler for handler, _ in entries)

    @property
    def routes(self) -> list[str]:
        """Every route with a message or event handler."""
        return sorted({*self._messages, *self._events})
