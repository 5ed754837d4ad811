"""Typed payloads with pydantic: validated ``data`` in, serialized results out.

Install with ``pip install 'sansio-tcpmsg[pydantic]'``. Server side, a handler whose
``data`` parameter is annotated (a pydantic model, a dataclass, a ``TypedDict``,
``list[int]``, ``datetime``: anything :class:`pydantic.TypeAdapter` takes) receives it
validated and converted, and what it returns (or yields) is serialized to JSON-ready
values the same way (models, dataclasses, datetimes, UUIDs, enums)::

    from pydantic import BaseModel
    from tcpmsg_pydantic import TypedRouter

    class Order(BaseModel):
        id: int
        items: list[str]

    router = TypedRouter()          # or Router() and @typed under @router.message

    @router.message("orders.create")
    def create(order: Order) -> Order:
        return order

Invalid data never reaches the handler: the caller gets an application error
(``RemoteError.error``) of the NestJS ``ValidationPipe`` shape, with pydantic's errors::

    {"status": "error", "message": "Validation failed", "errors": [{"type": ..., "loc": [...],
     "msg": ..., "input": ...}, ...]}

Adapters are built once, when the handler is registered; a call costs one validation and
one serialization. Client side, :func:`typed_client` wraps any binding's client: models
and dataclasses are accepted as ``data``, and ``result_type=T`` gives the reply (or each
streamed item) validated as ``T``.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from collections import abc
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from sansio_tcpmsg import Router, RpcError
from sansio_tcpmsg.calls import Call, Intercepted, intercept
from sansio_tcpmsg.handlers import Kind, Stream, aclose, close, describe, kind_of, stream_of

__all__ = ["TypedRouter", "typed", "typed_client", "validation_error"]

F = TypeVar("F", bound=Callable[..., Any])

# What ``-> Iterator[X]`` and kin are to ``typing.get_origin`` (typing's aliases too).
_STREAM_ORIGINS = frozenset({
    abc.Iterator, abc.Iterable, abc.Generator, abc.AsyncIterator, abc.AsyncIterable, abc.AsyncGenerator,
})
# Values sent as they are: nothing in them for pydantic to convert.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def validation_error(exc: ValidationError) -> dict[str, Any]:
    """The error a caller gets for invalid data: NestJS's ``ValidationPipe`` shape with
    pydantic's errors (JSON-safe: what ``ValidationError.json()`` writes, without URLs)."""
    errors: list[Any] = json.loads(exc.json(include_url=False))
    return {"status": "error", "message": "Validation failed", "errors": errors}


