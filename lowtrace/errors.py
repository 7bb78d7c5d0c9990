"""Every exception lowtrace raises, in one tree.

Catch ``LowtraceError`` to handle anything from lowtrace; catch a leaf to handle one rule.

    LowtraceError
    ├── LifecycleError                 the call breaks a rule of the trace/span lifecycle
    │   ├── TraceNotFoundError         no live trace has this id
    │   ├── SpanNotFoundError          no span with this id in the trace (or it is in another trace)
    │   ├── TraceEndedError            the trace has ended; it cannot change any more
    │   ├── SpanEndedError             the span has ended; it cannot change or get children
    │   └── OpenSpansError             end_trace while spans are still open
    ├── InvalidArgumentError           a bad argument (also a ValueError and a TypeError)
    ├── FilterError                    a malformed search_traces filter (also a ValueError)
    ├── StoreError                     a store cannot be opened, read or written
    │   ├── StoreNotFoundError         reading a store that does not exist
    │   └── QueryTimeoutError          a search ran past its time limit (``time_limit``)
    ├── ExportRejectedError            a destination's final "no" to a batch: never retried
    ├── WaitTimeoutError               wait_for in lowtrace.testing timed out (also a TimeoutError)
    └── MissingExtraError              an optional extra is not installed (also an ImportError)
"""

from __future__ import annotations

__all__ = [
    "ExportRejectedError",
    "FilterError",
    "InvalidArgumentError",
    "LifecycleError",
    "LowtraceError",
    "MissingExtraError",
    "OpenSpansError",
    "QueryTimeoutError",
    "SpanEndedError",
    "SpanNotFoundError",
    "StoreError",
    "StoreNotFoundError",
    "TraceEndedError",
    "TraceNotFoundError",
    "WaitTimeoutError",
]


class LowtraceError(Exception):
    """Base class of every error lowtrace raises."""


class LifecycleError(LowtraceError):
    """A call that breaks the lifecycle rules of traces and spans; nothing was changed."""


class TraceNotFoundError(LifecycleError):
    """No live trace has the given id (it was never started, or is unknown to this client)."""


class SpanNotFoundError(LifecycleError):
    """No span with the given id exists in the trace (or the span belongs to another trace)."""


class TraceEndedError(LifecycleError):
    """The trace has already ended (or was closed as abandoned) and cannot change."""


class SpanEndedError(LifecycleError):
    """The span has already ended: it cannot be ended again, changed, or get children."""


class OpenSpansError(LifecycleError):
    """``end_trace`` was called while spans other than the root are still open."""

    def __init__(self, message: str, open_span_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.open_span_ids = open_span_ids


class InvalidArgumentError(LowtraceError, ValueError, TypeError):
    """An argument has the wrong type or value (empty name, bad id, time going backwards)."""


class FilterError(LowtraceError, ValueError):
    """A ``search_traces`` filter or ``order_by`` could not be parsed; says where."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        if position is not None and text:
            pointer = " " * position + "^"
            message = f"{message} at position {position}\n  {text}\n  {pointer}"
        super().__init__(message)
        self.text = text
        self.position = position


class StoreError(LowtraceError):
    """A trace store could not be opened, read or written."""


class StoreNotFoundError(StoreError):
    """A store was opened for reading but does not exist (reading never creates one)."""


class QueryTimeoutError(StoreError):
    """A search ran past the time limit its caller set; the store is fine, the query costly."""


class ExportRejectedError(LowtraceError):
    """An exporter's final answer for a batch (e.g. HTTP 400): not retried, counted as lost.

    Raise it from ``Exporter.export`` when retrying cannot help; any other exception means
    the attempt failed and is retried with backoff, up to the pipeline's bound.
    """


class MissingExtraError(LowtraceError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class WaitTimeoutError(LowtraceError, TimeoutError):
    """A wait for traces (``RecordingExporter.wait_for``) ran out of time before they came.

    Also a builtin ``TimeoutError``, so code that caught that before keeps working.
    """
