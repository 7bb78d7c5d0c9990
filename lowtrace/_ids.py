"""Trace and span ids: 128-bit and 64-bit, lowercase hex, W3C Trace Context compatible.

Ids come from ``os.urandom`` in batches: one system call and one C-level ``hex``/``split``
make 512 ids, and taking one is a ``next()`` on a list iterator (atomic under the GIL, so
safe from any thread without a lock). A user's ``random.seed(0)`` cannot make two processes
produce the same ids, and a forked child drops the batches it inherited, which would
otherwise repeat the parent's ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Final

from lowtrace import _forksafe

__all__ = ["IdGenerator", "is_span_id", "is_trace_id"]

_HEX = frozenset("0123456789abcdef")
_BATCH: Final = 512  # ids made per system call
_ZERO_SPAN: Final = "0" * 16
_ZERO_TRACE: Final = "0" * 32


def _batch(size: int, zero: str) -> list[str]:
    """``_BATCH`` random non-zero ids of ``size`` bytes, as lowercase hex."""
    ids = os.urandom(size * _BATCH).hex(" ", size).split()
    while zero in ids:  # pragma: no cover - one chance in 2**55 per batch
        ids.remove(zero)
    return ids


class IdGenerator:
    """Random, never-zero trace and span ids. Safe to call from any thread.

    The hot path reads ``next(gen.span_ids, None)`` itself (no Python frame) and calls
    ``span_id()`` only when it gets None, i.e. once per batch.
    """

    __slots__ = ("__weakref__", "span_ids", "trace_ids")

    def __init__(self) -> None:
        self.span_ids: Iterator[str] = iter(())
        self.trace_ids: Iterator[str] = iter(())
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self.span_ids = iter(())
        self.trace_ids = iter(())

    def trace_id(self) -> str:
        """A new 32-hex-digit trace id."""
        value = next(self.trace_ids, None)
        if value is None:
            ids = _batch(16, _ZERO_TRACE)
            value = ids.pop()
            self.trace_ids = iter(ids)  # racing refills each keep their own batch: fine
        return value

    def span_id(self) -> str:
        """A new 16-hex-digit span id."""
        value = next(self.span_ids, None)
        if value is None:
            ids = _batch(8, _ZERO_SPAN)
            value = ids.pop()
            self.span_ids = iter(ids)
        return value


def is_trace_id(value: object) -> bool:
    """True for 32 lowercase hex digits, not all zero."""
    return (
        isinstance(value, str) and len(value) == 32 and _HEX.issuperset(value) and value != "0" * 32
    )


def is_span_id(value: object) -> bool:
    """True for 16 lowercase hex digits, not all zero."""
    return (
        isinstance(value, str) and len(value) == 16 and _HEX.issuperset(value) and value != "0" * 16
    )
