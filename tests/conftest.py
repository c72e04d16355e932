"""Shared fixtures. Tests that compare with closed forms run in float64 via ``x64``."""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats (``jax.enable_x64``), restoring float32 after."""
    with jax.enable_x64(True):
        yield
