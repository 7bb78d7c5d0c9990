"""Span handles: ``LiveSpan``, a view of a span being recorded, and ``DroppedSpan``.

A ``LiveSpan`` holds no state of its own: it reads its span's fields in the list its live
trace owns (``_spandata``), and every change it asks for is applied by that trace. Each
handle method checks and snapshots its values *before* the trace's lock is taken (so the
lock is held only for dictionary work), then hands one small change to
``LiveTrace.apply``, which makes it under the lock together with the lifecycle checks.
"""

from __future__ import annotations

import time
import traceback
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from lowtrace._model import SpanEvent, TokenUsage
from lowtrace._records import MAX_TOKENS
from lowtrace._spandata import (
    END,
    MESSAGE,
    NAME,
    PARENT_ID,
    START,
    STATUS,
    TYPE,
    USAGE,
    SpanState,
    add_event,
    merge_attributes,
    record_exception,
    set_inputs,
    set_outputs,
    set_usage,
)
from lowtrace._types import SpanStatus
from lowtrace._values import (
    clean_str,
    encode_value,
    safe_repr,
    snapshot_mapping,
    snapshot_value,
)
from lowtrace.errors import InvalidArgumentError, LowtraceError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lowtrace._live import LiveTrace

__all__ = [
    "DroppedSpan",
    "LiveSpan",
    "check_time",
    "encode_payload",
    "make_token_usage",
]

_time_ns = time.time_ns
_MAX_INT: Final = 2**63  # timestamps and token counts are stored as signed 64-bit ints


def check_time(value: object, what: str) -> int:
    """A timestamp argument: a non-negative int of nanoseconds since the epoch."""
    if type(value) is not int or value < 0 or value >= _MAX_INT:
        raise InvalidArgumentError(
            f"{what} must be a non-negative int of nanoseconds below 2**63, got {safe_repr(value)}"
        )
    return value


