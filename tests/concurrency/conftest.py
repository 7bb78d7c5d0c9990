"""Thread-safety tests run with a tiny GIL switch interval, so racing threads interleave
inside the library's calls instead of taking turns at 5 ms boundaries."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def fine_grained_thread_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)
