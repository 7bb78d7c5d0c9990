"""Shared fixtures: a fresh in-memory client per test, closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lowtrace import TracingClient


@pytest.fixture
def client() -> Iterator[TracingClient]:
    """A strict client on its own in-memory store."""
    with TracingClient("memory://") as client:
        yield client


@pytest.fixture
def lenient() -> Iterator[TracingClient]:
    """A non-strict client: rule violations are logged and counted, never raised."""
    with TracingClient("memory://", strict=False) as client:
        yield client
