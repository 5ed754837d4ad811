"""What the single-connection client and the pooled client share about calls."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._backends.base import FutureLike

__all__ = ["DEFAULT", "windowed"]


class _Default:
    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()
"""Marks "use the client's default timeout"."""


def windowed(submit: Callable[..., FutureLike], pattern: Any, datas: Iterable[Any],
             timeout: Any, metadata: Any, window: int) -> Iterator[Any]:
    """``client.map``: ``submit`` each item with at most ``window`` in flight, the
    replies in order (``window`` checked at once, not at the first ``next``)."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int of at least 1, got {window!r}")
    return _windowed(submit, pattern, datas, timeout, metadata, window)


def _windowed(submit: Callable[..., FutureLike], pattern: Any, datas: Iterable[Any],
              timeout: Any, metadata: Any, window: int) -> Iterator[Any]:
    in_flight: deque[FutureLike] = deque()
    for data in datas:
        if len(in_flight) >= window:
            yield in_flight.popleft().result()
        in_flight.append(submit(pattern, data, timeout=timeout, metadata=metadata))
    while in_flight:
        yield in_flight.popleft().result()
