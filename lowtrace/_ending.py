"""Ending spans and traces: the end calls of a live trace, and the finished ``Trace``.

A mixin of ``LiveTrace`` (kept apart so that starting and ending each read on their own).
An end call's arguments are checked and snapshotted before the trace's lock is taken;
under the lock the lifecycle checks run against the current state, and only once all of
them passed does the span (and, for the root, the trace) close, so a refused call changes
nothing. An ended trace hands its spans' fields over as one tuple (values are not
copied): their records are built on first read, usually by the export worker, off the
request path.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Any, Final, cast

from lowtrace._frozen import EMPTY, freeze_mapping
from lowtrace._model import Trace, TraceInfo
from lowtrace._records import lazy_span_list, slot_setters
from lowtrace._span import check_time, encode_payload
from lowtrace._spandata import (
    ATTRIBUTES,
    DROPPED_SPANS,
    END,
    MESSAGE,
    NAME,
    OUTPUTS,
    PARENT_ID,
    ROOT,
    START,
    STATUS,
    USAGE,
    WIDTH,
    blob_bytes,
    merge_attributes,
    note,
    span_records,
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
    from collections.abc import Iterator, Mapping, Sequence

    from lowtrace._config import Limits
    from lowtrace._live import LiveTrace, TraceOwner
    from lowtrace._records import TokenUsage

__all__ = ["TraceEnding", "TraceState", "resolve_status"]

_monotonic = time.monotonic
_time_ns = time.time_ns
_new = object.__new__


class TraceState(enum.Enum):
    ACTIVE = "active"
    ENDED = "ended"
    ABANDONED = "abandoned"
    DETACHED = "detached"  # inherited by a forked child: the parent process owns it


# Enum members bound once: attribute access on an Enum class costs ~60 ns on CPython 3.11.
_UNSET: Final = SpanStatus.UNSET
_OK: Final = SpanStatus.OK
_ERROR: Final = SpanStatus.ERROR
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
        fields: list[Any]
        spans: dict[str, int]
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
        def _check_open(self, base: int) -> None: ...

    def end_span(
        self,
        base: int,
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
        raw: bytes | None = None  # None: no outputs given
        values: dict[str, Any] | None = None
        cut, cut_attrs = False, 0
        if outputs is not None:
            raw, cut = encode_payload(outputs, limit)
        if attributes is not None:
            values, cut_attrs = snapshot_mapping(attributes, limit, "attributes")
        given = None if end_time_ns is None else check_time(end_time_ns, "end_time_ns")
        if status_message is not None and type(status_message) is not str:
            raise InvalidArgumentError(
                f"status_message must be a str or None, got {safe_repr(status_message)}"
            )
        status_message = _clean_message(status_message)
        if base == ROOT:
            return self._finish(
                raw,
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
            fields = self.fields
            if self.state is not _ACTIVE or fields[base + END] is not None:
                self._check_open(base)
            # Under the lock (see add_span); a clock reading is never before the start:
            # the wall clock may step back.
            start = fields[base + START]
            end = max(_time_ns(), start) if given is None else given
            if end < start:
                raise InvalidArgumentError(
                    f"end_time_ns {end} is before the span's start_time_ns {start}"
                )
            if fields[base + STATUS] is _ERROR and (status is None or status == "UNSET"):
                new_status = _ERROR  # a recorded exception keeps the span ERROR
            self._close(base, raw, cut, values, cut_attrs, new_status, status_message, end)
            self.open_count -= 1
            self.last_active = _monotonic()
        finally:
            lock.release()
        return None

    def end_plain(self, base: int) -> None:
        """``end_span`` without arguments (the common call): the span ends now, OK unless an
        exception made it ERROR; ending the root ends the trace."""
        if base == ROOT:
            self.end_span(base, None, None, None, None, None)
            return
        lock = self.lock
        lock.acquire()
        try:
            fields = self.fields
            if self.state is not _ACTIVE or fields[base + END] is not None:
                self._check_open(base)
            end = _time_ns()  # under the lock: see add_span
            if end < fields[base + START]:  # noqa: PLR1730 (the clock stepped back; max() costs a call)
                end = fields[base + START]
            # An exception keeps ERROR and its message; an open span has a message only then.
            if fields[base + STATUS] is not _ERROR:
                fields[base + STATUS] = _OK
            fields[base + END] = end
            self.open_count -= 1
            self.last_active = _monotonic()
        finally:
            lock.release()

    def _close(
        self,
        base: int,
        raw: bytes | None,
        cut: bool,
        values: dict[str, Any] | None,
        cut_attrs: int,
        status: SpanStatus,
        status_message: str | None,
        end: int,
    ) -> None:
        """Apply an end call to a span (under the lock, after every check has passed).

        ``raw``: the outputs' JSON bytes, None when no outputs were given.
        """
        fields = self.fields
        if values:
            merge_attributes(cast("LiveTrace", self), base, values, cut_attrs)
        if raw is not None:
            self.payload += blob_bytes(raw) - blob_bytes(fields[base + OUTPUTS])
            fields[base + OUTPUTS] = raw
            if cut:
                note(fields, base).truncated_values += 1
        fields[base + STATUS] = status
        if status_message is not None:
            fields[base + MESSAGE] = status_message
        elif status is not _ERROR:
            fields[base + MESSAGE] = None
        fields[base + END] = end

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
        if (
            outputs is None
            and attributes is None
            and status is None
            and status_message is None
            and end_time_ns is None
        ):  # the common call: nothing to check or snapshot
            return self._finish(
                None, False, None, 0, None, None, None, close_open_spans, abandon_reason
            )
        trace = self.end_span(
            ROOT,
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

    def _open_spans(self) -> Iterator[int]:
        """The bases of the spans still open, the root aside (under the lock)."""
        fields = self.fields
        return (b for b in self.spans.values() if b != ROOT and fields[b + END] is None)

    def _finish(
        self,
        raw: bytes | None,
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
            fields = self.fields
            start = fields[ROOT + START]
            # Read under the lock (see add_span); never before any time the trace recorded:
            # the wall clock may have stepped back since, and the trace must cover its spans.
            end = _latest(fields, max(_time_ns(), start)) if given is None else given
            if end < start:
                if not abandon_reason:
                    raise InvalidArgumentError(
                        f"end_time_ns {end} is before the trace's start_time_ns {start}"
                    )
                end = start
            if status is None and fields[ROOT + STATUS] is not _ERROR:
                new_status = _OK
            else:
                new_status = resolve_status(status, fields[ROOT + STATUS])
            still_open = self.open_count - 1
            if still_open and not close_open_spans:
                names = [f"{fields[b + NAME]!r} ({fields[b]})" for b in self._open_spans()]
                raise OpenSpansError(
                    f"cannot end trace {self.trace_id}: {still_open} span(s) still open: "
                    f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}. End them "
                    "first, or pass close_open_spans=True to close them with status ERROR",
                    tuple(fields[b] for b in self._open_spans()),
                )
            # Every check passed: from here on nothing raises.
            if still_open and given is None:  # the spans it closes end inside it too
                end = max(end, *(fields[b + START] for b in self._open_spans()))
            if still_open:
                why = abandon_reason or "closed by end_trace(close_open_spans=True)"
                for b in list(self._open_spans()):
                    fields[b + STATUS] = _ERROR
                    fields[b + MESSAGE] = f"span was still open: {why}"
                    fields[b + END] = max(end, fields[b + START])
                    fields[b + ATTRIBUTES]["lowtrace.closed_open_span"] = True
                    self.payload += ENTRY_BYTES
            self._close(ROOT, raw, cut, values, cut_attrs, new_status, status_message, end)
            if self.dropped_spans:
                fields[ROOT + ATTRIBUTES][DROPPED_SPANS] = self.dropped_spans
                self.payload += ENTRY_BYTES
            self.open_count = 0
            if abandon_reason:
                self.state = _ABANDONED
                self.end_reason = f"closed as abandoned: {abandon_reason}"
            else:
                self.state = _TRACE_ENDED
        finally:
            lock.release()
        # Ended: the fields never change again, so they are handed over without copying
        # the values.
        live = cast("LiveTrace", self)
        trace = _build_trace(live)
        self.owner._trace_finished(live, trace)
        return trace

    def payload_bytes(self) -> int:
        """The memory the finished trace holds while queued (for the queue's byte bound).

        Recorded payloads count their size; every span, event and attribute counts what
        CPython objects of that kind take (measured: a span of a few small attributes holds
        ~1.2 KiB), so the bound limits real memory, not just JSON bytes. The values were
        counted as they were recorded, so this does not walk the spans.
        """
        return TRACE_BYTES + self.payload + SPAN_BYTES * len(self.spans)


def _latest(fields: Sequence[Any], now: int) -> int:
    """``now``, or the latest end already recorded in the trace if that is later (a plain
    loop over the spans' END slots, cheaper than ``max()`` over ``filter``)."""
    for recorded in fields[ROOT + END :: WIDTH]:
        if recorded is not None and recorded > now:
            now = recorded
    return now


def _clean_message(message: str | None) -> str | None:
    """A status message that any destination can encode (see ``clean_str``)."""
    if message is None or message.isascii():
        return message
    return clean_str(message)


def _token_usage(fields: Sequence[Any], bases: Iterator[int]) -> TokenUsage | None:
    """The trace's token usage: each model call once, the outermost report (as
    ``outermost_token_usage`` counts it over records)."""
    covered: dict[str, bool] = {}
    total: TokenUsage | None = None
    for base in bases:
        parent = fields[base + PARENT_ID]
        above = covered.get(parent, False) if parent is not None else False
        usage: TokenUsage | None = fields[base + USAGE]
        covered[fields[base]] = above or usage is not None
        if usage is not None and not above:
            total = usage if total is None else total + usage
    return total


(
    _info_trace_id,
    _info_name,
    _info_status,
    _info_status_message,
    _info_start_time_ns,
    _info_end_time_ns,
    _info_tags,
    _info_token_usage,
    _info_span_count,
    _info_metadata,
    _info_session_id,
    _info_user_id,
    _info_assessments,
) = slot_setters(
    TraceInfo,
    "trace_id name status status_message start_time_ns end_time_ns tags token_usage "
    "span_count metadata session_id user_id assessments",
)
_trace_info, _trace_spans = slot_setters(Trace, "info spans")


def _build_trace(live: LiveTrace) -> Trace:
    """The finished trace; its span records are built lazily, off the request path.

    The spans travel as one tuple of their fields: one object for the garbage collector to
    scan while the trace waits in the export queue, where a record per span was eleven.
    ``TraceInfo`` and ``Trace`` are filled without their ``__init__`` (see ``slot_setters``).
    """
    fields = tuple(live.fields)
    start = fields[ROOT + START]
    tags, metadata = live.tags, live.metadata
    info = _new(TraceInfo)
    _info_trace_id(info, live.trace_id)
    _info_name(info, fields[ROOT + NAME])
    _info_status(info, fields[ROOT + STATUS])
    _info_status_message(info, fields[ROOT + MESSAGE])
    _info_start_time_ns(info, start)
    _info_end_time_ns(info, fields[ROOT + END] or start)
    _info_tags(info, freeze_mapping(tags) if tags else EMPTY)
    _info_token_usage(
        info, _token_usage(fields, iter(live.spans.values())) if live.has_usage else None
    )
    _info_span_count(info, len(live.spans))
    _info_metadata(info, freeze_mapping(metadata) if metadata else EMPTY)
    _info_session_id(info, live.session_id)
    _info_user_id(info, live.user_id)
    _info_assessments(info, ())
    trace = _new(Trace)
    _trace_info(trace, info)
    _trace_spans(trace, lazy_span_list(span_records, fields))
    return trace
