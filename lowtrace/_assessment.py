"""Assessments: feedback on a stored trace (a verdict, a score, a comment) or its expected
answer, as MLflow Tracing has them.

An ``Assessment`` is immutable; its value is kept as the JSON bytes recorded when it was
logged and decoded into a fresh object on every access. ``assessment_text`` and
``assessment_number`` say how a value compares in filters: numbers as numbers, booleans as
'true'/'false', strings as themselves, anything else as its JSON text.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
import orjson

from lowtrace._frozen import freeze_mapping
from lowtrace.errors import InvalidArgumentError

__all__ = [
    "KINDS",
    "Assessment",
    "AssessmentKind",
    "assessment_number",
    "assessment_text",
    "make_assessment",
]

AssessmentKind = Literal["feedback", "expectation"]
KINDS: Final = ("feedback", "expectation")
#: Largest JSON value an assessment keeps (a golden answer may be long, not unbounded).
MAX_VALUE_BYTES: Final = 1 << 20


def _freeze_source(source: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """attrs converter: a read-only source (a finished trace cannot be changed)."""
    return None if source is None else freeze_mapping(source)


def _encode(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    from lowtrace._values import encode_value

    return encode_value(value, MAX_VALUE_BYTES)[0]


@attrs.frozen(repr=False)
class Assessment:
    """A feedback or an expectation attached to a trace (or to one of its spans)."""

    assessment_id: str
    name: str
    kind: AssessmentKind
    _value: bytes = attrs.field(alias="value", converter=_encode)
    source: Mapping[str, str] | None = attrs.field(default=None, converter=_freeze_source)
    rationale: str | None = None
    span_id: str | None = None
    created_time_ns: int = 0

    @property
    def value(self) -> Any:
        """The assessed value (a fresh copy on each access)."""
        return orjson.loads(self._value)

    @property
    def value_json(self) -> bytes:
        """The value as the JSON bytes recorded when it was logged."""
        return self._value

    def __repr__(self) -> str:
        return (
            f"Assessment({self.kind} {self.name}={self._value.decode('utf-8', 'replace')[:80]}"
            f", source={self.source!r}, id={self.assessment_id})"
        )


def assessment_number(assessment: Assessment) -> float | None:
    """The value as a number for filters (None unless it is an int or a float)."""
    value = assessment.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)  # as the SQL stores keep it
    return None


def assessment_text(assessment: Assessment) -> str | None:
    """The value as text for filters: strings, 'true'/'false', JSON for lists and objects."""
    value = assessment.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (int, float)):
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def make_assessment(
    kind: AssessmentKind,
    name: str,
    value: Any,
    source: Mapping[str, Any] | None,
    rationale: str | None,
    span_id: str | None,
) -> Assessment:
    """A new assessment with a fresh id and the current time, arguments checked.

    Its text is made valid Unicode here (a lone surrogate would make the store fail).
    """
    from lowtrace._values import clean_str, safe_repr, safe_str

    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(
            f"an assessment needs a non-empty str name, got {safe_repr(name)}"
        )
    if source is not None:
        if not isinstance(source, Mapping):
            raise InvalidArgumentError(
                f"source must be a mapping such as {{'type': 'HUMAN', 'id': 'alice'}}, "
                f"got {safe_repr(source)}"
            )
        source = {safe_str(k): safe_str(v) for k, v in source.items()}
    if rationale is not None and not isinstance(rationale, str):
        raise InvalidArgumentError(f"rationale must be a str or None, got {safe_repr(rationale)}")
    if span_id is not None and not isinstance(span_id, str):
        raise InvalidArgumentError(f"span_id must be a str or None, got {safe_repr(span_id)}")
    from lowtrace._values import encode_value

    return Assessment(
        assessment_id=secrets.token_hex(16),
        name=clean_str(name),
        kind=kind,
        value=encode_value(value, MAX_VALUE_BYTES)[0],
        source=source,
        rationale=None if rationale is None else clean_str(rationale),
        span_id=span_id,
        created_time_ns=time.time_ns(),
    )
