"""Hypothesis settings for the core tests: no per-example deadline on a loaded CI machine."""

from hypothesis import settings

settings.register_profile("core", deadline=None)
settings.load_profile("core")
