"""``TracingClient``: the thread-safe, lifecycle-checked, low-level tracing API.

The client validates arguments, snapshots values, finds the live trace (lock-free) and lets
the trace apply the change under its own lock. Finished traces go to the export pipeline;
reads go to the store named by the URI. In strict mode (the default) a broken rule raises a
``LifecycleError``; with ``strict=False`` it is logged and counted and the call returns an
inert value, so instrumentation can never take the application down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Final, TypeVar

from lowtrace import _forksafe
from lowtrace._annotate import TraceEdits, string_map
from lowtrace._config import Limits, PipelineConfig, env_enabled, env_uri
from lowtrace._delivery import Delivery, close_at_exit
from lowtrace._handle import Span
from lowtrace._ids import IdGenerator
from lowtrace._live import LiveTrace, TraceState
from lowtrace._model import Trace
from lowtrace._noop import NOOP_SPAN
from lowtrace._pipeline import Exporter, ExportPipeline, describe
from lowtrace._reads import StoreReads
from lowtrace._refusals import ClientStats, Refusals, check_name
from lowtrace._registry import LiveRegistry
from lowtrace._sampling import (
    NotSampled,
    UnsampledTraces,
    ratio_bound,
    resolve_sample_ratio,
)
from lowtrace._span import LiveSpan, check_time, encode_payload
from lowtrace._stores.base import TraceStore
from lowtrace._stores.discard import DiscardStore
from lowtrace._stores.uri import open_store
from lowtrace._traceparent import (
    TRACESTATE_ATTRIBUTE,
    normalize_tracestate,
    parse_traceparent_fields,
)
from lowtrace._types import SpanStatus, SpanType, normalize_span_type
from lowtrace._values import clean_str, mapping_bytes, safe_repr, snapshot_sized
from lowtrace.errors import (
    InvalidArgumentError,
    LowtraceError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["ClientStats", "TracingClient"]

log = logging.getLogger("lowtrace")
_time_ns = time.time_ns
_UNKNOWN: Final = SpanType.UNKNOWN
_ACTIVE: Final = TraceState.ACTIVE
_T = TypeVar("_T")


class TracingClient(TraceEdits, StoreReads, Refusals, Delivery):
    """Records traces: start them, add spans with explicit parents, end them, read them back.

    Every method may be called from any thread, concurrently, on the same or different
    traces. ``uri`` names where finished traces are stored and read (``memory://``,
    ``sqlite:///path.db`` — the default, from ``LOWTRACE_URI`` — ``jsonl:///path``,
    ``postgresql://...``, or a scheme a package registers in the ``lowtrace.stores`` entry
    point group), or is a ``TraceStore`` instance to use as is (``close()`` shuts it down).
    ``exporters`` receive every finished trace as well. ``sample_ratio`` (else
    ``LOWTRACE_SAMPLE_RATIO``, else 1.0) is the share of new traces recorded, decided from
    the trace id as OpenTelemetry's ``TraceIdRatioBased`` does; a remote parent's sampled
    flag wins over it.

    Strict (the default): a broken lifecycle rule or a bad argument raises the matching
    ``LowtraceError`` and changes nothing. ``strict=False``: it is logged and counted in
    ``stats().violations`` instead, and the call returns an inert value (a ``Span`` that
    records nothing, or None). Creating a client raises ``InvalidArgumentError`` for a
    malformed URI or an unknown scheme, ``MissingExtraError`` when the scheme's extra is not
    installed and ``StoreError`` when the store cannot be opened.
    """

    def __init__(
        self,
        uri: str | TraceStore | None = None,
        *,
        strict: bool = True,
        exporters: Sequence[Exporter] = (),
        limits: Limits | None = None,
        pipeline: PipelineConfig | None = None,
        enabled: bool | None = None,
        sample_ratio: float | None = None,
    ) -> None:
        self.strict = strict
        self.sample_ratio = resolve_sample_ratio(sample_ratio)
        self._sample_bound = ratio_bound(self.sample_ratio)
        self._sample_all = self.sample_ratio >= 1.0
        self.limits = limits if limits is not None else Limits()
        self.enabled = env_enabled() if enabled is None else enabled
        given: TraceStore | None = None
        if isinstance(uri, TraceStore):
            given, uri = uri, uri.uri or f"<{type(uri).__qualname__}>"
        self.uri: str = uri if uri is not None else env_uri()
        self._ids = IdGenerator()
        self._registry = LiveRegistry(self.limits, self._abandon)
        self._traces = self._registry.traces  # the live traces by id, read lock-free
        self._unsampled = UnsampledTraces(self.limits.max_live_traces)
        self._stats_lock = threading.Lock()  # guards the violation counters
        self._violations: Counter[str] = Counter()
        self._closed = False
        self._pipeline_config = pipeline if pipeline is not None else PipelineConfig()
        for exporter in exporters:
            if not callable(getattr(exporter, "export", None)):
                raise InvalidArgumentError(
                    f"exporter {safe_repr(exporter)} has no export(traces) method"
                )
        self._store: TraceStore | None = given
        lanes: list[tuple[str, Exporter]] = []
        if self.enabled:
            if self._store is None:
                self._store = open_store(self.uri)
            if not isinstance(self._store, DiscardStore):  # none:// is not a destination
                lanes.append((self._store.uri or self.uri, self._store))
        store_lane = 0 if lanes else None
        lanes.extend((describe(e), e) for e in exporters)
        self._pipeline = ExportPipeline(lanes, self._pipeline_config, store_lane=store_lane)
        _forksafe.register(self)
        close_at_exit(self)
        _forksafe.watch_worker_exit()

    def __repr__(self) -> str:
        state = "disabled" if not self.enabled else "closed" if self._closed else "open"
        return f"<TracingClient uri={self.uri!r} {state}>"

    def __enter__(self) -> TracingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- starting ---------------------------------------------------------------------------

    def start_trace(
        self,
        name: str,
        *,
        span_type: SpanType | str = SpanType.CHAIN,
        inputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        start_time_ns: int | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Span:
        """Start a trace and return its live root span.

        ``traceparent`` (a W3C header value) continues a remote trace: the trace keeps the
        remote trace id and the root's ``parent_id`` is the remote span id; a caller that did
        not sample (``-00``) gets a non-recording handle. ``tracestate`` (the W3C header)
        travels with the trace unchanged: on every span handle, to the next hop and to OTLP;
        an invalid one is discarded whole, as the W3C spec asks. ``metadata`` (str values) is
        fixed once the trace ends, unlike tags.

        Returns the root ``Span`` (an inert one when tracing is disabled or, non-strict, when
        the call was refused). Raises ``InvalidArgumentError`` for a bad name, span type,
        timestamp, mapping or ``traceparent``, or a remote trace already live here.
        """
        if not self.enabled:
            return NOOP_SPAN
        try:
            if type(name) is not str or not name or name.isspace():
                check_name(name)
            if not name.isascii():
                name = clean_str(name)
            parent_id: str | None = None
            if traceparent is not None:
                remote = parse_traceparent_fields(traceparent)
                trace_id, parent_id, sampled = remote.trace_id, remote.span_id, remote.sampled
                if trace_id in self._traces:
                    raise InvalidArgumentError(
                        f"trace {trace_id} is already live in this client; use start_span"
                    )
            else:
                trace_id = next(self._ids.trace_ids, None) or self._ids.trace_id()
                sampled = self._sample_all or int(trace_id[16:], 16) < self._sample_bound
            state = normalize_tracestate(tracestate) if tracestate is not None else None
            if not sampled:
                return self._unsampled.start(trace_id, self._ids.span_id(), parent_id, name, state)
            kind = span_type if type(span_type) is SpanType else normalize_span_type(span_type)
            if start_time_ns is None:
                start = _time_ns()
            else:
                start = check_time(start_time_ns, "start_time_ns")
            limit = self.limits.max_value_bytes
            raw, cut = encode_payload(inputs, limit)
            values: dict[str, Any]
            if attributes is None:
                values, cut_attrs, size = {}, 0, 0
            else:
                values, cut_attrs, size = snapshot_sized(attributes, limit, "attributes")
            if state is not None:  # first, so that the attribute limit keeps it
                values.pop(TRACESTATE_ATTRIBUTE, None)
                values = {TRACESTATE_ATTRIBUTE: state, **values}
                size = mapping_bytes(values)
            tag_values = string_map(tags, "tags") if tags else {}
            live = LiveTrace(self, trace_id, tag_values)
            live.tracestate = state
            if metadata:
                live.metadata = string_map(metadata, "metadata")
            root = live.add_root(
                next(self._ids.span_ids, None) or self._ids.span_id(),
                parent_id,
                name,
                kind,
                start,
                raw,
                values,
                cut + cut_attrs,
                size,
            )
            self._registry.add(live)
            return root
        except LowtraceError as exc:
            return self._violation(exc, NOOP_SPAN)

    def start_span(
        self,
        name: str,
        *,
        trace_id: str,
        parent_id: str,
        span_type: SpanType | str = _UNKNOWN,
        inputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        start_time_ns: int | None = None,
    ) -> Span:
        """Start a span under ``parent_id`` in a live trace and return its handle.

        Returns the span's ``Span`` handle: a dropped one (records nothing, not an error)
        past ``Limits.max_spans_per_trace`` or under a dropped parent. Raises
        ``TraceNotFoundError`` / ``TraceEndedError`` for a trace that is unknown / has ended,
        ``SpanNotFoundError`` for a parent not in this trace, ``SpanEndedError`` for an ended
        parent, and ``InvalidArgumentError`` for bad arguments.
        """
        if not self.enabled:
            return NOOP_SPAN
        try:
            try:
                live = self._traces.get(trace_id)
            except TypeError:  # an unhashable id: _live() says what is wrong with it
                live = None
            if live is None or live.state is not _ACTIVE:
                if live is None and type(trace_id) is str and trace_id in self._unsampled:
                    if type(name) is not str or not name or name.isspace():
                        check_name(name)
                    if type(parent_id) is not str:
                        raise InvalidArgumentError(
                            "parent_id must be the str span_id of a span, "
                            f"got {safe_repr(parent_id)}"
                        )
                    child = self._unsampled.child(trace_id, self._ids.span_id(), parent_id, name)
                    if child is not None:
                        return child
                live = self._live(trace_id)  # raises the right error
            # The checks below are inlined: each Python call costs ~0.1 us on this path.
            if type(name) is not str or not name or name.isspace():
                check_name(name)
            if not name.isascii():
                name = clean_str(name)
            if type(parent_id) is not str:
                raise InvalidArgumentError(
                    "parent_id must be the str span_id of the parent span, "
                    f"got {safe_repr(parent_id)}"
                )
            kind = span_type if type(span_type) is SpanType else normalize_span_type(span_type)
            # None: the trace reads the clock under its lock, so a child can never start
            # after its parent ended.
            start = None if start_time_ns is None else check_time(start_time_ns, "start_time_ns")
            ids = self._ids
            return live.add_span(
                next(ids.span_ids, None) or ids.span_id(),
                parent_id,
                name,
                kind,
                start,
                inputs,
                attributes,
            )
        except NotSampled:  # the unsampled trace started after the first look (another thread)
            child = self._unsampled.child(trace_id, self._ids.span_id(), parent_id, name)
            return child if child is not None else NOOP_SPAN
        except LowtraceError as exc:
            return self._violation(exc, NOOP_SPAN)

    # -- ending -----------------------------------------------------------------------------

    def end_span(
        self,
        trace_id: str,
        span_id: str,
        *,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: SpanStatus | str | None = None,
        status_message: str | None = None,
        end_time_ns: int | None = None,
    ) -> None:
        """End a span. ``status=None`` means OK unless an exception was recorded on it.

        Ending the root span ends the trace, with the same rules as ``end_trace``. Returns
        None. Raises ``TraceNotFoundError`` / ``TraceEndedError`` for the trace,
        ``SpanNotFoundError`` for a span not in it, ``SpanEndedError`` for a span ended
        before (of two racing calls exactly one wins), ``InvalidArgumentError`` for bad
        arguments (an end before the start, an unknown status). Ending a dropped span is a
        no-op.
        """
        if not self.enabled:
            return
        try:
            live = self._traces.get(trace_id) if type(trace_id) is str else None
            if live is None or live.state is not _ACTIVE:
                if live is None and type(trace_id) is str and trace_id in self._unsampled:
                    self._unsampled.end(trace_id, span_id)  # no exception: keep it cheap
                    return
                live = self._live(trace_id)  # raises the right error
            span = live.spans.get(span_id) if type(span_id) is str else None
            if span is None:
                if type(span_id) is str and live.is_dropped(span_id):
                    return
                raise self._missing_span(trace_id, span_id)
            if (
                outputs is None
                and attributes is None
                and status is None
                and status_message is None
                and end_time_ns is None
            ):
                live.end_plain(span)  # the common call: nothing to check or snapshot
            else:
                live.end_span(span, outputs, attributes, status, status_message, end_time_ns)
        except NotSampled:
            self._unsampled.end(trace_id, span_id)
        except LowtraceError as exc:
            self._violation(exc, None)

    def end_trace(
        self,
        trace_id: str,
        *,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: SpanStatus | str | None = None,
        status_message: str | None = None,
        end_time_ns: int | None = None,
        close_open_spans: bool = False,
    ) -> Trace | None:
        """End the root span and the trace; return the finished ``Trace``.

        Raises ``OpenSpansError`` while other spans are open, unless ``close_open_spans``
        is true: then they are ended with status ERROR and a message saying so. The trace
        is handed to the export pipeline; the caller never waits on I/O.

        Returns the immutable finished ``Trace`` (None when tracing is disabled or,
        non-strict, when the call was refused). Also raises ``TraceNotFoundError`` /
        ``TraceEndedError`` and ``InvalidArgumentError`` like ``end_span``.
        """
        if not self.enabled:
            return None
        try:
            live = self._traces.get(trace_id) if type(trace_id) is str else None
            if live is None or live.state is not _ACTIVE:
                if live is None and type(trace_id) is str and trace_id in self._unsampled:
                    self._unsampled.end(trace_id, None)  # no exception: keep it cheap
                    return None
                live = self._live(trace_id)  # raises the right error
            return live.finish(
                outputs, attributes, status, status_message, end_time_ns, close_open_spans
            )
        except NotSampled:
            self._unsampled.end(trace_id, None)
            return None
        except LowtraceError as exc:
            return self._violation(exc, None)

    def get_live_span(self, trace_id: str, span_id: str) -> LiveSpan | None:
        """The handle of an open or ended span of a live trace, or None; never raises."""
        live = self._registry.traces.get(trace_id) if type(trace_id) is str else None
        return live.span(span_id) if live is not None and type(span_id) is str else None

    # -- internals used by live traces -------------------------------------------------------

    def _new_span_id(self) -> str:
        ids = self._ids
        return next(ids.span_ids, None) or ids.span_id()

    def _after_fork_in_child(self) -> None:
        self._registry.after_fork_in_child()  # empties self._traces in place
        self._unsampled = UnsampledTraces(self.limits.max_live_traces)
        self._pipeline.after_fork_in_child()
        self._stats_lock = threading.Lock()
        if self._closing is not None:  # closed (or closing) in the parent: closed here too
            self._closing = threading.Event()  # not the parent's: its lock may be held
            self._closing.set()
