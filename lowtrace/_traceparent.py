"""W3C Trace Context: the ``traceparent`` / ``tracestate`` headers that carry a trace
across process boundaries (an agent calling a tool service over HTTP).

Parsing follows https://www.w3.org/TR/trace-context/: a ``traceparent`` of version ``00`` is
exactly ``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>``; a higher version may carry
more fields after the flags, version ``ff`` and all-zero ids are invalid. Upper-case hex is
accepted and lower-cased (lowtrace's ids are lowercase). A ``tracestate`` that breaks any
rule (bad key or value, a duplicate key, more than 32 entries) is discarded as a whole, as
the spec asks: it is opaque vendor data that must never be propagated half-parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final, NamedTuple, Protocol, TypeAlias, cast

from lowtrace._ids import is_span_id, is_trace_id
from lowtrace._values import safe_repr
from lowtrace.errors import InvalidArgumentError

__all__ = [
    "TRACEPARENT_HEADER",
    "TRACESTATE_ATTRIBUTE",
    "TRACESTATE_HEADER",
    "Headers",
    "TraceParent",
    "extract",
    "extract_tracestate",
    "format_traceparent",
    "format_tracestate",
    "inject",
    "normalize_tracestate",
    "parse_traceparent",
    "parse_traceparent_fields",
    "parse_tracestate",
]

TRACEPARENT_HEADER: Final = "traceparent"
TRACESTATE_HEADER: Final = "tracestate"
#: The root span attribute that keeps a trace's incoming ``tracestate`` (OTLP sends it as
#: every span's ``trace_state`` instead of an attribute).
TRACESTATE_ATTRIBUTE: Final = "lowtrace.tracestate"

_TRACEPARENT: Final = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.ASCII
)
_KEY: Final = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})",
    re.ASCII,
)
_VALUE: Final = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_MAX_TRACESTATE_ENTRIES: Final = 32
_MAX_HEADER_CHARS: Final = 8192
# WSGI / CGI environ spelling of the same headers.
_NAMES: Final = {
    TRACEPARENT_HEADER: ("traceparent", "http_traceparent"),
    TRACESTATE_HEADER: ("tracestate", "http_tracestate"),
}


class _HeaderItems(Protocol):
    def items(self) -> Iterable[tuple[str, Any]]: ...


#: Headers as a mapping, an ``http.client.HTTPMessage``, a WSGI environ or (key, value) pairs.
Headers: TypeAlias = _HeaderItems | Iterable[tuple[str, Any]]


class TraceParent(NamedTuple):
    """The fields of a ``traceparent`` header."""

    version: str
    trace_id: str
    span_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        """True when the caller recorded (sampled) its span."""
        return bool(self.flags & 0x01)


def parse_traceparent_fields(value: str) -> TraceParent:
    """All fields of a ``traceparent`` value; invalid ones raise ``InvalidArgumentError``."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"traceparent must be a str, got {safe_repr(value)}")
    if len(value) > _MAX_HEADER_CHARS:
        raise InvalidArgumentError(f"traceparent is too long ({len(value)} characters)")
    match = _TRACEPARENT.fullmatch(value.strip(" \t").lower())
    if match is None:
        raise InvalidArgumentError(f"not a W3C traceparent value: {safe_repr(value)}")
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        raise InvalidArgumentError(f"unsupported traceparent version in {safe_repr(value)}")
    if trace_id == "0" * 32 or span_id == "0" * 16:
        raise InvalidArgumentError(f"traceparent has an all-zero id: {safe_repr(value)}")
    return TraceParent(version, trace_id, span_id, int(flags, 16))


def parse_traceparent(value: str) -> tuple[str, str]:
    """(trace_id, parent span_id) from a ``traceparent`` value; invalid ones raise."""
    parsed = parse_traceparent_fields(value)
    return parsed.trace_id, parsed.span_id


def format_traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    """The ``traceparent`` header value for a span; bad or all-zero ids raise."""
    if not is_trace_id(trace_id):
        raise InvalidArgumentError(
            f"trace_id must be 32 lowercase hex digits, not all zero, got {safe_repr(trace_id)}"
        )
    if not is_span_id(span_id):
        raise InvalidArgumentError(
            f"span_id must be 16 lowercase hex digits, not all zero, got {safe_repr(span_id)}"
        )
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parse_tracestate(value: str | None) -> list[tuple[str, str]]:
    """The (key, value) entries of a ``tracestate`` value, in order; [] if it is invalid."""
    if not value or not isinstance(value, str) or len(value) > _MAX_HEADER_CHARS:
        return []
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in value.split(","):
        member = raw.strip(" \t")
        if not member:
            continue  # empty list members are allowed and ignored
        key, sep, val = member.partition("=")
        if not sep or not _KEY.fullmatch(key) or not _VALUE.fullmatch(val) or key in seen:
            return []
        seen.add(key)
        entries.append((key, val))
    if len(entries) > _MAX_TRACESTATE_ENTRIES:
        return []
    return entries


