"""Text that UTF-8 cannot carry, made carriable: the fallback when a batch fails to encode.

Span names, attribute keys and values, event names and tags are recorded as given, so a
lone surrogate (from ``surrogateescape``-decoded bytes, a cut emoji pair) can reach the
exporter, and neither protobuf nor orjson encodes it. Rather than lose the whole batch,
the encoder retries with copies whose lone surrogates are U+FFFD (what a UTF-8 decoder
shows for the same broken text). The copies only make the body: the exporter keeps
handling the original traces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from lowtrace._model import SpanEvent, SpanRecord, Trace

__all__ = ["ENCODE_ERRORS", "scrub_text", "scrub_trace", "scrub_value"]

#: What protobuf (UnicodeEncodeError, a ValueError) and orjson (TypeError) raise on such text.
ENCODE_ERRORS: Final = (ValueError, TypeError)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def scrub_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def scrub_value(value: Any) -> Any:
    """A copy of an attribute value (str, list, tuple, dict; others as they are), scrubbed."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {scrub_value(k): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


def _scrub_span(span: SpanRecord) -> SpanRecord:
    return attrs.evolve(
        span,
        name=scrub_text(span.name),
        span_type=scrub_text(str(span.span_type)),
        status_message=None if span.status_message is None else scrub_text(span.status_message),
        attributes=scrub_value(span.attributes),
        events=tuple(
            SpanEvent(scrub_text(e.name), e.time_ns, scrub_value(e.attributes)) for e in span.events
        ),
    )


def scrub_trace(trace: Trace) -> Trace:
    """A copy of ``trace`` whose text UTF-8 can carry."""
    info = trace.info
    info = attrs.evolve(
        info,
        name=scrub_text(info.name),
        status_message=None if info.status_message is None else scrub_text(info.status_message),
        tags=scrub_value(info.tags),
    )
    return Trace(info, [_scrub_span(s) for s in trace.spans])
