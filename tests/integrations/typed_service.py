"""A typed service (tcpmsg_pydantic) served on every binding and to NestJS: models,
dataclasses, TypedDicts, datetimes, UUIDs and enums in and out, streams typed item by item."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from pydantic import BaseModel, Field
from tcpmsg_pydantic import TypedRouter
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Order(BaseModel):
    id: int
    items: list[str]
    placed: datetime.datetime
    color: Color = Color.RED
    ref: uuid.UUID | None = None


@dataclasses.dataclass
class Point:
    x: int
    y: Annotated[int, Field(ge=0)] = 0


class Span(TypedDict):
    start: datetime.date
    days: int


def build(asynchronous: bool = False) -> TypedRouter:
    router = TypedRouter()

    @router.message("order")
    def order(order: Order) -> Order:
        return order.model_copy(update={"id": order.id + 1, "ref": uuid.UUID(int=order.id)})

    @router.message("point")
    def point(p: Point, ctx: Any) -> dict[str, Any]:
        return {"point": p, "route": ctx.route, "at": datetime.datetime(2026, 1, 2, 3, 4, 5)}

    @router.message("span")
    def span(s: Span) -> datetime.date:
        return s["start"] + datetime.timedelta(days=s["days"])

    @router.message("total")
    def total(numbers: list[int]) -> int:
        return sum(numbers)

    @router.message("untyped")
    def untyped(data, ctx):  # type: ignore[no-untyped-def]  # registered as is
        return data

    @router.message("points")
    def points(n: int) -> Iterator[Point]:
        for i in range(n):
            yield Point(i, i * 2)

    if asynchronous:

        @router.message("later")
        async def later(when: datetime.datetime) -> datetime.datetime:
            return when + datetime.timedelta(hours=1)

        @router.message("colors")
        async def colors(n: int) -> AsyncIterator[Color]:
            for i in range(n):
                yield Color.RED if i % 2 == 0 else Color.BLUE
    else:

        @router.message("later")
        def later(when: datetime.datetime) -> datetime.datetime:  # type: ignore[misc]
            return when + datetime.timedelta(hours=1)

        @router.message("colors")
        def colors(n: int) -> Iterator[Color]:  # type: ignore[misc]
            for i in range(n):
                yield Color.RED if i % 2 == 0 else Color.BLUE

    return router