def normalize_tracestate(value: str | None) -> str | None:
    """A ``tracestate`` argument in canonical form; None when empty or invalid (discarded).

    A value that is not a str raises ``InvalidArgumentError``.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentError(f"tracestate must be a str, got {type(value).__name__}")
    entries = parse_tracestate(value)
    return ",".join(f"{k}={v}" for k, v in entries) if entries else None


def format_tracestate(entries: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """A ``tracestate`` value from (key, value) entries; an invalid entry raises."""
    items = list(entries.items() if isinstance(entries, Mapping) else entries)
    if len(items) > _MAX_TRACESTATE_ENTRIES:
        raise InvalidArgumentError(f"tracestate has more than 32 entries ({len(items)})")
    seen: set[str] = set()
    for key, val in items:
        if not isinstance(key, str) or not _KEY.fullmatch(key) or key in seen:
            raise InvalidArgumentError(f"invalid or duplicate tracestate key {safe_repr(key)}")
        if not isinstance(val, str) or not _VALUE.fullmatch(val):
            raise InvalidArgumentError(
                f"invalid tracestate value {safe_repr(val)} for key {safe_repr(key)}"
            )
        seen.add(key)
    return ",".join(f"{key}={val}" for key, val in items)


def inject(
    span: object,
    headers: MutableMapping[str, str],
    tracestate: str | Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> None:
    """Write the span's ``traceparent`` (and a valid ``tracestate``: the one given, else the
    span's own) into headers.

    A handle that records nothing (tracing disabled: all-zero ids) writes nothing; an
    invalid ``tracestate`` is left out rather than propagated. Headers already there under
    these names, in any spelling, are replaced.
    """
    value = getattr(span, "traceparent", None)
    if not isinstance(value, str):
        return
    try:
        parse_traceparent_fields(value)
    except InvalidArgumentError:
        return
    # Forwarded headers may hold the incoming pair in another spelling ("Traceparent"):
    # two conflicting values would make the next hop drop the trace context.
    stale = [k for k in headers if isinstance(k, str) and k.lower() in _NAMES]
    for key in stale:
        del headers[key]
    headers[TRACEPARENT_HEADER] = value
    if tracestate is None:
        tracestate = getattr(span, "tracestate", None)
    if not tracestate:
        return
    if isinstance(tracestate, str):
        entries = parse_tracestate(tracestate)
    else:
        try:
            entries = parse_tracestate(format_tracestate(tracestate))
        except InvalidArgumentError:
            entries = []
    if entries:
        headers[TRACESTATE_HEADER] = ",".join(f"{k}={v}" for k, v in entries)


def _text(value: object) -> str | None:
    """A header name or value as text (bytes, as HTTP servers hand them over, are latin-1)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return None


def _values(headers: Headers, name: str) -> list[str]:
    """Every value of one header in a mapping, an ``HTTPMessage`` or (key, value) pairs
    (str or bytes, as in an ASGI scope); anything else raises ``InvalidArgumentError``."""
    if isinstance(headers, str | bytes | bytearray) or not (
        hasattr(headers, "items") or hasattr(headers, "__iter__")
    ):
        raise InvalidArgumentError(
            f"headers must be a mapping or (name, value) pairs, got {type(headers).__name__}"
        )
    items: Iterable[Any] = (
        headers.items() if hasattr(headers, "items") else cast("Iterable[Any]", headers)
    )
    names = _NAMES[name]
    found: list[str] = []
    for pair in items:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"headers must be (name, value) pairs, got an item {pair!r:.80}"
            ) from None
        text_key = _text(key)
        if text_key is None or text_key.lower() not in names:
            continue
        for item in value if isinstance(value, list | tuple) else (value,):  # multi-valued
            text = _text(item)
            if text is not None:
                found.append(text)
    return found


def extract(headers: Headers) -> str | None:
    """The valid ``traceparent`` value in headers (any letter case), normalised, or None.

    Accepts a mapping, an ``http.client.HTTPMessage``, a WSGI environ (``HTTP_TRACEPARENT``)
    or (key, value) pairs. Conflicting repeated headers count as invalid.
    """
    values = {v.strip(" \t").lower() for v in _values(headers, TRACEPARENT_HEADER)}
    if len(values) != 1:
        return None
    value = values.pop()
    try:
        parse_traceparent_fields(value)
    except InvalidArgumentError:
        return None
    return value


def extract_tracestate(headers: Headers) -> str | None:
    """The valid ``tracestate`` in headers (repeated headers combined), or None."""
    entries = parse_tracestate(",".join(_values(headers, TRACESTATE_HEADER)))
    return ",".join(f"{k}={v}" for k, v in entries) if entries else None
