"""The RLIKE guard: refuse regular expressions whose backtracking in Python's ``re`` can
take exponential or high-polynomial time, judged on the parsed pattern, not its spelling.

One ``re`` call holds the GIL and cannot be interrupted by a time limit, so a slow pattern
must be refused before it runs. Refused: backreferences (also in conditional groups), a
repeat of anything that can itself match in several ways (``(a*a)*``, ``(.*a){12}``,
``(a|(?:a))*``), more than one unbounded repeat in a pattern (``.*.*x`` is cubic in the
value), and bounded repeats that multiply to more than ``MAX_WAYS`` ways.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Final

from lowtrace.errors import FilterError

__all__ = ["MAX_REGEX_CHARS", "MAX_WAYS", "check_regex"]

#: Longest RLIKE pattern accepted.
MAX_REGEX_CHARS: Final = 500
#: Most ways the bounded repeats and alternations of a pattern may combine in.
MAX_WAYS: Final = 1000

# The stdlib's own regex parser (``re._parser``; ``sre_parse`` is its deprecated alias).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")
_REPEATS: Final = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)
_REFUSED: Final = (
    "RLIKE refuses backreferences, nested quantifiers, quantified alternations and more "
    "than one unbounded repeat (* + {n,}): they can take exponential or polynomial time"
)


class _Refused(Exception):
    """A shape that can backtrack badly (internal: becomes a FilterError)."""


def _shape(items: Any) -> tuple[int, int]:
    """(ways, unbounded) of a parsed sequence: how many ways its bounded parts can match
    one stretch of text (capped), and how many unbounded repeats it holds."""
    ways, unbounded = 1, 0
    for op, av in items:
        w, u = 1, 0
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            raise _Refused
        if op is _c.BRANCH:
            parts = [_shape(p) for p in av[1]]
            w, u = sum(p[0] for p in parts), max(p[1] for p in parts)
        elif op is _c.SUBPATTERN:
            w, u = _shape(av[3])
        elif op is _c.ATOMIC_GROUP:
            w, u = _shape(av)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            w, u = _shape(av[1])
        elif op in _REPEATS:
            w, u = _repeat_shape(av[0], av[1], _shape(av[2]))
        ways, unbounded = min(ways * w, MAX_WAYS + 1), unbounded + u
    return ways, unbounded


def _repeat_shape(low: int, high: int, body: tuple[int, int]) -> tuple[int, int]:
    body_ways, body_unbounded = body
    variable_body = body_ways > 1 or body_unbounded > 0
    if high <= 1:  # x? or x{0,1} or x{1}: the body's ways, once
        return body_ways + (high - low), body_unbounded
    if variable_body:  # (a*a)*, (a|b){3}, (a?){30}: ways grow with the repeat count
        raise _Refused
    span = high - low + 1
    if high == _c.MAXREPEAT or span > MAX_WAYS:
        return 1, 1
    return span, 0


def check_regex(pattern: str, text: str = "", position: int | None = None) -> None:
    """Raise a FilterError for a pattern Python cannot compile or that may backtrack badly."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise FilterError(
            f"RLIKE patterns are limited to {MAX_REGEX_CHARS} characters", text, position
        )
    try:
        re.compile(pattern)
        ways, unbounded = _shape(_parser.parse(pattern))
    except re.error as exc:
        raise FilterError(f"bad RLIKE pattern: {exc}", text, position) from None
    except _Refused:
        raise FilterError(_REFUSED, text, position) from None
    if unbounded > 1 or ways > MAX_WAYS:
        raise FilterError(_REFUSED, text, position)
