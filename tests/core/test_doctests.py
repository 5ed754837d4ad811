"""The examples in the core's docstrings run as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sansio_tcpmsg

MODULES = [m.name for m in pkgutil.iter_modules(sansio_tcpmsg.__path__, "sansio_tcpmsg.")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