class LiveSpan:
    """The handle of a span being recorded: read its fields, annotate it, end it."""

    __slots__ = ("_base", "_span_id", "_trace")

    def __init__(self, trace: LiveTrace, base: int) -> None:
        self._trace = trace
        self._base = base  # where its fields start in trace.fields
        self._span_id: str = trace.fields[base]

    # Read-only views: the span changes only through its methods, applied by its trace.
    if TYPE_CHECKING:

        @property
        def trace_id(self) -> str:
            """32-hex-digit trace id."""

        @property
        def span_id(self) -> str:
            """16-hex-digit span id."""

    else:  # read on nearly every span: getters in C, without a Python call
        trace_id = property(attrgetter("_trace.trace_id"), doc="32-hex-digit trace id.")
        span_id = property(attrgetter("_span_id"), doc="16-hex-digit span id.")

    @property
    def parent_id(self) -> str | None:
        """The parent's span id (None: root)."""
        return self._trace.fields[self._base + PARENT_ID]  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        """The span's name."""
        return self._trace.fields[self._base + NAME]  # type: ignore[no-any-return]

    @property
    def span_type(self) -> str:
        """The SpanType (or a custom str)."""
        return self._trace.fields[self._base + TYPE]  # type: ignore[no-any-return]

    @property
    def start_time_ns(self) -> int:
        """Start, ns since epoch."""
        return self._trace.fields[self._base + START]  # type: ignore[no-any-return]

    @property
    def end_time_ns(self) -> int | None:
        """End, ns since epoch, or None while open."""
        return self._trace.fields[self._base + END]  # type: ignore[no-any-return]

    @property
    def status(self) -> SpanStatus:
        """UNSET while open, then OK or ERROR."""
        return self._trace.fields[self._base + STATUS]  # type: ignore[no-any-return]

    @property
    def status_message(self) -> str | None:
        """Why it is ERROR."""
        return self._trace.fields[self._base + MESSAGE]  # type: ignore[no-any-return]

    @property
    def token_usage(self) -> TokenUsage | None:
        """Tokens reported, or None."""
        return self._trace.fields[self._base + USAGE]  # type: ignore[no-any-return]

    @property
    def tracestate(self) -> str | None:
        """The trace's W3C tracestate, or None."""
        return self._trace.tracestate

    def __repr__(self) -> str:
        fields, base = self._trace.fields, self._base
        state = SpanState.OPEN if fields[base + END] is None else SpanState.ENDED
        return (
            f"<LiveSpan {fields[base + NAME]!r} trace_id={self._trace.trace_id} "
            f"span_id={fields[base]} {state.value}>"
        )

    def __eq__(self, other: object) -> bool:
        """Two handles of one span are equal (``get_live_span`` gives a new view)."""
        return type(other) is LiveSpan and other._trace is self._trace and other._base == self._base

    def __hash__(self) -> int:
        return hash((id(self._trace), self._base))

    @property
    def ended(self) -> bool:
        """True once the span has ended (or its trace was closed)."""
        return self._trace.fields[self._base + END] is not None

    @property
    def is_recording(self) -> bool:
        """True for a span that records; False for dropped and disabled-mode handles."""
        return True

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` header value naming this span as the remote parent."""
        return f"00-{self._trace.trace_id}-{self._trace.fields[self._base]}-01"

    # -- the handle API: each call snapshots outside the lock, then applies under it --------

    def end(
        self,
        *,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: SpanStatus | str | None = None,
        status_message: str | None = None,
        end_time_ns: int | None = None,
    ) -> None:
        """End the span (same keywords as ``TracingClient.end_span``)."""
        trace = self._trace
        try:
            trace.end_span(self._base, outputs, attributes, status, status_message, end_time_ns)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Add or replace attributes (values snapshotted now)."""
        trace = self._trace
        try:
            values, cut = snapshot_mapping(attributes, trace.limits.max_value_bytes, "attributes")
            trace.apply(self._base, merge_attributes, values, cut)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def set_attribute(self, key: str, value: Any) -> None:
        """Add or replace one attribute."""
        self.set_attributes({key: value})

    def set_inputs(self, inputs: Any) -> None:
        """Replace the recorded inputs (for frameworks that report them late)."""
        trace = self._trace
        raw, cut = encode_payload(inputs, trace.limits.max_value_bytes)
        try:
            trace.apply(self._base, set_inputs, raw, cut)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def set_outputs(self, outputs: Any) -> None:
        """Record outputs before the span ends (``end(outputs=...)`` does the same)."""
        trace = self._trace
        raw, cut = encode_payload(outputs, trace.limits.max_value_bytes)
        try:
            trace.apply(self._base, set_outputs, raw, cut)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        time_ns: int | None = None,
    ) -> None:
        """Record a point in time inside the span (a streamed chunk, a retry...)."""
        trace = self._trace
        try:
            if type(name) is not str or not name:
                raise InvalidArgumentError(
                    f"event name must be a non-empty str, got {safe_repr(name)}"
                )
            if not name.isascii():
                name = clean_str(name)
            when = _time_ns() if time_ns is None else check_time(time_ns, "time_ns")
            values, cut = (
                ({}, 0)
                if attributes is None
                else snapshot_mapping(attributes, trace.limits.max_value_bytes, "event attributes")
            )
            trace.apply(self._base, add_event, SpanEvent(name, when, values), cut)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def record_exception(self, exc: BaseException, *, time_ns: int | None = None) -> None:
        """Add an ``exception`` event (type, message, stack trace) and mark the span ERROR."""
        trace = self._trace
        try:
            if not isinstance(exc, BaseException):
                raise InvalidArgumentError(
                    f"record_exception takes an exception, got {safe_repr(exc)}"
                )
            when = _time_ns() if time_ns is None else check_time(time_ns, "time_ns")
            limit = trace.limits.max_value_bytes
            kind = type(exc)
            qualname = (
                kind.__qualname__
                if kind.__module__ == "builtins"
                else f"{kind.__module__}.{kind.__qualname__}"
            )
            qualname = clean_str(qualname)
            message, _ = snapshot_value(_safe_str(exc), limit)
            stack, _ = snapshot_value("".join(traceback.format_exception(exc)), limit)
            event = SpanEvent(
                "exception",
                when,
                {
                    "exception.type": qualname,
                    "exception.message": message,
                    "exception.stacktrace": stack,
                },
            )
            status_message = clean_str(f"{kind.__name__}: {message}" if message else kind.__name__)
            trace.apply(self._base, record_exception, event, status_message)
        except LowtraceError as error:
            trace.owner._violation(error, None)

    def set_token_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
    ) -> None:
        """Record the tokens this step's model call used; a later call replaces it.

        The cache counts are the part of ``input_tokens`` read from or written to the
        provider's prompt cache.
        """
        trace = self._trace
        try:
            usage = make_token_usage(
                input_tokens,
                output_tokens,
                total_tokens,
                cache_read_input_tokens,
                cache_creation_input_tokens,
            )
            trace.apply(self._base, set_usage, usage, None)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)


class DroppedSpan:
    """The handle for a span cut by ``max_spans_per_trace``: accepts every call, records none.

    Its children are dropped as well, and ending it is not an error, so instrumentation keeps
    working unchanged when a trace grows past the limit.
    """

    __slots__ = ("name", "parent_id", "span_id", "trace_id")

    ended = False
    is_recording = False
    tracestate = None

    def __init__(self, trace_id: str, span_id: str, parent_id: str | None, name: str) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` header value, flagged not sampled (``-00``)."""
        return f"00-{self.trace_id}-{self.span_id}-00"

    def end(
        self,
        *,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: SpanStatus | str | None = None,
        status_message: str | None = None,
        end_time_ns: int | None = None,
    ) -> None:
        """Does nothing: the span was not recorded."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Does nothing: the span was not recorded."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Does nothing: the span was not recorded."""

    def set_inputs(self, inputs: Any) -> None:
        """Does nothing: the span was not recorded."""

    def set_outputs(self, outputs: Any) -> None:
        """Does nothing: the span was not recorded."""

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        time_ns: int | None = None,
    ) -> None:
        """Does nothing: the span was not recorded."""

    def record_exception(self, exc: BaseException, *, time_ns: int | None = None) -> None:
        """Does nothing: the span was not recorded."""

    def set_token_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
    ) -> None:
        """Does nothing: the span was not recorded."""


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not reach the caller
        return f"<unprintable {type(exc).__qualname__}>"


def encode_payload(value: Any, limit: int) -> tuple[bytes | None, bool]:
    """Inputs or outputs as (JSON bytes, truncated); None stays None (recorded as null)."""
    if value is None:
        return None, False
    return encode_value(value, limit)


def make_token_usage(
    input_tokens: int | None,
    output_tokens: int | None,
    total_tokens: int | None,
    cache_read_input_tokens: int | None = None,
    cache_creation_input_tokens: int | None = None,
) -> TokenUsage:
    """Validated token usage; ``total_tokens`` defaults to input + output."""
    for label, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("total_tokens", total_tokens),
        ("cache_read_input_tokens", cache_read_input_tokens),
        ("cache_creation_input_tokens", cache_creation_input_tokens),
    ):
        if value is not None and (type(value) is not int or value < 0 or value >= _MAX_INT):
            raise InvalidArgumentError(
                f"{label} must be a non-negative int below 2**63, got {safe_repr(value)}"
            )
    if input_tokens is None and output_tokens is None and total_tokens is None:
        raise InvalidArgumentError("set_token_usage needs at least one token count")
    inp = input_tokens or 0
    out = output_tokens or 0
    return TokenUsage(
        inp,
        out,
        min(inp + out, MAX_TOKENS) if total_tokens is None else total_tokens,
        cache_read_input_tokens,
        cache_creation_input_tokens,
    )
