"""Routes as NestJS 11/12 make them, checked against routes recorded from real NestJS."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import pytest

from sansio_tcpmsg import normalize_pattern
from sansio_tcpmsg.errors import PatternError
from sansio_tcpmsg.patterns import collation_key, route_of_incoming

VECTORS = pathlib.Path(__file__).parent.parent / "vectors"
ROUTES = json.loads((VECTORS / "nest12.json").read_text(encoding="utf-8"))["routes"]


@pytest.mark.parametrize("case", ROUTES, ids=lambda c: json.dumps(c["pattern"], ensure_ascii=False)[:40])
def test_routes_match_nestjs(case: dict[str, Any]) -> None:
    if case["route_type"] != "string":
        with pytest.raises(PatternError):
            normalize_pattern(case["pattern"])
        assert route_of_incoming(case["pattern"]) is None
    else:
        assert normalize_pattern(case["pattern"]) == case["route"]
        assert route_of_incoming(case["pattern"]) == case["route"]


def test_keys_sort_as_locale_compare() -> None:
    keys = ["Z", "é", "B", "a", "1", "_"]
    assert sorted(keys, key=collation_key) == ["_", "1", "a", "B", "é", "Z"]
    assert sorted(["ss", "ß", "st", "ω", "Ω", "a\x01b", "ab"], key=collation_key) == [
        "a\x01b", "ab", "ss", "ß", "st", "ω", "Ω",
    ]
    assert collation_key("e\u0301\u0300") > collation_key("e\u0301")  # stacked accents
    assert collation_key("\u0301") == ((), (), ())  # a lone accent weighs nothing


def test_tuples_are_arrays() -> None:
    assert normalize_pattern(("a", 1)) == '{"0":"a","1":1}'


def test_unroutable_types() -> None:
    with pytest.raises(PatternError):
        normalize_pattern(None)
    with pytest.raises(PatternError):
        normalize_pattern({"k": object()})


@pytest.mark.parametrize(
    ("pattern", "route"),
    [
        ('{"cmd":"sum"}', '{"cmd":"sum"}'),
        ('{"v":1,"cmd":"sum"}', '{"cmd":"sum","v":1}'),
        ("42", "42"),
        ('"echo"', "echo"),
        ("echo", "echo"),
        ("NaN", "NaN"),
        ("true", None),
        ("null", None),
        (None, None),
        (False, None),
        ("1e400", "Infinity"),
        ("-1e400", "-Infinity"),
        ({"n": math.nan}, '{"n":NaN}'),
    ],
)
def test_incoming_patterns_are_parsed_then_normalized(pattern: Any, route: str | None) -> None:
    assert route_of_incoming(pattern) == route


def test_route_cache_stays_bounded() -> None:
    from sansio_tcpmsg import patterns

    for i in range(patterns._CACHE_SIZE + 10):
        assert route_of_incoming(f"p{i}") == f"p{i}"
    assert len(patterns._string_routes) <= patterns._CACHE_SIZE
    assert route_of_incoming('{"b":1,"a":2}') == '{"a":2,"b":1}'
    assert route_of_incoming('{"b":1,"a":2}') == '{"a":2,"b":1}'  # from the cache
