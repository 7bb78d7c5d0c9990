"""Live traces: the span tree being built, guarded by one lock per trace.

A ``LiveTrace`` owns its spans and a ``threading.Lock``; every check and every change of one
trace happens under that lock, so concurrent threads and out-of-order callbacks see the
lifecycle rules applied atomically: a call either fully happens or raises and leaves
nothing behind. Values are snapshotted by the caller *before* the lock is taken, so the
lock is only held for dictionary work. No lock is shared between traces here.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from lowtrace._model import (
    NULL_BLOB,
    JsonBlob,
    SpanList,
    SpanRecord,
    Trace,
    TraceInfo,
    outermost_token_usage,
    parents_first,
)
from lowtrace._span import (
    DROPPED_SPANS,
    DroppedSpan,
    LiveSpan,
    SpanState,
    check_time,
    make_blob,
    merge_attributes,
    span_notes,
)
from lowtrace._types import SpanStatus
from lowtrace._values import (
    ENTRY_BYTES,
    EVENT_BYTES,
    SPAN_BYTES,
    TRACE_BYTES,
    clean_str,
    snapshot_mapping,
    value_bytes,
)
from lowtrace.errors import (
    InvalidArgumentError,
    LowtraceError,
    OpenSpansError,
    SpanEndedError,
    SpanNotFoundError,
    TraceEndedError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lowtrace._config import Limits

__all__ = ["LiveTrace", "TraceOwner", "TraceState", "resolve_status", "snapshot_attributes"]

_monotonic = time.monotonic
_time_ns = time.time_ns


class TraceState(enum.Enum):
    ACTIVE = "active"
    ENDED = "ended"
    ABANDONED = "abandoned"
    DETACHED = "detached"  # inherited by a forked child: the parent process owns it


class TraceOwner(Protocol):
    """What a live trace needs from its client."""

    limits: Limits

    def _violation(self, exc: LowtraceError, fallback: Any) -> Any: ...

    def _trace_finished(self, live: LiveTrace, trace: Trace) -> None: ...

    def _new_span_id(self) -> str: ...


# Enum members bound once: attribute access on an Enum class costs ~60 ns on CPython 3.11.
_UNSET: Final = SpanStatus.UNSET
_OK: Final = SpanStatus.OK
_ERROR: Final = SpanStatus.ERROR
_OPEN: Final = SpanState.OPEN
_ENDED: Final = SpanState.ENDED
_ACTIVE: Final = TraceState.ACTIVE
_TRACE_ENDED: Final = TraceState.ENDED
_ABANDONED: Final = TraceState.ABANDONED
_DETACHED: Final = TraceState.DETACHED


def resolve_status(status: SpanStatus | str | None, current: SpanStatus) -> SpanStatus:
    """The status an end call sets: None/UNSET means OK, unless an exception made it ERROR."""
    if status is None or status == _UNSET:
        return _ERROR if current is _ERROR else _OK
    if type(status) is SpanStatus:
        return status
    try:
        return SpanStatus(status)
    except ValueError:
        raise InvalidArgumentError(f"status must be a SpanStatus, got {status!r}") from None


class LiveTrace:
    """One trace being recorded: its spans, tags and state, behind one lock."""

    __slots__ = (
        "dropped_ids",
        "dropped_spans",
        "end_reason",
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
        "root",
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
        self.spans: dict[str, LiveSpan] = {}
        self.root: LiveSpan | None = None
        self.tags = tags
        self.open_count = 0
        self.last_active = _monotonic()
        self.dropped_ids: set[str] | None = None
        self.dropped_spans = 0
        self.end_reason = ""
        self.has_usage = False
        self.payload = 0  # bytes of recorded inputs and outputs
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
        inputs: JsonBlob,
        attributes: dict[str, Any],
        cut: int,
    ) -> LiveSpan:
        """Create the root span (called once, before the trace is visible to others)."""
        root = self.root = LiveSpan(
            self, span_id, parent_id, name, span_type, start_time_ns, inputs, attributes
        )
        if cut:
            span_notes(root).truncated_values += cut
        self.spans[span_id] = root
        self.open_count = 1
        self.payload = len(inputs.raw)
        return root

    def add_span(
        self,
        span_id: str,
        parent_id: str,
        name: str,
        span_type: str,
        start_time_ns: int | None,
        inputs: JsonBlob,
        attributes: dict[str, Any],
        cut: int,
    ) -> LiveSpan | DroppedSpan:
        """Start a child of ``parent_id``; raises if the trace or the parent cannot take it.

        ``start_time_ns=None`` reads the clock under the lock, after the parent is known open.
        """
        with self.lock:
            if self.state is not _ACTIVE:
                raise self.ended_error()
            parent = self.spans.get(parent_id)
            if parent is None:
                dropped = self.dropped_ids
                if dropped is not None and parent_id in dropped:
                    return self._drop(span_id, parent_id, name)
                raise SpanNotFoundError(
                    f"no span {parent_id!r} in trace {self.trace_id}; "
                    "pass the span_id of a span started in this trace as parent_id"
                )
            if parent._state is _ENDED:
                raise SpanEndedError(
                    f"parent span {parent._name!r} ({parent_id}) has already ended; "
                    "start children before ending their parent"
                )
            if len(self.spans) >= self.max_spans:
                return self._drop(span_id, parent_id, name)
            span = LiveSpan(
                self,
                span_id,
                parent_id,
                name,
                span_type,
                _time_ns() if start_time_ns is None else start_time_ns,
                inputs,
                attributes,
            )
            if len(attributes) > self.max_attributes:
                span._attributes = {}
                merge_attributes(self, span, attributes, 0)
            if cut:
                span_notes(span).truncated_values += cut
            self.spans[span_id] = span
            self.open_count += 1
            if inputs is not NULL_BLOB:
                self.payload += len(inputs.raw)
            self.last_active = _monotonic()
            return span

    def _drop(self, span_id: str, parent_id: str, name: str) -> DroppedSpan:
        if self.dropped_ids is None:
            self.dropped_ids = set()
        self.dropped_ids.add(span_id)
        self.dropped_spans += 1
        return DroppedSpan(self.trace_id, span_id, parent_id, name)

    def span(self, span_id: str) -> LiveSpan | None:
        """The live span with this id, or None (lock-free read of one dict entry)."""
        return self.spans.get(span_id)

    def is_dropped(self, span_id: str) -> bool:
        dropped = self.dropped_ids
        return dropped is not None and span_id in dropped

    def _check_open(self, span: LiveSpan) -> None:
        if self.state is not _ACTIVE:
            raise self.ended_error()
        if span._state is _ENDED:
            raise SpanEndedError(
                f"span {span._name!r} ({span._span_id}) has already ended; it cannot change"
            )

    def apply(self, span: LiveSpan, change: Any, value: Any, extra: Any) -> None:
        """Apply one mutation to an open span of this trace, atomically with the checks."""
        with self.lock:
            self._check_open(span)
            change(self, span, value, extra)
            self.last_active = _monotonic()

    def end_span(
        self,
        span: LiveSpan,
        outputs: Any,
        attributes: Mapping[str, Any] | None,
        status: SpanStatus | str | None,
        status_message: str | None,
        end_time_ns: int | None,
    ) -> None:
        """End one span; ending the root ends the trace (same rules as ``end_trace``)."""
        if span is self.root:
            self.finish(outputs, attributes, status, status_message, end_time_ns, False)
            return
        limit = self.limits.max_value_bytes
        blob: JsonBlob | None = None
        values: dict[str, Any] | None = None
        cut, cut_attrs = False, 0
        if outputs is not None:
            blob, cut = make_blob(outputs, limit)
        if attributes:
            values, cut_attrs = snapshot_attributes(attributes, limit)
        elif attributes is not None and type(attributes) is not dict:
            snapshot_attributes(attributes, limit)  # raises for a non-mapping
        given = None if end_time_ns is None else check_time(end_time_ns, "end_time_ns")
        new_status = _OK if status is None else resolve_status(status, _OK)
        if status_message is not None and type(status_message) is not str:
            _check_message(status_message)
        status_message = _clean_message(status_message)
        with self.lock:
            if self.state is not _ACTIVE or span._state is _ENDED:
                self._check_open(span)
            end = _time_ns() if given is None else given  # under the lock: see add_span
            if end < span._start_time_ns:
                raise InvalidArgumentError(
                    f"end_time_ns {end} is before the span's start_time_ns {span._start_time_ns}"
                )
            if span._status is _ERROR and (status is None or status == "UNSET"):
                new_status = _ERROR  # a recorded exception keeps the span ERROR
            self._close(span, blob, cut, values, cut_attrs, new_status, status_message, end)
            self.open_count -= 1
            self.last_active = _monotonic()

    def _close(
        self,
        span: LiveSpan,
        blob: JsonBlob | None,
        cut: bool,
        values: dict[str, Any] | None,
        cut_attrs: int,
        status: SpanStatus,
        status_message: str | None,
        end: int,
    ) -> None:
        """Apply an end call to a span (under the lock, after every check has passed)."""
        if values:
            merge_attributes(self, span, values, cut_attrs)
        if blob is not None:
            span._outputs = blob
            self.payload += len(blob.raw)
            if cut:
                span_notes(span).truncated_values += 1
        span._status = status
        if status_message is not None:
            span._status_message = status_message
        elif status is not _ERROR:
            span._status_message = None
        span._end_time_ns = end
        span._state = _ENDED

    def finish(
        self,
        outputs: Any,
        attributes: Mapping[str, Any] | None,
        status: SpanStatus | str | None,
        status_message: str | None,
        end_time_ns: int | None,
        close_open_spans: bool,
        *,
        abandon_reason: str = "",
    ) -> Trace:
        """End the root and the trace, then hand the finished trace to the owner."""
        blob: JsonBlob | None = None
        values: dict[str, Any] | None = None
        cut, cut_attrs = False, 0
        if outputs is not None:
            blob, cut = make_blob(outputs, self.limits.max_value_bytes)
        if attributes:
            values, cut_attrs = snapshot_attributes(attributes, self.limits.max_value_bytes)
        elif attributes is not None and type(attributes) is not dict:
            snapshot_attributes(attributes, 0)  # raises for a non-mapping
        given = None if end_time_ns is None else check_time(end_time_ns, "end_time_ns")
        if status_message is not None and type(status_message) is not str:
            _check_message(status_message)
        status_message = _clean_message(status_message)
        root = self.root
        assert root is not None
        with self.lock:
            if self.state is not _ACTIVE:
                raise self.ended_error()
            end = _time_ns() if given is None else given  # under the lock: see add_span
            if end < root._start_time_ns:
                if not abandon_reason:
                    raise InvalidArgumentError(
                        f"end_time_ns {end} is before the trace's start_time_ns "
                        f"{root._start_time_ns}"
                    )
                end = root._start_time_ns
            if status is None and root._status is not _ERROR:
                new_status = _OK
            else:
                new_status = resolve_status(status, root._status)
            still_open = self.open_count - 1
            if still_open and not close_open_spans:
                names = [
                    f"{s._name!r} ({s._span_id})"
                    for s in self.spans.values()
                    if s._state is _OPEN and s is not root
                ]
                raise OpenSpansError(
                    f"cannot end trace {self.trace_id}: {still_open} span(s) still open: "
                    f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}. End them "
                    "first, or pass close_open_spans=True to close them with status ERROR",
                    tuple(
                        s._span_id
                        for s in self.spans.values()
                        if s._state is _OPEN and s is not root
                    ),
                )
            # Every check passed: from here on nothing raises.
            if still_open:
                why = abandon_reason or "closed by end_trace(close_open_spans=True)"
                for span in self.spans.values():
                    if span._state is _OPEN and span is not root:
                        span._status = _ERROR
                        span._status_message = f"span was still open: {why}"
                        span._end_time_ns = max(end, span._start_time_ns)
                        span._state = _ENDED
                        span._attributes["lowtrace.closed_open_span"] = True
            self._close(root, blob, cut, values, cut_attrs, new_status, status_message, end)
            if self.dropped_spans:
                root._attributes[DROPPED_SPANS] = self.dropped_spans
            self.open_count = 0
            if abandon_reason:
                self.state = _ABANDONED
                self.end_reason = f"closed as abandoned: {abandon_reason}"
            else:
                self.state = _TRACE_ENDED
        # Ended: spans and tags never change again, so they are handed over without copies.
        trace = _build_trace(self, root)
        self.owner._trace_finished(self, trace)
        return trace

    def payload_bytes(self) -> int:
        """The memory the finished trace holds while queued (for the queue's byte bound).

        Recorded payloads count their size; every span, event and attribute counts what
        CPython objects of that kind take (measured: a span of a few small attributes holds
        ~1.2 KiB), so the bound limits real memory, not just JSON bytes.
        """
        size = TRACE_BYTES + self.payload
        for span in self.spans.values():
            attributes = span._attributes
            size += SPAN_BYTES + ENTRY_BYTES * len(attributes)
            for value in attributes.values():  # flat and cheap: this runs in end_trace
                cls = type(value)
                if cls is str:
                    size += len(value)
                elif cls is not int and cls is not float and cls is not bool:
                    size += value_bytes(value)
            events = span._events
            if events:
                for event in events:
                    size += EVENT_BYTES + value_bytes(event.attributes)
        return size

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


def _check_message(message: object) -> None:
    if message is not None and type(message) is not str:
        raise InvalidArgumentError(f"status_message must be a str or None, got {message!r}")


def _clean_message(message: str | None) -> str | None:
    """A status message that any destination can encode (see ``clean_str``)."""
    if message is None or message.isascii():
        return message
    return clean_str(message)


def snapshot_attributes(
    attributes: Mapping[str, Any] | None, limit: int
) -> tuple[dict[str, Any], int]:
    if not attributes and (attributes is None or isinstance(attributes, dict)):
        return {}, 0
    try:
        return snapshot_mapping(attributes, limit, "attributes")
    except TypeError as exc:
        raise InvalidArgumentError(str(exc)) from None


def _build_trace(live: LiveTrace, root: LiveSpan) -> Trace:
    """The finished trace; its span records are built lazily, off the request path."""
    spans = live.spans

    def records() -> list[SpanRecord]:
        out = [span.to_record() for span in spans.values()]
        for i in range(1, len(out)):
            if out[i].start_time_ns < out[i - 1].start_time_ns:
                # Explicit timestamps replayed out of order: start order, parents first.
                return parents_first(sorted(out, key=lambda r: r.start_time_ns))
        return out

    info = TraceInfo(
        live.trace_id,
        root._name,
        root._status,
        root._status_message,
        root._start_time_ns,
        root._end_time_ns or root._start_time_ns,
        live.tags,
        outermost_token_usage(spans.values()) if live.has_usage else None,  # type: ignore[arg-type]
        len(spans),
        live.metadata,
        live.session_id,
        live.user_id,
    )
    return Trace(info, SpanList(source=records))
