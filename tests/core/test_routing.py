"""Router: NestJS's registration rules."""

from __future__ import annotations

from typing import Any

from sansio_tcpmsg import Router
from sansio_tcpmsg.routing import Context

CTX = Context("p", "p", None, None)


def test_last_message_handler_wins_and_events_accumulate() -> None:
    router = Router()
    router.message("a")(lambda data: 1)
    router.message("a")(lambda data: 2)
    router.event({"k": 1})(lambda data: "first")
    router.event('{"k":1}')(lambda data, ctx: "second")
    handler = router.message_handler("a")
    assert handler is not None and handler(None, CTX) == 2
    assert [h(None, CTX) for h in router.event_handlers('{"k":1}')] == ["first", "second"]
    assert router.message_handler(None) is None and router.event_handlers(None) == ()
    assert router.routes == ["a", '{"k":1}']


def test_include_merges_routers() -> None:
    a, b = Router(), Router()
    a.event("e")(lambda data: 1)
    b.event("e")(lambda data: 2)
    b.message("m")(lambda data: 3)
    a.include(b)
    assert [h(None, CTX) for h in a.event_handlers("e")] == [1, 2]
    assert a.message_handler("m") is not None


def test_handler_arity_adaptation() -> None:
    router = Router()

    def star(*args: Any) -> Any:
        return args

    router.message("star")(star)
    router.message("builtin")(len)
    router.message("kw")(lambda data, ctx=None: ctx)
    assert router.message_handler("star") is star
    assert router.message_handler("builtin")("ab", CTX) == 2  # type: ignore[misc, call-arg]
    assert router.message_handler("kw")(1, CTX) is CTX  # type: ignore[misc]
