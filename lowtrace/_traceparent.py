"""W3C Trace Context: the ``traceparent`` / ``tracestate`` headers that carry a trace
across process boundaries (an agent calling a tool service over HTTP)."""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Final

from lowtrace.errors import InvalidArgumentError

__all__ = ["extract", "format_traceparent", "inject", "parse_traceparent"]

_TRACEPARENT: Final = re.compile(
    r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$"
)


def parse_traceparent(value: str) -> tuple[str, str]:
    """(trace_id, parent span_id) from a ``traceparent`` value; invalid ones raise."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"traceparent must be a str, got {value!r}")
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        raise InvalidArgumentError(f"not a W3C traceparent value: {value!r}")
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        raise InvalidArgumentError(f"unsupported traceparent version in {value!r}")
    if trace_id == "0" * 32 or span_id == "0" * 16:
        raise InvalidArgumentError(f"traceparent has an all-zero id: {value!r}")
    return trace_id, span_id


def format_traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    """The ``traceparent`` header value for a span."""
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def inject(span: object, headers: MutableMapping[str, str], tracestate: str | None = None) -> None:
    """Write the span's ``traceparent`` (and an optional ``tracestate``) into headers."""
    value = getattr(span, "traceparent", None)
    if isinstance(value, str) and not value.startswith("00-" + "0" * 32):
        headers["traceparent"] = value
        if tracestate:
            headers["tracestate"] = tracestate


def extract(headers: Mapping[str, str]) -> str | None:
    """The valid ``traceparent`` value in headers (any letter case), or None."""
    for key, value in headers.items():
        if key.lower() == "traceparent":
            try:
                parse_traceparent(value)
            except InvalidArgumentError:
                return None
            return value.strip().lower()
    return None
