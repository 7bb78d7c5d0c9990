"""How a ``TracingClient`` refuses a call, and what it counts.

A mixin of ``TracingClient`` (kept apart so the recording core stays small). Every public
call funnels a broken rule into ``_violation``: strict (the default), the error is raised;
``strict=False``, it is logged and counted and the call returns an inert value. The
helpers here pick the error that says what is wrong (unknown, ended, malformed, in another
trace) on the error path only, so the hot path does no extra work. ``stats()`` reports
these counts with the registry's and the export lanes'.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, TypeVar

import attrs

from lowtrace._ids import is_span_id, is_trace_id
from lowtrace._live import LiveTrace, TraceState
from lowtrace._pipeline import ExporterStats
from lowtrace._sampling import NotSampled
from lowtrace._values import safe_repr
from lowtrace.errors import (
    InvalidArgumentError,
    LowtraceError,
    SpanNotFoundError,
    TraceEndedError,
    TraceNotFoundError,
)

if TYPE_CHECKING:
    import threading
    from collections import Counter
    from collections.abc import Mapping

    from lowtrace._pipeline import ExportPipeline
    from lowtrace._registry import LiveRegistry
    from lowtrace._sampling import UnsampledTraces

__all__ = ["ClientStats", "Refusals", "check_name"]

log = logging.getLogger("lowtrace")
_ACTIVE: Final = TraceState.ACTIVE
_T = TypeVar("_T")


@attrs.frozen
class ClientStats:
    """A snapshot of what a client did and lost."""

    live_traces: int
    started_traces: int
    finished_traces: int
    abandoned_traces: int
    dropped_spans: int
    violations: Mapping[str, int]
    exporters: tuple[ExporterStats, ...]
    unsampled_traces: int = 0  # started but not recorded (sample_ratio, a -00 caller)

    @property
    def lost_traces(self) -> int:
        """Traces some destination never received (dropped, failed or rejected)."""
        return sum(e.lost for e in self.exporters)


class Refusals:
    """``_violation`` and the errors it is given; ``stats()`` and ``report_error``."""

    if TYPE_CHECKING:  # set by TracingClient.__init__
        strict: bool
        _stats_lock: threading.Lock
        _violations: Counter[str]
        _registry: LiveRegistry
        _pipeline: ExportPipeline
        _unsampled: UnsampledTraces

    def stats(self) -> ClientStats:
        """Counters: traces started, finished, abandoned; violations; per-destination export.

        Returns a frozen ``ClientStats`` snapshot; never raises.
        """
        with self._stats_lock:
            violations = dict(self._violations)
        registry = self._registry
        return ClientStats(
            live_traces=len(registry.traces),
            started_traces=registry.started,
            finished_traces=registry.finished,
            abandoned_traces=registry.abandoned,
            dropped_spans=registry.dropped_spans,
            violations=violations,
            exporters=tuple(self._pipeline.stats()),
            unsampled_traces=self._unsampled.started,
        )

    def report_error(self, exc: BaseException, where: str) -> None:
        """Count and log an error that instrumentation built on this client caught.

        The fluent API and the integrations never let a tracing error reach the user's
        code; they report it here instead, so it shows up in ``stats().violations``.
        Never raises.
        """
        name = f"{where}: {type(exc).__name__}"
        with self._stats_lock:
            self._violations[name] += 1
            count = self._violations[name]
        if count <= 10 or count % 1000 == 0:
            log.warning("lowtrace: error in %s (occurrence %d): %r", where, count, exc)

    def _violation(self, exc: LowtraceError, fallback: _T) -> _T:
        """The one guard of every public call: raise (strict), else log, count, go on.

        Non-strict, the call returns ``fallback`` (an inert span, or None) as if it had
        done nothing, which it has: a refused call changes nothing.
        """
        if self.strict:
            raise exc
        name = type(exc).__name__
        with self._stats_lock:
            self._violations[name] += 1
            count = self._violations[name]
        if count <= 10 or count % 1000 == 0:
            log.warning("lowtrace: %s: %s (occurrence %d)", name, exc, count)
        return fallback

    def _live(self, trace_id: str) -> LiveTrace:
        live = self._registry.traces.get(trace_id) if type(trace_id) is str else None
        if live is None:
            if type(trace_id) is str and trace_id in self._unsampled:
                raise NotSampled(trace_id)
            if type(trace_id) is not str or not is_trace_id(trace_id):
                raise InvalidArgumentError(
                    "trace_id must be 32 lowercase hex digits, not all zero, "
                    f"got {safe_repr(trace_id)}"
                )
            if self._registry.was_ended(trace_id) or self._unsampled.was_ended(trace_id):
                raise TraceEndedError(f"trace {trace_id} has already ended; it cannot change")
            raise TraceNotFoundError(
                f"no live trace {trace_id} in this client; start it with start_trace() first"
            )
        if live.state is not _ACTIVE:
            raise live.ended_error()
        return live

    def _missing_span(self, trace_id: str, span_id: object) -> LowtraceError:
        """The error for a span id a live trace does not have (the error path only)."""
        if type(span_id) is not str or not is_span_id(span_id):
            return InvalidArgumentError(
                f"span ids are 16 lowercase hex digits, not all zero, got {safe_repr(span_id)}"
            )
        other = self._registry.owner_of_span(span_id)
        if other is not None and other != trace_id:
            return SpanNotFoundError(
                f"span {span_id} belongs to trace {other}, not to trace {trace_id}; "
                "a parent must be in the same trace as its child"
            )
        return SpanNotFoundError(
            f"no span {safe_repr(span_id)} in trace {trace_id}; "
            "pass the span_id of a span started in this trace"
        )


def check_name(name: object) -> None:
    """Raise the error for a bad span or trace name (the error path only)."""
    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"name must be a str, got {type(name).__name__}: {safe_repr(name)}"
        )
    if not name.strip():
        raise InvalidArgumentError("name must be a non-empty str")
