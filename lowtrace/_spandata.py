"""The state of one span being recorded: a plain record that its live trace owns.

Only the live trace changes a ``SpanData``, under the trace's lock and after the lifecycle
checks have passed (``LiveTrace.apply`` and the end calls); the ``LiveSpan`` handle users
hold is a read-only view of it. The changes a handle can ask for are the functions at the
bottom. Limits drop the newest extra attribute or event and count it on the span, never
the oldest and never lowtrace's own keys.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final

from lowtrace._model import NULL_BLOB, JsonBlob, SpanEvent, SpanRecord, TokenUsage
from lowtrace._types import SpanStatus
from lowtrace._values import ENTRY_BYTES, EVENT_BYTES, attribute_bytes, value_bytes

if TYPE_CHECKING:
    from lowtrace._live import LiveTrace

__all__ = [
    "DROPPED_ATTRIBUTES",
    "DROPPED_EVENTS",
    "DROPPED_SPANS",
    "TRUNCATED_VALUES",
    "SpanData",
    "SpanState",
    "add_event",
    "blob_bytes",
    "merge_attributes",
    "record_exception",
    "set_inputs",
    "set_outputs",
    "set_usage",
]

DROPPED_ATTRIBUTES: Final = "lowtrace.dropped_attributes"
DROPPED_EVENTS: Final = "lowtrace.dropped_events"
DROPPED_SPANS: Final = "lowtrace.dropped_spans"
TRUNCATED_VALUES: Final = "lowtrace.truncated_values"


class SpanState(enum.Enum):
    """A span is open until it ends; an ended span never changes again."""

    OPEN = "open"
    ENDED = "ended"


# Enum members bound once: attribute access on an Enum class costs ~60 ns on CPython 3.11.
_UNSET: Final = SpanStatus.UNSET
_ERROR: Final = SpanStatus.ERROR
_OPEN: Final = SpanState.OPEN


class Notes:
    """Counters of what limits cut from one span, written into its attributes at the end."""

    __slots__ = ("dropped_attributes", "dropped_events", "truncated_values")

    def __init__(self) -> None:
        self.dropped_attributes = 0
        self.dropped_events = 0
        self.truncated_values = 0


class SpanData:
    """One live span's fields; written only by its ``LiveTrace``, under the trace's lock."""

    __slots__ = (
        "attributes",
        "end_time_ns",
        "events",
        "inputs",
        "name",
        "notes",
        "outputs",
        "parent_id",
        "span_id",
        "span_type",
        "start_time_ns",
        "state",
        "status",
        "status_message",
        "token_usage",
    )

    def __init__(
        self,
        span_id: str,
        parent_id: str | None,
        name: str,
        span_type: str,
        start_time_ns: int,
        inputs: JsonBlob,
        attributes: dict[str, Any],
    ) -> None:
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.span_type = span_type
        self.start_time_ns = start_time_ns
        self.end_time_ns: int | None = None
        self.status: SpanStatus = _UNSET
        self.status_message: str | None = None
        self.state = _OPEN
        self.inputs = inputs
        self.outputs = NULL_BLOB
        self.attributes = attributes
        self.events: list[SpanEvent] | None = None
        self.token_usage: TokenUsage | None = None
        self.notes: Notes | None = None

    def note(self) -> Notes:
        """The span's limit counters, created on first use."""
        notes = self.notes
        if notes is None:
            notes = self.notes = Notes()
        return notes

    def to_record(self, trace_id: str) -> SpanRecord:
        """The finished record of this span (only meaningful once it has ended)."""
        attributes = self.attributes
        notes = self.notes
        if notes is not None:
            attributes = dict(attributes)
            if notes.dropped_attributes:
                attributes[DROPPED_ATTRIBUTES] = notes.dropped_attributes
            if notes.dropped_events:
                attributes[DROPPED_EVENTS] = notes.dropped_events
            if notes.truncated_values:
                attributes[TRUNCATED_VALUES] = notes.truncated_values
        return SpanRecord(
            trace_id,
            self.span_id,
            self.parent_id,
            self.name,
            self.span_type,
            self.start_time_ns,
            self.end_time_ns or self.start_time_ns,
            self.status,
            self.status_message,
            self.inputs,
            self.outputs,
            attributes,
            tuple(self.events) if self.events else (),
            self.token_usage,
        )


# -- changes applied by LiveTrace.apply, under the trace's lock, to a span known open -------


def merge_attributes(live: LiveTrace, span: SpanData, values: dict[str, Any], cut: int) -> None:
    current = span.attributes
    limit = live.limits.max_attributes_per_span
    dropped = 0
    size = 0  # what the change adds to the trace's recorded bytes (payload_bytes)
    for key, value in values.items():
        if key in current:
            size += attribute_bytes(value) - attribute_bytes(current[key])
            current[key] = value
        elif len(current) < limit:
            size += ENTRY_BYTES + attribute_bytes(value)
            current[key] = value
        else:
            dropped += 1  # the newest extras go, never what is already recorded
    live.payload += size
    if dropped or cut:
        notes = span.note()
        notes.dropped_attributes += dropped
        notes.truncated_values += cut


def blob_bytes(blob: JsonBlob) -> int:
    """What a recorded payload adds to the trace's queued size (``payload_bytes``)."""
    return 0 if blob is NULL_BLOB else len(blob.raw)


def set_inputs(live: LiveTrace, span: SpanData, blob: JsonBlob, cut: bool) -> None:
    live.payload += blob_bytes(blob) - blob_bytes(span.inputs)
    span.inputs = blob
    if cut:
        span.note().truncated_values += 1


def set_outputs(live: LiveTrace, span: SpanData, blob: JsonBlob, cut: bool) -> None:
    live.payload += blob_bytes(blob) - blob_bytes(span.outputs)
    span.outputs = blob
    if cut:
        span.note().truncated_values += 1


def add_event(live: LiveTrace, span: SpanData, event: SpanEvent, cut: int) -> None:
    events = span.events
    if events is None:
        events = span.events = []
    if len(events) < live.limits.max_events_per_span:
        events.append(event)
        live.payload += EVENT_BYTES + value_bytes(event.attributes)
        if cut:
            span.note().truncated_values += cut
    else:
        span.note().dropped_events += 1


def record_exception(live: LiveTrace, span: SpanData, event: SpanEvent, message: str) -> None:
    add_event(live, span, event, 0)
    span.status = _ERROR
    span.status_message = message


def set_usage(live: LiveTrace, span: SpanData, usage: TokenUsage, _: None) -> None:
    span.token_usage = usage
    live.has_usage = True
