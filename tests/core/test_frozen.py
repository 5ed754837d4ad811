"""``fast_init``: the same frozen dataclass, built by setting its slots directly."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from sansio_tcpmsg import Context, RequestReceived, ResponseReceived
from sansio_tcpmsg.frozen import fast_init


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: Any = None


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: Any = None


def test_same_parameters_defaults_repr_equality_and_frozenness() -> None:
    assert inspect.signature(Fast) == inspect.signature(Plain)
    one, two = Fast(1), Fast(a=1, b=None)
    assert one == two and hash(one) == hash(two) and repr(one) == "Fast(a=1, b=None)"
    assert Fast(1, [2]).b == [2]
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]


def test_the_core_records_built_as_before() -> None:
    ctx = Context("echo", "echo", None, ("127.0.0.1", 1))
    assert ctx.is_event is False and ctx == Context(pattern="echo", route="echo", metadata=None,
                                                    peer=("127.0.0.1", 1), is_event=False)
    assert RequestReceived(1, {"n": 1}, ctx, print).context is ctx
    assert repr(ResponseReceived("1", 2)) == "ResponseReceived(request_id='1', value=2)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.route = "x"  # type: ignore[misc]


def test_refuses_what_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int = dataclasses.field(default=0, init=False)

    for cls in (WithFactory, WithPostInit, NotInInit):
        with pytest.raises(TypeError, match="fast_init"):
            fast_init(cls)
    assert Plain(1) == Plain(1, None)
