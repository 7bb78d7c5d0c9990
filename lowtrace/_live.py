"""Live traces: the span tree being built, guarded by one lock per trace.

A ``LiveTrace`` owns its spans' records (``SpanData``; the ``LiveSpan`` handles users hold
are views of them) and a ``threading.Lock``; every check and every change of one trace
happens under that lock, so concurrent threads and out-of-order callbacks see the
lifecycle rules applied atomically: a call either fully happens or raises and leaves
nothing behind. Values are snapshotted by the caller *before* the lock is taken, so the
lock is only held for dictionary work. No lock is shared between traces here.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

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
from lowtrace._span import DroppedSpan, LiveSpan, check_time, make_blob
from lowtrace._spandata import DROPPED_SPANS, SpanData, SpanState, merge_attributes
from lowtrace._types import SpanStatus
from lowtrace._values import (
    ENTRY_BYTES,
    SPAN_BYTES,
    TRACE_BYTES,
    clean_str,
    mapping_bytes,
    safe_repr,
    snapshot_mapping,
)
from lowtrace.errors import (
    InvalidArgumentError,
    LowtraceError,
    OpenSpansError,
    SpanEndedError,
    TraceEndedError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lowtrace._config import Limits

__all__ = ["LiveTrace", "TraceOwner", "TraceState", "resolve_status"]

_monotonic = time.monotonic
_time_ns = time.time_ns
_new = object.__new__
_T = TypeVar("_T")


class TraceState(enum.Enum):
    ACTIVE = "active"
    ENDED = "ended"
    ABANDONED = "abandoned"
    DETACHED = "detached"  # inherited by a forked child: the parent process owns it


class TraceOwner(Protocol):
    """What a live trace needs from its client."""

    limits: Limits

    def _violation(self, exc: LowtraceError, fallback: _T) -> _T: ...

    def _missing_span(self, trace_id: str, span_id: object) -> LowtraceError: ...

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
        raise InvalidArgumentError(
            f"status must be a SpanStatus, got {safe_repr(status)}"
        ) from None


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
        self.spans: dict[str, SpanData] = {}
        self.root: SpanData | None = None
        self.tags = tags
        self.open_count = 0
        self.last_active = _monotonic()
        self.dropped_ids: set[str] | None = None
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
        inputs: JsonBlob,
        attributes: dict[str, Any],
        cut: int,
    ) -> LiveSpan:
        """Create the root span (called once, before the trace is visible to others)."""
        root = self.root = SpanData(
            span_id, parent_id, name, span_type, start_time_ns, inputs, attributes
        )
        if cut:
            root.note().truncated_values += cut
        self.spans[span_id] = root
        self.open_count = 1
        self.payload = mapping_bytes(attributes)
        if inputs is not NULL_BLOB:
            self.payload += len(inputs.raw)
        return LiveSpan(self, root)

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
        size: int,
    ) -> LiveSpan | DroppedSpan:
        """Start a child of ``parent_id``; raises if the trace or the parent cannot take it.

        ``start_time_ns=None`` reads the clock under the lock, after the parent is known open.
        ``size``: what ``attributes`` hold (``snapshot_sized``).
        """
        lock = self.lock  # acquire/try/release: half the cost of a with block on 3.11
        lock.acquire()
        try:
            if self.state is not _ACTIVE:
                raise self.ended_error()
            parent = self.spans.get(parent_id)
            if parent is None:
                dropped = self.dropped_ids
                if dropped is not None and parent_id in dropped:
                    return self._drop(span_id, parent_id, name)
                raise self.owner._missing_span(self.trace_id, parent_id)
            if parent.state is _ENDED:
                raise SpanEndedError(
                    f"parent span {parent.name!r} ({parent_id}) has already ended; "
                    "start children before ending their parent"
                )
            if len(self.spans) >= self.max_spans:
                return self._drop(span_id, parent_id, name)
            # SpanData.__init__ inlined: a class call into Python costs more than the stores.
            span = _new(SpanData)
            span.span_id = span_id
            span.parent_id = parent_id
            span.name = name
            span.span_type = span_type
            span.start_time_ns = _time_ns() if start_time_ns is None else start_time_ns
            span.end_time_ns = None
            span.status = _UNSET
            span.status_message = None
            span.state = _OPEN
            span.inputs = inputs
            span.outputs = NULL_BLOB
            span.attributes = attributes
            span.events = None
            span.token_usage = None
            span.notes = None
            if len(attributes) > self.max_attributes:
                span.attributes = {}
                merge_attributes(self, span, attributes, 0)  # counts what it keeps
                size = 0
            if cut:
                span.note().truncated_values += cut
            self.spans[span_id] = span
            self.open_count += 1
            self.payload += size if inputs is NULL_BLOB else size + len(inputs.raw)
            self.last_active = _monotonic()
        finally:
            lock.release()
        handle = _new(LiveSpan)  # LiveSpan(self, span) without the __init__ call
        handle._trace = self
        handle._data = span
        return handle

    def _drop(self, span_id: str, parent_id: str, name: str) -> DroppedSpan:
        if self.dropped_ids is None:
            self.dropped_ids = set()
        self.dropped_ids.add(span_id)
        self.dropped_spans += 1
        return DroppedSpan(self.trace_id, span_id, parent_id, name)

    def span(self, span_id: str) -> LiveSpan | None:
        """A handle of the span with this id, or None (lock-free read of one dict entry)."""
        data = self.spans.get(span_id)
        return LiveSpan(self, data) if data is not None else None

    def is_dropped(self, span_id: str) -> bool:
        dropped = self.dropped_ids
        return dropped is not None and span_id in dropped

    def _check_open(self, span: SpanData) -> None:
        if self.state is not _ACTIVE:
            raise self.ended_error()
        if span.state is _ENDED:
            raise SpanEndedError(
                f"span {span.name!r} ({span.span_id}) has already ended; it cannot change"
            )

    def apply(self, span: SpanData, change: Any, value: Any, extra: Any) -> None:
        """Apply one mutation to an open span of this trace, atomically with the checks."""
        lock = self.lock
        lock.acquire()
        try:
            self._check_open(span)
            change(self, span, value, extra)
            self.last_active = _monotonic()
        finally:
            lock.release()

    def end_span(
        self,
        span: SpanData,
        outputs: Any,
        attributes: Mapping[str, Any] | None,
        status: SpanStatus | str | None,
        status_message: str | None,
        end_time_ns: int | None,
        close_open_spans: bool = False,
        abandon_reason: str = "",
    ) -> Trace | None:
        """End one span; ending the root ends the trace (``finish``) and returns it.

        The one place where the arguments of an end call are checked and snapshotted,
        before the lock is taken.
        """
        limit = self.limits.max_value_bytes
        blob: JsonBlob | None = None
        values: dict[str, Any] | None = None
        cut, cut_attrs = False, 0
        if outputs is not None:
            blob, cut = make_blob(outputs, limit)
        if attributes is not None:
            values, cut_attrs = snapshot_mapping(attributes, limit, "attributes")
        given = None if end_time_ns is None else check_time(end_time_ns, "end_time_ns")
        if status_message is not None and type(status_message) is not str:
            raise InvalidArgumentError(
                f"status_message must be a str or None, got {safe_repr(status_message)}"
            )
        status_message = _clean_message(status_message)
        if span is self.root:
            return self._finish(
                span,
                blob,
                cut,
                values,
                cut_attrs,
                status,
                status_message,
                given,
                close_open_spans,
                abandon_reason,
            )
        new_status = _OK if status is None else resolve_status(status, _OK)
        lock = self.lock
        lock.acquire()
        try:
            if self.state is not _ACTIVE or span.state is _ENDED:
                self._check_open(span)
            end = _time_ns() if given is None else given  # under the lock: see add_span
            if end < span.start_time_ns:
                raise InvalidArgumentError(
                    f"end_time_ns {end} is before the span's start_time_ns {span.start_time_ns}"
                )
            if span.status is _ERROR and (status is None or status == "UNSET"):
                new_status = _ERROR  # a recorded exception keeps the span ERROR
            self._close(span, blob, cut, values, cut_attrs, new_status, status_message, end)
            self.open_count -= 1
            self.last_active = _monotonic()
        finally:
            lock.release()
        return None

    def end_plain(self, span: SpanData) -> None:
        """``end_span`` without arguments (the common call): the span ends now, OK unless an
        exception made it ERROR; ending the root ends the trace."""
        if span is self.root:
            self.end_span(span, None, None, None, None, None)
            return
        lock = self.lock
        lock.acquire()
        try:
            if self.state is not _ACTIVE or span.state is _ENDED:
                self._check_open(span)
            end = _time_ns()  # under the lock: see add_span
            if end < span.start_time_ns:
                raise InvalidArgumentError(
                    f"end_time_ns {end} is before the span's start_time_ns {span.start_time_ns}"
                )
            if span.status is not _ERROR:  # a recorded exception keeps ERROR and its message
                span.status = _OK
                span.status_message = None
            span.end_time_ns = end
            span.state = _ENDED
            self.open_count -= 1
            self.last_active = _monotonic()
        finally:
            lock.release()

    def _close(
        self,
        span: SpanData,
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
            span.outputs = blob
            self.payload += len(blob.raw)
            if cut:
                span.note().truncated_values += 1
        span.status = status
        if status_message is not None:
            span.status_message = status_message
        elif status is not _ERROR:
            span.status_message = None
        span.end_time_ns = end
        span.state = _ENDED

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
        root = self.root
        assert root is not None
        trace = self.end_span(
            root,
            outputs,
            attributes,
            status,
            status_message,
            end_time_ns,
            close_open_spans,
            abandon_reason,
        )
        assert trace is not None
        return trace

    def _finish(
        self,
        root: SpanData,
        blob: JsonBlob | None,
        cut: bool,
        values: dict[str, Any] | None,
        cut_attrs: int,
        status: SpanStatus | str | None,
        status_message: str | None,
        given: int | None,
        close_open_spans: bool,
        abandon_reason: str,
    ) -> Trace:
        """``finish`` with its arguments prepared by ``end_span`` (``given``: the end time)."""
        lock = self.lock
        lock.acquire()
        try:
            if self.state is not _ACTIVE:
                raise self.ended_error()
            end = _time_ns() if given is None else given  # under the lock: see add_span
            if end < root.start_time_ns:
                if not abandon_reason:
                    raise InvalidArgumentError(
                        f"end_time_ns {end} is before the trace's start_time_ns "
                        f"{root.start_time_ns}"
                    )
                end = root.start_time_ns
            if status is None and root.status is not _ERROR:
                new_status = _OK
            else:
                new_status = resolve_status(status, root.status)
            still_open = self.open_count - 1
            if still_open and not close_open_spans:
                names = [
                    f"{s.name!r} ({s.span_id})"
                    for s in self.spans.values()
                    if s.state is _OPEN and s is not root
                ]
                raise OpenSpansError(
                    f"cannot end trace {self.trace_id}: {still_open} span(s) still open: "
                    f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}. End them "
                    "first, or pass close_open_spans=True to close them with status ERROR",
                    tuple(
                        s.span_id for s in self.spans.values() if s.state is _OPEN and s is not root
                    ),
                )
            # Every check passed: from here on nothing raises.
            if still_open:
                why = abandon_reason or "closed by end_trace(close_open_spans=True)"
                for span in self.spans.values():
                    if span.state is _OPEN and span is not root:
                        span.status = _ERROR
                        span.status_message = f"span was still open: {why}"
                        span.end_time_ns = max(end, span.start_time_ns)
                        span.state = _ENDED
                        span.attributes["lowtrace.closed_open_span"] = True
                        self.payload += ENTRY_BYTES
            self._close(root, blob, cut, values, cut_attrs, new_status, status_message, end)
            if self.dropped_spans:
                root.attributes[DROPPED_SPANS] = self.dropped_spans
                self.payload += ENTRY_BYTES
            self.open_count = 0
            if abandon_reason:
                self.state = _ABANDONED
                self.end_reason = f"closed as abandoned: {abandon_reason}"
            else:
                self.state = _TRACE_ENDED
        finally:
            lock.release()
        # Ended: spans and tags never change again, so they are handed over without copies.
        trace = _build_trace(self, root)
        self.owner._trace_finished(self, trace)
        return trace

    def records(self) -> list[SpanRecord]:
        """The finished span records, parents first (called once, by the trace's SpanList)."""
        trace_id = self.trace_id
        out = [span.to_record(trace_id) for span in self.spans.values()]
        for i in range(1, len(out)):
            if out[i].start_time_ns < out[i - 1].start_time_ns:
                # Explicit timestamps replayed out of order: start order, parents first.
                return parents_first(sorted(out, key=lambda r: r.start_time_ns))
        return out

    def payload_bytes(self) -> int:
        """The memory the finished trace holds while queued (for the queue's byte bound).

        Recorded payloads count their size; every span, event and attribute counts what
        CPython objects of that kind take (measured: a span of a few small attributes holds
        ~1.2 KiB), so the bound limits real memory, not just JSON bytes. The values were
        counted as they were recorded, so this does not walk the spans.
        """
        return TRACE_BYTES + self.payload + SPAN_BYTES * len(self.spans)

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


def _clean_message(message: str | None) -> str | None:
    """A status message that any destination can encode (see ``clean_str``)."""
    if message is None or message.isascii():
        return message
    return clean_str(message)


def _build_trace(live: LiveTrace, root: SpanData) -> Trace:
    """The finished trace; its span records are built lazily, off the request path."""
    spans = live.spans
    info = TraceInfo(
        live.trace_id,
        root.name,
        root.status,
        root.status_message,
        root.start_time_ns,
        root.end_time_ns or root.start_time_ns,
        live.tags,
        outermost_token_usage(spans.values()) if live.has_usage else None,  # type: ignore[arg-type]
        len(spans),
        live.metadata,
        live.session_id,
        live.user_id,
    )
    # A bound method, not a closure: one object fewer for the garbage collector to scan
    # while the trace waits in the export queue (a closure brings its cells and a tuple).
    return Trace(info, SpanList(source=live.records))
