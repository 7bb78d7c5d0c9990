"""The state of the spans being recorded: their fields, in one flat list per live trace.

A live trace keeps every span's fields in one list (``LiveTrace.fields``): the trace id,
then ``WIDTH`` fields per span in start order; a span is known by the position of its
first field (its *base*). Only the live trace changes them, under its lock and after the
lifecycle checks have passed (``LiveTrace.apply`` and the end calls); a ``LiveSpan`` handle
is a read-only view of one span. Why one list: when the trace ends, ``tuple(fields)`` is
its whole finished form, one object instead of one record per span, and the garbage
collector scans each object that waits in the export queue again and again. Payloads are
kept as their JSON bytes (None: null) for the same reason.

The changes a handle can ask for are the functions at the bottom. Limits drop the newest
extra attribute or event and count it on the span, never the oldest and never lowtrace's
own keys.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final

from lowtrace._frozen import freeze_mapping
from lowtrace._model import NULL_BLOB, JsonBlob, SpanEvent, SpanRecord, TokenUsage, parents_first
from lowtrace._records import slot_setters
from lowtrace._types import SpanStatus
from lowtrace._values import ENTRY_BYTES, EVENT_BYTES, attribute_bytes, value_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lowtrace._live import LiveTrace

__all__ = [
    "ATTRIBUTES",
    "DROPPED_ATTRIBUTES",
    "DROPPED_EVENTS",
    "DROPPED_SPANS",
    "END",
    "EVENTS",
    "INPUTS",
    "MESSAGE",
    "NAME",
    "NOTES",
    "OUTPUTS",
    "PARENT_ID",
    "ROOT",
    "SPAN_ID",
    "START",
    "STATUS",
    "TRUNCATED_VALUES",
    "TYPE",
    "USAGE",
    "WIDTH",
    "Notes",
    "SpanState",
    "add_event",
    "blob_bytes",
    "merge_attributes",
    "note",
    "record_exception",
    "set_inputs",
    "set_outputs",
    "set_usage",
    "span_records",
]

DROPPED_ATTRIBUTES: Final = "lowtrace.dropped_attributes"
DROPPED_EVENTS: Final = "lowtrace.dropped_events"
DROPPED_SPANS: Final = "lowtrace.dropped_spans"
TRUNCATED_VALUES: Final = "lowtrace.truncated_values"

# A span's fields, at these offsets from its base (``LiveTrace.add_span`` writes them in
# this order). END is None while the span is open; INPUTS/OUTPUTS are JSON bytes or None.
SPAN_ID: Final = 0  # str
PARENT_ID: Final = 1  # str | None
NAME: Final = 2  # str
TYPE: Final = 3  # SpanType or a custom str
START: Final = 4  # int, ns
END: Final = 5  # int | None
STATUS: Final = 6  # SpanStatus
MESSAGE: Final = 7  # str | None
INPUTS: Final = 8  # bytes | None
OUTPUTS: Final = 9  # bytes | None
ATTRIBUTES: Final = 10  # dict[str, Any]
EVENTS: Final = 11  # list[SpanEvent] | None
USAGE: Final = 12  # TokenUsage | None
NOTES: Final = 13  # Notes | None
WIDTH: Final = 14
ROOT: Final = 1  # the root's base: fields[0] is the trace id


_ERROR: Final = SpanStatus.ERROR


class SpanState(enum.Enum):
    """A span is open until it ends; an ended span never changes again."""

    OPEN = "open"
    ENDED = "ended"


class Notes:
    """Counters of what limits cut from one span, written into its attributes at the end."""

    __slots__ = ("dropped_attributes", "dropped_events", "truncated_values")

    def __init__(self) -> None:
        self.dropped_attributes = 0
        self.dropped_events = 0
        self.truncated_values = 0


def note(fields: list[Any], base: int) -> Notes:
    """The span's limit counters, created on first use."""
    notes: Notes | None = fields[base + NOTES]
    if notes is None:
        notes = fields[base + NOTES] = Notes()
    return notes


(
    _set_trace_id,
    _set_span_id,
    _set_parent_id,
    _set_name,
    _set_span_type,
    _set_start,
    _set_end,
    _set_status,
    _set_message,
    _set_inputs,
    _set_outputs,
    _set_attributes,
    _set_events,
    _set_usage,
) = slot_setters(
    SpanRecord,
    "trace_id span_id parent_id name span_type start_time_ns end_time_ns status "
    "status_message _inputs _outputs attributes events token_usage",
)
(_set_raw,) = slot_setters(JsonBlob, "raw")
_new = object.__new__


