"""Live spans: the state of a span being recorded, which is also the handle users hold.

Every handle method snapshots its values *before* taking the trace's lock (so the lock is
held only for dictionary work), then applies one small mutation under the lock together with
the lifecycle checks, through ``LiveTrace.apply``. Limits drop the newest extra attribute
or event and count it on the span, never the oldest and never lowtrace's own keys.
"""

from __future__ import annotations

import enum
import time
import traceback
from typing import TYPE_CHECKING, Any, Final

from lowtrace._model import NULL_BLOB, JsonBlob, SpanEvent, SpanRecord, TokenUsage
from lowtrace._types import SpanStatus
from lowtrace._values import clean_str, encode_value, snapshot_mapping, snapshot_value
from lowtrace.errors import InvalidArgumentError, LowtraceError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lowtrace._live import LiveTrace

__all__ = [
    "DROPPED_ATTRIBUTES",
    "DROPPED_EVENTS",
    "DROPPED_SPANS",
    "TRUNCATED_VALUES",
    "DroppedSpan",
    "LiveSpan",
    "SpanState",
    "check_time",
    "make_blob",
    "make_token_usage",
    "merge_attributes",
    "span_notes",
]

_time_ns = time.time_ns

DROPPED_ATTRIBUTES: Final = "lowtrace.dropped_attributes"
DROPPED_EVENTS: Final = "lowtrace.dropped_events"
DROPPED_SPANS: Final = "lowtrace.dropped_spans"
TRUNCATED_VALUES: Final = "lowtrace.truncated_values"
_MAX_INT: Final = 2**63  # timestamps and token counts are stored as signed 64-bit ints


class SpanState(enum.Enum):
    """A span is open until it ends; an ended span never changes again."""

    OPEN = "open"
    ENDED = "ended"


# Enum members bound once: attribute access on an Enum class costs ~60 ns on CPython 3.11.
_UNSET: Final = SpanStatus.UNSET
_OK: Final = SpanStatus.OK
_ERROR: Final = SpanStatus.ERROR
_OPEN: Final = SpanState.OPEN
_ENDED: Final = SpanState.ENDED


def check_time(value: object, what: str) -> int:
    """A timestamp argument: a non-negative int of nanoseconds since the epoch."""
    if type(value) is not int or value < 0 or value >= _MAX_INT:
        raise InvalidArgumentError(
            f"{what} must be a non-negative int of nanoseconds below 2**63, got {value!r}"
        )
    return value


class _Notes:
    """Counters of what limits cut from one span, written into its attributes at the end."""

    __slots__ = ("dropped_attributes", "dropped_events", "truncated_values")

    def __init__(self) -> None:
        self.dropped_attributes = 0
        self.dropped_events = 0
        self.truncated_values = 0


