"""Head sampling: which traces are recorded, decided so that every service decides alike.

A new trace is kept when the low 64 bits of its trace id fall below
``sample_ratio * 2**64``, exactly as OpenTelemetry's ``TraceIdRatioBased`` sampler decides,
so a lowtrace service and an OpenTelemetry service with the same ratio keep the same traces.
A trace continued from a remote parent follows the parent's ``sampled`` flag instead
(``ParentBased``): a ``-00`` caller is not recorded here either.

An unsampled trace gets an ``UnsampledSpan``: a handle with valid ids that records nothing
and hands ``-00`` on to the next hop. The client remembers the live unsampled trace ids
(a bounded set) only so that ``start_span``/``end_span`` naming them are quiet no-ops.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from typing import Any, Final

from lowtrace.errors import InvalidArgumentError

__all__ = [
    "ENV_SAMPLE_RATIO",
    "NotSampled",
    "UnsampledSpan",
    "UnsampledTraces",
    "ratio_bound",
    "resolve_sample_ratio",
]

log = logging.getLogger("lowtrace")

ENV_SAMPLE_RATIO: Final = "LOWTRACE_SAMPLE_RATIO"
_ID_SPACE: Final = 1 << 64


class NotSampled(Exception):
    """Raised inside the client when a call names a live unsampled trace: a quiet no-op."""


def _check_ratio(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{where} must be a number in [0, 1], got {value!r}")
    ratio = float(value)
    if not 0.0 <= ratio <= 1.0:
        raise InvalidArgumentError(f"{where} must be in [0, 1], got {value!r}")
    return ratio


def resolve_sample_ratio(value: float | None) -> float:
    """The ratio given in code, else ``LOWTRACE_SAMPLE_RATIO``, else 1.0.

    A bad value in code raises; a bad environment value is logged and ignored (1.0), so a
    typo in a deployment never stops the application from starting.
    """
    if value is not None:
        return _check_ratio(value, "sample_ratio")
    text = os.environ.get(ENV_SAMPLE_RATIO, "").strip()
    if not text:
        return 1.0
    try:
        return _check_ratio(float(text), ENV_SAMPLE_RATIO)
    except (ValueError, InvalidArgumentError):
        log.warning("lowtrace: ignoring %s=%r: not a number in [0, 1]", ENV_SAMPLE_RATIO, text)
        return 1.0


def ratio_bound(ratio: float) -> int:
    """The bound on a trace id's low 64 bits below which a trace is kept (as OTel computes it)."""
    return round(ratio * _ID_SPACE)


class UnsampledSpan:
    """The handle of a span in a trace that is not sampled: valid ids, nothing recorded.

    Its ``traceparent`` says ``-00`` so the next hop does not record either; its
    ``tracestate`` is the incoming one, passed on unchanged. Ending the root forgets the trace.
    """

    __slots__ = ("_traces", "ended", "name", "parent_id", "span_id", "trace_id", "tracestate")

    is_recording = False

    def __init__(
        self,
        traces: UnsampledTraces,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        tracestate: str | None,
    ) -> None:
        self._traces = traces
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.tracestate = tracestate
        self.ended = False

    def __repr__(self) -> str:
        return f"<UnsampledSpan {self.name!r} trace_id={self.trace_id} span_id={self.span_id}>"

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` for the next hop, with the sampled flag off."""
        return f"00-{self.trace_id}-{self.span_id}-00"

    def end(self, **_: Any) -> None:
        """Marks the handle ended; the root's end forgets the trace."""
        self.ended = True
        if self._traces.root_of(self.trace_id) == self.span_id:
            self._traces.discard(self.trace_id)

    def set_attributes(self, attributes: Any) -> None:
        """Does nothing: the trace is not sampled."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Does nothing: the trace is not sampled."""

    def set_inputs(self, inputs: Any) -> None:
        """Does nothing: the trace is not sampled."""

    def set_outputs(self, outputs: Any) -> None:
        """Does nothing: the trace is not sampled."""

    def add_event(self, name: str, attributes: Any = None, time_ns: int | None = None) -> None:
        """Does nothing: the trace is not sampled."""

    def record_exception(self, exc: BaseException, *, time_ns: int | None = None) -> None:
        """Does nothing: the trace is not sampled."""

    def set_token_usage(self, **_: int | None) -> None:
        """Does nothing: the trace is not sampled."""


class UnsampledTraces:
    """The live unsampled traces of a client, by trace id (each its root handle).

    Bounded like the live traces: past ``capacity`` the oldest is forgotten (a later call
    naming it is then an unknown trace). ``started`` counts every unsampled trace.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.started = 0
        self._lock = threading.Lock()  # guards started and the eviction of the oldest
        # A plain dict: a lookup or pop is atomic in CPython, and it keeps insertion order,
        # so the oldest entry is the first.
        self._live: dict[str, UnsampledSpan] = {}
        # Recently ended ones, so a late call says "ended" as it does for a sampled trace.
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()

    def start(
        self,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        tracestate: str | None,
    ) -> UnsampledSpan:
        """Remember a new unsampled trace and return its root handle."""
        root = UnsampledSpan(self, trace_id, span_id, parent_id, name, tracestate)
        live = self._live
        with self._lock:
            self.started += 1
            live[trace_id] = root
            while len(live) > self.capacity:
                # discard() does not lock: a trace ending meanwhile may take the oldest
                # first (KeyError) or change the dict under the iterator (RuntimeError).
                with contextlib.suppress(KeyError, RuntimeError):
                    del live[next(iter(live))]
        return root

    def child(self, trace_id: str, span_id: str, parent_id: str, name: str) -> UnsampledSpan | None:
        """A handle for a span under a live unsampled trace; None if the trace is not one."""
        root = self._live.get(trace_id)
        if root is None:
            return None
        return UnsampledSpan(self, trace_id, span_id, parent_id, name, root.tracestate)

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._live

    def __len__(self) -> int:
        return len(self._live)

    def root_of(self, trace_id: str) -> str | None:
        """The root span id of a live unsampled trace, or None."""
        root = self._live.get(trace_id)
        return root.span_id if root is not None else None

    def end(self, trace_id: str, span_id: str | None) -> None:
        """A span of an unsampled trace ended (``None``: the trace); the root's end forgets it."""
        root = self._live.get(trace_id)
        if root is not None and (span_id is None or root.span_id == span_id):
            root.ended = True
            self.discard(trace_id)

    def discard(self, trace_id: str) -> bool:
        """Forget a trace (its root ended), remembering it as ended; True if it was live."""
        if self._live.pop(trace_id, None) is None:
            return False
        ended = self._ended
        ended[trace_id] = None
        if len(ended) > self.capacity:
            with contextlib.suppress(KeyError):  # another thread may have trimmed it
                ended.popitem(last=False)
        return True

    def was_ended(self, trace_id: str) -> bool:
        """Whether this recently was a live unsampled trace whose root has ended."""
        return trace_id in self._ended