def _blob(raw: bytes | None) -> JsonBlob:
    if raw is None:
        return NULL_BLOB
    blob = _new(JsonBlob)
    _set_raw(blob, raw)
    return blob


def span_records(fields: Sequence[Any]) -> list[SpanRecord]:
    """The finished records of a trace's spans (its ended ``fields``), parents first.

    Built by the export worker (or the first reader): each ``SpanRecord`` is filled
    through its slots (``slot_setters``), its values already in their final form but the
    attributes, which are frozen here.
    """
    trace_id = fields[0]
    out = []
    for base in range(ROOT, len(fields), WIDTH):
        (
            span_id,
            parent_id,
            name,
            span_type,
            start,
            end,
            status,
            message,
            inputs,
            outputs,
            attributes,
            events,
            usage,
            notes,
        ) = fields[base : base + WIDTH]
        if notes is not None:
            attributes = dict(attributes)
            if notes.dropped_attributes:
                attributes[DROPPED_ATTRIBUTES] = notes.dropped_attributes
            if notes.dropped_events:
                attributes[DROPPED_EVENTS] = notes.dropped_events
            if notes.truncated_values:
                attributes[TRUNCATED_VALUES] = notes.truncated_values
        record = _new(SpanRecord)
        _set_trace_id(record, trace_id)
        _set_span_id(record, span_id)
        _set_parent_id(record, parent_id)
        _set_name(record, name)
        _set_span_type(record, span_type)
        _set_start(record, start)
        _set_end(record, end or start)
        _set_status(record, status)
        _set_message(record, message)
        _set_inputs(record, _blob(inputs))
        _set_outputs(record, _blob(outputs))
        _set_attributes(record, freeze_mapping(attributes))
        _set_events(record, tuple(events) if events else ())
        _set_usage(record, usage)
        out.append(record)
    for i in range(1, len(out)):
        if out[i].start_time_ns < out[i - 1].start_time_ns:
            # Explicit timestamps replayed out of order: start order, parents first.
            return parents_first(sorted(out, key=lambda r: r.start_time_ns))
    return out


# -- changes applied by LiveTrace.apply, under the trace's lock, to a span known open -------


def merge_attributes(live: LiveTrace, base: int, values: dict[str, Any], cut: int) -> None:
    current: dict[str, Any] = live.fields[base + ATTRIBUTES]
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
        notes = note(live.fields, base)
        notes.dropped_attributes += dropped
        notes.truncated_values += cut


def blob_bytes(raw: bytes | None) -> int:
    """What a recorded payload adds to the trace's queued size (``payload_bytes``)."""
    return 0 if raw is None else len(raw)


def set_inputs(live: LiveTrace, base: int, raw: bytes | None, cut: bool) -> None:
    fields = live.fields
    live.payload += blob_bytes(raw) - blob_bytes(fields[base + INPUTS])
    fields[base + INPUTS] = raw
    if cut:
        note(fields, base).truncated_values += 1


def set_outputs(live: LiveTrace, base: int, raw: bytes | None, cut: bool) -> None:
    fields = live.fields
    live.payload += blob_bytes(raw) - blob_bytes(fields[base + OUTPUTS])
    fields[base + OUTPUTS] = raw
    if cut:
        note(fields, base).truncated_values += 1


def add_event(live: LiveTrace, base: int, event: SpanEvent, cut: int) -> None:
    fields = live.fields
    events: list[SpanEvent] | None = fields[base + EVENTS]
    if events is None:
        events = fields[base + EVENTS] = []
    if len(events) < live.limits.max_events_per_span:
        events.append(event)
        live.payload += EVENT_BYTES + value_bytes(event.attributes)
        if cut:
            note(fields, base).truncated_values += cut
    else:
        note(fields, base).dropped_events += 1


def record_exception(live: LiveTrace, base: int, event: SpanEvent, message: str) -> None:
    add_event(live, base, event, 0)
    live.fields[base + STATUS] = _ERROR
    live.fields[base + MESSAGE] = message


def set_usage(live: LiveTrace, base: int, usage: TokenUsage, _: None) -> None:
    live.fields[base + USAGE] = usage
    live.has_usage = True
