"""Trace and span ids: 128-bit and 64-bit, lowercase hex, W3C Trace Context compatible.

Each generator has its own ``random.Random`` seeded from ``os.urandom``, so a user's
``random.seed(0)`` cannot make two processes (or two runs) produce the same ids, and it is
reseeded in a forked child, which would otherwise repeat the parent's sequence.
"""

from __future__ import annotations

import os
import random

from lowtrace import _forksafe

__all__ = ["IdGenerator", "is_span_id", "is_trace_id"]

_HEX = frozenset("0123456789abcdef")


class IdGenerator:
    """Random, never-zero trace and span ids. Safe to call from any thread."""

    __slots__ = ("__weakref__", "_random")

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._random = random.Random(os.urandom(32))

    def trace_id(self) -> str:
        """A new 32-hex-digit trace id."""
        value = self._random.getrandbits(128)
        while not value:  # pragma: no cover - one chance in 2**128
            value = self._random.getrandbits(128)
        return value.to_bytes(16).hex()

    def span_id(self) -> str:
        """A new 16-hex-digit span id."""
        value = self._random.getrandbits(64)
        while not value:  # pragma: no cover - one chance in 2**64
            value = self._random.getrandbits(64)
        return value.to_bytes(8).hex()


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
