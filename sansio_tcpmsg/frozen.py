"""A cheaper ``__init__`` for the frozen dataclasses the core makes once per request or reply.

A frozen dataclass's generated ``__init__`` sets each field with
``object.__setattr__(self, "name", value)``, a lookup by name per field (0.42 µs for
:class:`~sansio_tcpmsg.Context`'s five). With slots, each field's slot descriptor can set
it directly (0.26 µs). The instance stays exactly as frozen: assigning a field afterwards
still raises ``FrozenInstanceError``, and the parameters, defaults, ``repr``, equality
and hashing are the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

_T = TypeVar("_T")


def fast_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass without ``__post_init__`` or default factories
    an ``__init__`` that sets its slots directly (apply above ``@dataclass``)."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    for f in fields:
        if f.default_factory is not dataclasses.MISSING or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init takes plain fields only")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init cannot call __post_init__")
    namespace: dict[str, Any] = {}
    params, body = [], []
    for i, f in enumerate(fields):
        namespace[f"_set{i}"] = cls.__dict__[f.name].__set__  # the slot's own descriptor
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
        body.append(f"    _set{i}(self, {f.name})\n")
    exec(f"def __init__(self, {', '.join(params)}):\n{''.join(body) or '    pass'}\n", namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
