"""Keepalive settings are checked where they are made."""

from __future__ import annotations

from typing import Any

import pytest

from sansio_tcpmsg import Keepalive, LocalProtocolError


@pytest.mark.parametrize("field", ["idle", "interval", "count"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "10"])
def test_bad_keepalive_values_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(LocalProtocolError, match=f"Keepalive.{field} must be a positive whole number, not {value!r}"):
        Keepalive(**{field: value})


def test_defaults() -> None:
    assert Keepalive() == Keepalive(idle=60, interval=10, count=6)
