"""The small vocabularies of a trace: what kind of step a span is, and how it ended."""

from __future__ import annotations

import enum

from lowtrace._values import clean_str, safe_repr
from lowtrace.errors import InvalidArgumentError

__all__ = ["SpanStatus", "SpanType", "normalize_span_type"]


class SpanType(enum.StrEnum):
    """What kind of step a span records. Compares equal to its string value."""

    CHAIN = "CHAIN"
    AGENT = "AGENT"
    TOOL = "TOOL"
    LLM = "LLM"
    CHAT_MODEL = "CHAT_MODEL"
    RETRIEVER = "RETRIEVER"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    PARSER = "PARSER"
    MEMORY = "MEMORY"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"
    UNKNOWN = "UNKNOWN"


class SpanStatus(enum.StrEnum):
    """How a span or trace ended: UNSET while open, then OK or ERROR (with a message)."""

    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"


_SPAN_TYPES: dict[str, SpanType] = {t.value: t for t in SpanType}


def normalize_span_type(value: object) -> str:
    """Return the ``SpanType`` member for a known name, or the custom type string itself."""
    if type(value) is SpanType:
        return value
    if isinstance(value, str) and value:
        known = _SPAN_TYPES.get(value)
        return known if known is not None else clean_str(value)
    raise InvalidArgumentError(
        f"span_type must be a SpanType or a non-empty str, got {safe_repr(value)}"
    )
