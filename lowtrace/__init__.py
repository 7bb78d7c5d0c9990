"""lowtrace: a fast, strict, thread-safe tracing client for AI agents and LLM apps.

The low-level client (``TracingClient``) records traces with explicit parents from any
thread; the fluent API (``@trace``, ``start_span``) builds on it with parents that follow
the call stack; the finished data model (``Trace``) is immutable and round-trips through JSON.
"""

from __future__ import annotations

from lowtrace import propagation as propagation  # the public W3C trace context module
from lowtrace._assessment import Assessment
from lowtrace._client import ClientStats, TracingClient
from lowtrace._config import Limits, PipelineConfig
from lowtrace._context import (
    TracingThreadPoolExecutor,
    get_current_span,
    update_current_trace,
    wrap,
)
from lowtrace._cost import ModelPrice, TraceCost, estimate_cost
from lowtrace._decorator import trace
from lowtrace._default import (
    flush,
    get_default_client,
    get_last_active_trace_id,
    get_trace,
    search_traces,
    set_default_client,
)
from lowtrace._handle import Span
from lowtrace._live import TraceState
from lowtrace._model import SpanEvent, SpanRecord, TokenUsage, Trace, TraceInfo
from lowtrace._noop import NoopSpan
from lowtrace._pipeline import Exporter, ExporterStats
from lowtrace._sampling import UnsampledSpan
from lowtrace._scope import start_span
from lowtrace._span import DroppedSpan, LiveSpan
from lowtrace._spandata import SpanState
from lowtrace._stores.base import TraceList, TraceStore
from lowtrace._textview import format_tree
from lowtrace._types import SpanStatus, SpanType
from lowtrace.errors import (
    ExportRejectedError,
    FilterError,
    InvalidArgumentError,
    LifecycleError,
    LowtraceError,
    MissingExtraError,
    OpenSpansError,
    QueryTimeoutError,
    SpanEndedError,
    SpanNotFoundError,
    StoreError,
    StoreNotFoundError,
    TraceEndedError,
    TraceNotFoundError,
    WaitTimeoutError,
)

__version__ = "0.1.0"

__all__ = [
    "Assessment",
    "ClientStats",
    "DroppedSpan",
    "ExportRejectedError",
    "Exporter",
    "ExporterStats",
    "FilterError",
    "InvalidArgumentError",
    "LifecycleError",
    "Limits",
    "LiveSpan",
    "LowtraceError",
    "MissingExtraError",
    "ModelPrice",
    "NoopSpan",
    "OpenSpansError",
    "PipelineConfig",
    "QueryTimeoutError",
    "Span",
    "SpanEndedError",
    "SpanEvent",
    "SpanNotFoundError",
    "SpanRecord",
    "SpanState",
    "SpanStatus",
    "SpanType",
    "StoreError",
    "StoreNotFoundError",
    "TokenUsage",
    "Trace",
    "TraceCost",
    "TraceEndedError",
    "TraceInfo",
    "TraceList",
    "TraceNotFoundError",
    "TraceState",
    "TraceStore",
    "TracingClient",
    "TracingThreadPoolExecutor",
    "UnsampledSpan",
    "WaitTimeoutError",
    "estimate_cost",
    "flush",
    "format_tree",
    "get_current_span",
    "get_default_client",
    "get_last_active_trace_id",
    "get_trace",
    "search_traces",
    "set_default_client",
    "start_span",
    "trace",
    "update_current_trace",
    "wrap",
]
