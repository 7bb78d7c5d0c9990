"""Live traces: the span tree being built, guarded by one lock per trace.

A ``LiveTrace`` owns its spans' fields (one flat list, see ``_spandata``; the ``LiveSpan``
handles users hold are views of them) and a ``threading.Lock``; every check and every
change of one trace happens under that lock, so concurrent threads and out-of-order
callbacks see the lifecycle rules applied atomically: a call either fully happens or
raises and leaves nothing behind. Values are snapshotted by the caller *before* the lock
is taken, so the lock is only held for list and dictionary work. No lock is shared
between traces here.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from lowtrace._ending import TraceEnding, TraceState, resolve_status
from lowtrace._span import DroppedSpan, LiveSpan
from lowtrace._spandata import (
    ATTRIBUTES,
    END,
    NAME,
    ROOT,
    START,
    merge_attributes,
    note,
)
from lowtrace._types import SpanStatus
from lowtrace._values import (
    ENTRY_BYTES,
    JSON_INT_END,
    JSON_INT_MIN,
    encode_value,
    snapshot_sized,
)
from lowtrace.errors import LowtraceError, SpanEndedError, TraceEndedError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lowtrace._config import Limits
    from lowtrace._model import Trace

__all__ = ["LiveTrace", "TraceOwner", "TraceState", "resolve_status"]

_monotonic = time.monotonic
_time_ns = time.time_ns
_new = object.__new__
_isfinite = math.isfinite
_T = TypeVar("_T")


class TraceOwner(Protocol):
    """What a live trace needs from its client."""

    limits: Limits

    def _violation(self, exc: LowtraceError, fallback: _T) -> _T: ...

    def _missing_span(self, trace_id: str, span_id: object) -> LowtraceError: ...

    def _trace_finished(self, live: LiveTrace, trace: Trace) -> None: ...

    def _new_span_id(self) -> str: ...


# Enum members bound once: attribute access on an Enum class costs ~60 ns on CPython 3.11.
_UNSET: Final = SpanStatus.UNSET
_ACTIVE: Final = TraceState.ACTIVE
_DETACHED: Final = TraceState.DETACHED


class _EveryId:
    """A set that holds every id: ``LiveTrace.dropped_ids`` once it would pass its bound."""

    __slots__ = ()

    def __contains__(self, span_id: object) -> bool:
        return True


_EVERY_ID: Final = _EveryId()


class LiveTrace(TraceEnding):
    """One trace being recorded: its spans, tags and state, behind one lock.

    Starting spans and changing them is here; ending them is ``TraceEnding`` (``_ending``).
    ``spans`` maps each span id to its base in ``fields`` (see ``_spandata``).
    """

    __slots__ = (
        "dropped_ids",
        "dropped_spans",
        "end_reason",
        "fields",
        "has_usage",
        "last_active",
        "limits",
        "lock",
        "max_attributes",
        "max_spans",
        "metadata",
        "open_count",
        "owner",
        "payload",
        "session_id",
        "spans",
        "state",
        "tags",
        "trace_id",
        "tracestate",
        "user_id",
    )

    def __init__(self, owner: TraceOwner, trace_id: str, tags: dict[str, str]) -> None:
        self.owner = owner
        self.limits = limits = owner.limits
        self.max_spans = limits.max_spans_per_trace  # read on every start_span
        self.max_attributes = limits.max_attributes_per_span
        self.trace_id = trace_id
        self.lock = threading.Lock()
        self.state = _ACTIVE
        self.fields: list[Any] = [trace_id]
        self.spans: dict[str, int] = {}
        self.tags = tags
        self.open_count = 0
        self.last_active = _monotonic()
        self.dropped_ids: set[str] | _EveryId | None = None
        self.dropped_spans = 0
        self.end_reason = ""
        self.has_usage = False
        # Bytes the recorded values hold: inputs, outputs, attributes and events, kept up to
        # date as they are recorded (``payload_bytes``, the export queue's byte bound).
        self.payload = 0
        self.tracestate: str | None = None  # the incoming W3C tracestate, passed on as is
        self.metadata: dict[str, str] = {}
        self.session_id: str | None = None
        self.user_id: str | None = None

    def __repr__(self) -> str:
        return f"<LiveTrace {self.trace_id} {self.state.value} spans={len(self.spans)}>"

    def ended_error(self) -> TraceEndedError:
        why = f" ({self.end_reason})" if self.end_reason else ""
        return TraceEndedError(
            f"trace {self.trace_id} has already ended{why}; it cannot change any more. "
            "Start a new trace for new work."
        )

    def add_root(
        self,
        span_id: str,
        parent_id: str | None,
        name: str,
        span_type: str,
        start_time_ns: int,
        inputs: bytes | None,
        attributes: dict[str, Any],
        cut: int,
        size: int,
    ) -> LiveSpan:
        """Create the root span (called once, before the trace is visible to others).

        ``size``: what ``attributes`` hold (``snapshot_sized``).
        """
        fields = self.fields
        # The fields in _spandata's order (see add_span); the root's base is ROOT.
        fields += (span_id, parent_id, name, span_type, start_time_ns, None, _UNSET, None)
        fields += (inputs, None, attributes, None, None, None)
        if cut:
            note(fields, ROOT).truncated_values += cut
        self.spans[span_id] = ROOT
        self.open_count = 1
        if len(attributes) > self.max_attributes:
            fields[ROOT + ATTRIBUTES] = {}
            self.payload = 0
            merge_attributes(self, ROOT, attributes, 0)  # keeps the first, counts the rest
        else:
            self.payload = size
        if inputs is not None:
            self.payload += len(inputs)
        return LiveSpan(self, ROOT)

    def add_span(
        self,
        span_id: str,
        parent_id: str,
        name: str,
        span_type: str,
        start_time_ns: int | None,
        given_inputs: Any,
        given_attributes: Mapping[str, Any] | None,
    ) -> LiveSpan | DroppedSpan:
        """Start a child of ``parent_id``; raises if the trace or the parent cannot take it.

        The inputs and attributes are snapshotted first, before the lock is taken.
        ``start_time_ns=None`` reads the clock under the lock, after the parent is known open.
        """
        cut = 0
        inputs: bytes | None = None
        if given_inputs is not None:
            inputs, cut = encode_value(given_inputs, self.limits.max_value_bytes)
        attributes: dict[str, Any] | None = None
        if given_attributes is None:
            attributes, size = {}, 0
        elif type(given_attributes) is dict:
            # snapshot_sized's fast path, inlined (the call and its tuple cost ~4% of a span):
            # small scalar values under ASCII str keys are copied as they are; anything else
            # (str subclasses, huge ints, lone surrogates, NaN, containers) goes through it.
            small = self.limits.max_value_bytes >> 2
            size = ENTRY_BYTES * len(given_attributes)
            for key, value in given_attributes.items():
                if type(key) is not str or not key.isascii():
                    break
                cls = type(value)
                if cls is str:
                    if len(value) > small or not value.isascii():
                        break
                    size += len(value)
                elif cls is int:
                    if not JSON_INT_MIN <= value < JSON_INT_END:
                        break
                elif cls is float:
                    if not _isfinite(value):
                        break
                elif value is None:
                    size += 32
                elif cls is not bool:
                    break
            else:
                attributes = given_attributes.copy()
        if attributes is None:
            attributes, cut_attrs, size = snapshot_sized(
                given_attributes, self.limits.max_value_bytes, "attributes"
            )
            cut += cut_attrs
        lock = self.lock  # acquire/try/release: half the cost of a with block on 3.11
        lock.acquire()
        try:
            if self.state is not _ACTIVE:
                raise self.ended_error()
            spans = self.spans
            parent = spans.get(parent_id)
            if parent is None:
                dropped = self.dropped_ids
                if dropped is not None and parent_id in dropped:
                    return self._drop(span_id, parent_id, name)
                raise self.owner._missing_span(self.trace_id, parent_id)
            fields = self.fields
            if fields[parent + END] is not None:
                raise SpanEndedError(
                    f"parent span {fields[parent + NAME]!r} ({parent_id}) has already ended; "
                    "start children before ending their parent"
                )
            if len(spans) >= self.max_spans:
                return self._drop(span_id, parent_id, name)
            if start_time_ns is None:
                start_time_ns = _time_ns()
                if start_time_ns < fields[parent + START]:  # noqa: PLR1730 (clock stepped back; hot path)
                    start_time_ns = fields[parent + START]
            base = len(fields)
            # The fields in _spandata's order: id, parent, name, type, start, end, status,
            # message, inputs, outputs, attributes, events, usage, notes.
            fields += (
                span_id,
                parent_id,
                name,
                span_type,
                start_time_ns,
                None,
                _UNSET,
                None,
                inputs,
                None,
                attributes,
                None,
                None,
                None,
            )
            spans[span_id] = base
            if len(attributes) > self.max_attributes:
                fields[base + ATTRIBUTES] = {}
                merge_attributes(self, base, attributes, 0)  # counts what it keeps
                size = 0
            if cut:
                note(fields, base).truncated_values += cut
            self.open_count += 1
            self.payload += size if inputs is None else size + len(inputs)
            self.last_active = _monotonic()
        finally:
            lock.release()
        handle = _new(LiveSpan)  # LiveSpan(self, base) without the __init__ call
        handle._trace = self
        handle._base = base
        handle._span_id = span_id
        return handle

    def _drop(self, span_id: str, parent_id: str, name: str) -> DroppedSpan:
        dropped = self.dropped_ids
        if dropped is None:
            dropped = self.dropped_ids = set()
        if isinstance(dropped, set):
            if len(dropped) < self.max_spans:
                dropped.add(span_id)
            else:
                # Remembering every id would grow without bound in a trace that keeps making
                # spans past the limit: from here on, any id not in the trace is a dropped one.
                self.dropped_ids = _EVERY_ID
        self.dropped_spans += 1
        return DroppedSpan(self.trace_id, span_id, parent_id, name)

    def span(self, span_id: str) -> LiveSpan | None:
        """A handle of the span with this id, or None (lock-free read of one dict entry)."""
        base = self.spans.get(span_id)
        return LiveSpan(self, base) if base is not None else None

    def is_dropped(self, span_id: str) -> bool:
        dropped = self.dropped_ids
        return dropped is not None and span_id in dropped

    def _check_open(self, base: int) -> None:
        if self.state is not _ACTIVE:
            raise self.ended_error()
        fields = self.fields
        if fields[base + END] is not None:
            raise SpanEndedError(
                f"span {fields[base + NAME]!r} ({fields[base]}) has already ended; it cannot change"
            )

    def apply(self, base: int, change: Any, value: Any, extra: Any) -> None:
        """Apply one mutation to an open span of this trace, atomically with the checks."""
        lock = self.lock
        lock.acquire()
        try:
            self._check_open(base)
            change(self, base, value, extra)
            self.last_active = _monotonic()
        finally:
            lock.release()

    def set_tags(self, tags: dict[str, str]) -> None:
        with self.lock:
            if self.state is not _ACTIVE:
                raise self.ended_error()
            self.tags.update(tags)
            self.last_active = _monotonic()

    def set_metadata(
        self, metadata: dict[str, str], session_id: str | None, user_id: str | None
    ) -> None:
        """Add metadata and set the session or user id (None leaves them as they are)."""
        with self.lock:
            if self.state is not _ACTIVE:
                raise self.ended_error()
            self.metadata.update(metadata)
            if session_id is not None:
                self.session_id = session_id
            if user_id is not None:
                self.user_id = user_id
            self.last_active = _monotonic()

    def detach_after_fork(self) -> None:
        """In a forked child: this trace belongs to the parent; refuse further changes."""
        self.lock = threading.Lock()
        self.state = _DETACHED
        self.end_reason = "it was started by the parent process before os.fork()"
