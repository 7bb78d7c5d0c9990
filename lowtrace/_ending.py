"""Ending spans and traces: the end calls of a live trace, and the finished ``Trace``.

A mixin of ``LiveTrace`` (kept apart so that starting and ending each read on their own).
An end call's arguments are checked and snapshotted before the trace's lock is taken;
under the lock the lifecycle checks run against the current state, and only once all of
them passed does the span (and, for the root, the trace) close, so a refused call changes
nothing. An ended trace hands its spans over without copies: their records are built on
first read, usually by the export worker, off the request path.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Any, Final, cast

from lowtrace._model import (
    JsonBlob,
    SpanList,
    SpanRecord,
    Trace,
    TraceInfo,
    outermost_token_usage,
    parents_first,
)
from lowtrace._span import check_time, make_blob
from lowtrace._spandata import (
    DROPPED_SPANS,
    SpanData,
    SpanState,
    blob_bytes,
    merge_attributes,
)
from lowtrace._types import SpanStatus
from lowtrace._values import (
    ENTRY_BYTES,
    SPAN_BYTES,
    TRACE_BYTES,
    clean_str,
    safe_repr,
    snapshot_mapping,
)
from lowtrace.errors import InvalidArgumentError, OpenSpansError, TraceEndedError

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

    from lowtrace._config import Limits
    from lowtrace._live import LiveTrace, TraceOwner

__all__ = ["TraceEnding", "TraceState", "resolve_status"]

_monotonic = time.monotonic
_time_ns = time.time_ns


class TraceState(enum.Enum):
    ACTIVE = "active"
    ENDED = "ended"
    ABANDONED = "abandoned"
    DETACHED = "detached"  # inherited by a forked child: the parent process owns it


# Enum members bound once: attribute access on an Enum class costs ~60 ns on CPython 3.11.
_UNSET: Final = SpanStatus.UNSET
_OK: Final = SpanStatus.OK
_ERROR: Final = SpanStatus.ERROR
_OPEN: Final = SpanState.OPEN
_ENDED: Final = SpanState.ENDED
_ACTIVE: Final = TraceState.ACTIVE
_TRACE_ENDED: Final = TraceState.ENDED
_ABANDONED: Final = TraceState.ABANDONED


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


class TraceEnding:
    """The end calls of a ``LiveTrace``: ``end_span``, ``end_plain``, ``finish``."""

    if not TYPE_CHECKING:  # LiveTrace declares the slots; mypy reads the fields below
        __slots__ = ()

    if TYPE_CHECKING:  # the LiveTrace fields these methods use
        owner: TraceOwner
        limits: Limits
        trace_id: str
        lock: threading.Lock
        state: TraceState
        spans: dict[str, SpanData]
        root: SpanData | None
        tags: dict[str, str]
        open_count: int
        last_active: float
        dropped_spans: int
        end_reason: str
        has_usage: bool
        payload: int
        metadata: dict[str, str]
        session_id: str | None
        user_id: str | None

        def ended_error(self) -> TraceEndedError: ...
        def _check_open(self, span: SpanData) -> None: ...

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
            # Under the lock (see add_span); a clock reading is never before the start:
            # the wall clock may step back.
            end = max(_time_ns(), span.start_time_ns) if given is None else given
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
            if end < span.start_time_ns:  # noqa: PLR1730 (the clock stepped back; max() costs a call)
                end = span.start_time_ns
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
            merge_attributes(cast("LiveTrace", self), span, values, cut_attrs)
        if blob is not None:
            self.payload += blob_bytes(blob) - blob_bytes(span.outputs)
            span.outputs = blob
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
            # Read under the lock (see add_span); never before any time the trace recorded:
            # the wall clock may have stepped back since, and the trace must cover its spans.
            if given is None:
                end = _latest(self.spans, max(_time_ns(), root.start_time_ns))
            else:
                end = given
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
            if still_open and given is None:  # the spans it closes end inside it too
                end = max(end, *(s.start_time_ns for s in self.spans.values() if s.state is _OPEN))
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
        live = cast("LiveTrace", self)
        trace = _build_trace(live, root)
        self.owner._trace_finished(live, trace)
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


def _latest(spans: dict[str, SpanData], now: int) -> int:
    """``now``, or the latest end already recorded in the trace if that is later (a plain
    loop: it measured three times cheaper than ``max()`` over ``map``/``filter``)."""
    for span in spans.values():
        recorded = span.end_time_ns
        if recorded is not None and recorded > now:
            now = recorded
    return now


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