def _hints(func: Callable[..., Any], localns: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved annotations; ``localns``: the namespace where the decorator was
    applied, for types defined in a function (``from __future__ import annotations``)."""
    target: Any = inspect.unwrap(func)
    if isinstance(target, functools.partial):
        target = target.func
    elif not inspect.isroutine(target):
        target = type(target).__call__  # an object with a __call__: its method's annotations
    try:
        return typing.get_type_hints(target, localns=localns)
    except Exception as exc:  # a NameError for a type defined out of reach, mostly
        raise TypeError(f"cannot read the annotations of {describe(func)}: {exc}") from None


def _parameters(func: Callable[..., Any]) -> tuple[str | None, bool]:
    """The name of the ``data`` parameter (first positional, if any) and whether the
    function also takes ``ctx``, as :class:`~sansio_tcpmsg.Router` decides it."""
    params = list(inspect.signature(func).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_ctx = len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)
    return (positional[0].name if positional else None), takes_ctx


def _item_type(annotation: Any) -> Any:
    """The item type of ``Iterator[X]`` and kin (what a streaming handler yields), or
    ``annotation`` itself."""
    if typing.get_origin(annotation) in _STREAM_ORIGINS:
        args = typing.get_args(annotation)
        return args[0] if args else Any
    return annotation


def _dumper(annotation: Any) -> Callable[[Any], Any]:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return _jsonable
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    return functools.partial(adapter.dump_python, mode="json")


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    return pydantic_core.to_jsonable_python(value)


def typed(func: F) -> F:
    """Wrap a handler so that its ``data`` is validated and its result serialized by
    pydantic, as its annotations say (register the result: put ``@typed`` under
    ``@router.message(...)`` or ``@router.event(...)``).

    The wrapper is of the handler's kind (plain, generator, ``async def``, async
    generator), so every binding runs it as it would run the handler. Raises
    :class:`TypeError` at once for annotations that cannot be resolved or that pydantic
    cannot build a schema for.
    """
    return _typed(func, sys._getframe(1).f_locals)


def _typed(func: F, localns: dict[str, Any]) -> F:
    hints = _hints(func, localns)
    data_name, takes_ctx = _parameters(func)
    data_type = hints.get(data_name, Any) if data_name is not None else Any
    try:
        validate = None if data_type is Any else TypeAdapter(data_type).validate_python
        dump = _dumper(_item_type(hints.get("return", Any)))
    except Exception as exc:
        raise TypeError(f"pydantic cannot use the annotations of {describe(func)}: {exc}") from None

    def convert(data: Any) -> Any:
        if validate is None:
            return data
        try:
            return validate(data)
        except ValidationError as exc:
            raise RpcError(validation_error(exc)) from None

    def call(data: Any, ctx: Any) -> Any:
        return func(convert(data), ctx) if takes_ctx else func(convert(data))

    def out(result: Any) -> Any:
        stream = stream_of(result)
        if stream is None:
            return dump(result)
        if stream is Stream.ITEMS:
            return _items(result, dump)
        return _async_items(result, dump)

    if kind_of(func) is Kind.ASYNC:

        async def handler(data: Any, ctx: Any) -> Any:
            return out(await call(data, ctx))
    else:  # plain functions, and (async) generator functions: calling them runs nothing yet

        def handler(data: Any, ctx: Any) -> Any:  # type: ignore[misc]
            return out(call(data, ctx))

    signature = inspect.signature(handler)  # (data, ctx): how the router is to call it
    wrapped = functools.wraps(func)(handler)  # the binding sees the handler's kind through it
    wrapped.__signature__ = signature  # type: ignore[attr-defined]  # not the wrapped one
    return typing.cast(F, wrapped)


def _items(items: Iterator[Any], dump: Callable[[Any], Any]) -> Iterator[Any]:
    try:
        for item in items:
            yield dump(item)
    finally:
        close(items)


async def _async_items(items: AsyncIterator[Any], dump: Callable[[Any], Any]) -> AsyncIterator[Any]:
    try:
        async for item in items:
            yield dump(item)
    finally:
        await aclose(items)


class TypedRouter(Router):
    """A :class:`~sansio_tcpmsg.Router` that applies :func:`typed` to every handler with
    annotations; a handler without any is registered as is (no cost added)."""

    def message(self, pattern: Any) -> Callable[[F], F]:
        """As :meth:`Router.message`, typed when annotated."""
        register = super().message(pattern)

        def typed_register(func: F) -> F:
            localns = sys._getframe(1).f_locals  # where the handler is defined
            register(_typed(func, localns) if _hints(func, localns) else func)
            return func

        return typed_register

    def event(self, pattern: Any) -> Callable[[F], F]:
        """As :meth:`Router.event`, typed when annotated."""
        register = super().event(pattern)

        def typed_register(func: F) -> F:
            localns = sys._getframe(1).f_locals  # where the handler is defined
            register(_typed(func, localns) if _hints(func, localns) else func)
            return func

        return typed_register


# -- the client side ---------------------------------------------------------------------

_NO_TYPE = object()


@functools.lru_cache(maxsize=256)
def _adapter(result_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(result_type)


def _prepare(call: Call) -> tuple[Call, TypeAdapter[Any] | None]:
    options = call.options
    result_type = options.get("result_type", _NO_TYPE)
    adapter = None
    if result_type is not _NO_TYPE:
        options = {k: v for k, v in options.items() if k != "result_type"}
        adapter = _adapter(result_type)
    return replace(call, data=_jsonable(call.data), options=options), adapter


def _sync_middleware(call: Call, call_next: Callable[[Call], Any]) -> Any:
    call, adapter = _prepare(call)
    result = call_next(call)
    if adapter is None or call.kind == "emit":
        return result
    if call.kind == "stream":
        return _items(result, adapter.validate_python)
    return adapter.validate_python(result)


async def _async_middleware(call: Call, call_next: Callable[[Call], Any]) -> Any:
    call, adapter = _prepare(call)
    result = await call_next(call)
    if adapter is None or call.kind == "emit":
        return result
    if call.kind == "stream":
        return _async_items(result, adapter.validate_python)
    return adapter.validate_python(result)


def typed_client(client: Any) -> Intercepted:
    """``client`` (any binding's, single or pooled, entered or not) taking models,
    dataclasses, datetimes, ... as ``data`` (serialized as pydantic does) and
    ``result_type=T`` on ``send`` and ``stream``: the reply, or each item, validated as
    ``T`` (a :class:`pydantic.ValidationError` when it is not one)::

        with typed_client(tcpmsg_threads.connect(port=3000)) as client:
            order = client.send("orders.create", Order(id=1, items=[]), result_type=Order)
    """
    asynchronous = kind_of(client.send) is Kind.ASYNC
    return intercept(client, _async_middleware if asynchronous else _sync_middleware)
