"""Filter literals checked against what databases can hold, so none reaches a driver as a
crash: integers beyond 64 bits, floats that overflow, strings with lone surrogates."""

from __future__ import annotations

import math
from typing import Final

from lowtrace.errors import FilterError

__all__ = ["check_encodable", "number_literal", "storable_text"]

#: Integers a database column can hold (SQLite and PostgreSQL store 64-bit integers).
_INT_RANGE: Final = range(-(2**63), 2**63)


def number_literal(raw: str, text: str, position: int) -> int | float:
    """A number literal's value; one no database can hold is a FilterError, not a crash."""
    if not any(c in raw for c in ".eE"):
        value = int(raw)
        if value not in _INT_RANGE:
            raise FilterError("number out of the 64-bit integer range", text, position)
        return value
    number = float(raw)
    if math.isinf(number):
        raise FilterError("number too large for a 64-bit float", text, position)
    return number


def check_encodable(raw: str, text: str, position: int) -> None:
    """Strings travel to databases as UTF-8: a lone surrogate cannot, so it is refused here."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FilterError(
            f"lone surrogate {raw[exc.start]!r} cannot be searched for", text, position + exc.start
        ) from None


def storable_text(value: object) -> bool:
    """Whether ``value`` is a str a database can hold; an id that is not cannot be stored,
    so a lookup or delete by it matches nothing (instead of crashing in the driver)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
