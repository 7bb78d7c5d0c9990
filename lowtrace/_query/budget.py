"""A time limit on searches, so one costly filter cannot hold a server's threads for long.

``with time_limit(2.0): store.search_traces(...)`` makes the stores give up after about two
seconds with a ``QueryTimeoutError``: SQLite through a progress handler that interrupts
the statement, PostgreSQL through ``statement_timeout``, the scanning stores (memory,
JSONL) by checking the clock as they go. Without a limit nothing is checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import Final

from lowtrace.errors import QueryTimeoutError

__all__ = ["check_deadline", "remaining_s", "time_limit", "timed_out"]

_deadline: Final[contextvars.ContextVar[float | None]] = contextvars.ContextVar(
    "lowtrace_query_deadline", default=None
)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Searches in this block (this thread or task) stop after ``seconds`` (None: no limit)."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_s() -> float | None:
    """Seconds left under the current limit (never negative), or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def timed_out() -> bool:
    """True when a limit is set and has passed."""
    deadline = _deadline.get()
    return deadline is not None and time.monotonic() >= deadline


def check_deadline() -> None:
    """Raise ``QueryTimeoutError`` when the current limit has passed."""
    if timed_out():
        raise QueryTimeoutError("the search took longer than its time limit")