class LiveSpan:
    """A span that is being recorded: its state, and the handle you end and annotate it by."""

    __slots__ = (
        "_attributes",
        "_end_time_ns",
        "_events",
        "_inputs",
        "_name",
        "_notes",
        "_outputs",
        "_parent_id",
        "_span_id",
        "_span_type",
        "_start_time_ns",
        "_state",
        "_status",
        "_status_message",
        "_trace",
        "_trace_id",
        "_usage",
    )

    def __init__(
        self,
        trace: LiveTrace,
        span_id: str,
        parent_id: str | None,
        name: str,
        span_type: str,
        start_time_ns: int,
        inputs: JsonBlob,
        attributes: dict[str, Any],
    ) -> None:
        self._trace = trace
        self._trace_id = trace.trace_id
        self._span_id = span_id
        self._parent_id = parent_id
        self._name = name
        self._span_type = span_type
        self._start_time_ns = start_time_ns
        self._end_time_ns: int | None = None
        self._status = _UNSET
        self._status_message: str | None = None
        self._state = _OPEN
        self._inputs = inputs
        self._outputs = NULL_BLOB
        self._attributes = attributes
        self._events: list[SpanEvent] | None = None
        self._usage: TokenUsage | None = None
        self._notes: _Notes | None = None

    # Read-only views: a span changes only through its methods, under the trace's lock.
    @property
    def trace_id(self) -> str:
        """32-hex-digit trace id."""
        return self._trace_id

    @property
    def span_id(self) -> str:
        """16-hex-digit span id."""
        return self._span_id

    @property
    def parent_id(self) -> str | None:
        """The parent's span id (None: root)."""
        return self._parent_id

    @property
    def name(self) -> str:
        """The span's name."""
        return self._name

    @property
    def span_type(self) -> str:
        """The SpanType (or a custom str)."""
        return self._span_type

    @property
    def start_time_ns(self) -> int:
        """Start, ns since epoch."""
        return self._start_time_ns

    @property
    def end_time_ns(self) -> int | None:
        """End, ns since epoch, or None while open."""
        return self._end_time_ns

    @property
    def status(self) -> SpanStatus:
        """UNSET while open, then OK or ERROR."""
        return self._status

    @property
    def status_message(self) -> str | None:
        """Why it is ERROR."""
        return self._status_message

    @property
    def token_usage(self) -> TokenUsage | None:
        """Tokens reported, or None."""
        return self._usage

    @property
    def tracestate(self) -> str | None:
        """The trace's W3C tracestate, or None."""
        return self._trace.tracestate

    def __repr__(self) -> str:
        return (
            f"<LiveSpan {self._name!r} trace_id={self._trace_id} span_id={self._span_id} "
            f"{self._state.value}>"
        )

    @property
    def ended(self) -> bool:
        """True once the span has ended (or its trace was closed)."""
        return self._state is _ENDED

    @property
    def is_recording(self) -> bool:
        """True for a span that records; False for dropped and disabled-mode handles."""
        return True

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` header value naming this span as the remote parent."""
        return f"00-{self.trace_id}-{self.span_id}-01"

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
            trace.end_span(self, outputs, attributes, status, status_message, end_time_ns)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Add or replace attributes (values snapshotted now)."""
        trace = self._trace
        try:
            values, cut = snapshot_mapping(attributes, trace.limits.max_value_bytes, "attributes")
            trace.apply(self, merge_attributes, values, cut)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)
        except TypeError as exc:
            trace.owner._violation(InvalidArgumentError(str(exc)), None)

    def set_attribute(self, key: str, value: Any) -> None:
        """Add or replace one attribute."""
        self.set_attributes({key: value})

    def set_inputs(self, inputs: Any) -> None:
        """Replace the recorded inputs (for frameworks that report them late)."""
        trace = self._trace
        blob, cut = make_blob(inputs, trace.limits.max_value_bytes)
        try:
            trace.apply(self, _set_inputs, blob, cut)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def set_outputs(self, outputs: Any) -> None:
        """Record outputs before the span ends (``end(outputs=...)`` does the same)."""
        trace = self._trace
        blob, cut = make_blob(outputs, trace.limits.max_value_bytes)
        try:
            trace.apply(self, _set_outputs, blob, cut)
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
                raise InvalidArgumentError(f"event name must be a non-empty str, got {name!r}")
            if not name.isascii():
                name = clean_str(name)
            when = _time_ns() if time_ns is None else check_time(time_ns, "time_ns")
            values, cut = (
                snapshot_mapping(attributes, trace.limits.max_value_bytes, "event attributes")
                if attributes
                else ({}, 0)
            )
            trace.apply(self, _add_event, SpanEvent(name, when, values), cut)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)
        except TypeError as exc:
            trace.owner._violation(InvalidArgumentError(str(exc)), None)

    def record_exception(self, exc: BaseException, *, time_ns: int | None = None) -> None:
        """Add an ``exception`` event (type, message, stack trace) and mark the span ERROR."""
        trace = self._trace
        try:
            if not isinstance(exc, BaseException):
                raise InvalidArgumentError(f"record_exception takes an exception, got {exc!r}")
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
            trace.apply(self, _record_exception, event, status_message)
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
            trace.apply(self, _set_usage, usage, None)
        except LowtraceError as exc:
            trace.owner._violation(exc, None)

    def to_record(self) -> SpanRecord:
        """The finished record of this span (only meaningful once it has ended)."""
        attributes = self._attributes
        notes = self._notes
        if notes is not None:
            attributes = dict(attributes)
            if notes.dropped_attributes:
                attributes[DROPPED_ATTRIBUTES] = notes.dropped_attributes
            if notes.dropped_events:
                attributes[DROPPED_EVENTS] = notes.dropped_events
            if notes.truncated_values:
                attributes[TRUNCATED_VALUES] = notes.truncated_values
        return SpanRecord(
            self._trace_id,
            self._span_id,
            self._parent_id,
            self._name,
            self._span_type,
            self._start_time_ns,
            self._end_time_ns or self._start_time_ns,
            self._status,
            self._status_message,
            self._inputs,
            self._outputs,
            attributes,
            tuple(self._events) if self._events else (),
            self._usage,
        )


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


def make_blob(value: Any, limit: int) -> tuple[JsonBlob, bool]:
    if value is None:
        return NULL_BLOB, False
    data, cut = encode_value(value, limit)
    return JsonBlob(data), cut


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
                f"{label} must be a non-negative int below 2**63, got {value!r}"
            )
    if input_tokens is None and output_tokens is None and total_tokens is None:
        raise InvalidArgumentError("set_token_usage needs at least one token count")
    inp = input_tokens or 0
    out = output_tokens or 0
    return TokenUsage(
        inp,
        out,
        inp + out if total_tokens is None else total_tokens,
        cache_read_input_tokens,
        cache_creation_input_tokens,
    )


# -- mutations applied under the trace lock (the span is known open) ---------------------------


def span_notes(span: LiveSpan) -> _Notes:
    notes = span._notes
    if notes is None:
        notes = span._notes = _Notes()
    return notes


def merge_attributes(live: LiveTrace, span: LiveSpan, values: dict[str, Any], cut: int) -> None:
    current = span._attributes
    limit = live.limits.max_attributes_per_span
    dropped = 0
    for key, value in values.items():
        if key in current or len(current) < limit:
            current[key] = value
        else:
            dropped += 1  # the newest extras go, never what is already recorded
    if dropped or cut:
        notes = span_notes(span)
        notes.dropped_attributes += dropped
        notes.truncated_values += cut


def _set_inputs(live: LiveTrace, span: LiveSpan, blob: JsonBlob, cut: bool) -> None:
    span._inputs = blob
    if cut:
        span_notes(span).truncated_values += 1


def _set_outputs(live: LiveTrace, span: LiveSpan, blob: JsonBlob, cut: bool) -> None:
    span._outputs = blob
    if cut:
        span_notes(span).truncated_values += 1


def _add_event(live: LiveTrace, span: LiveSpan, event: SpanEvent, cut: int) -> None:
    events = span._events
    if events is None:
        events = span._events = []
    if len(events) < live.limits.max_events_per_span:
        events.append(event)
        if cut:
            span_notes(span).truncated_values += cut
    else:
        span_notes(span).dropped_events += 1


def _record_exception(live: LiveTrace, span: LiveSpan, event: SpanEvent, message: str) -> None:
    _add_event(live, span, event, 0)
    span._status = _ERROR
    span._status_message = message


def _set_usage(live: LiveTrace, span: LiveSpan, usage: TokenUsage, _: None) -> None:
    span._usage = usage
    live.has_usage = True
