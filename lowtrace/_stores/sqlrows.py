"""The rows the SQL stores (SQLite, PostgreSQL) write for a batch of finished traces.

Both keep the same tables (one row per trace with its summary columns and the whole trace,
a row per tag, a row per span) and merge fragments of one trace the same way; only the SQL
dialect differs, so what goes into the rows is decided here, once.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Any

from lowtrace._model import Trace, counted_usage_spans, merge_traces
from lowtrace._stores.overview import span_model

__all__ = ["merged_by_id", "span_rows", "summary_row", "tag_rows"]


def merged_by_id(traces: Iterable[Trace]) -> dict[str, Trace]:
    """The batch as one trace per id (fragments merged), in sorted id order."""
    traces = list(traces)
    by_id = {trace.info.trace_id: trace for trace in traces}
    if len(by_id) == len(traces):  # the usual batch: no id twice, nothing to merge
        return dict(sorted(by_id.items()))
    groups: dict[str, list[Trace]] = {}
    for trace in traces:
        groups.setdefault(trace.info.trace_id, []).append(trace)
    return {tid: merge_traces(group) for tid, group in sorted(groups.items())}


def summary_row(trace: Trace) -> tuple[Any, ...]:
    """The columns of a ``traces`` row, in table order."""
    info = trace.info
    usage = info.token_usage
    return (
        info.trace_id,
        info.name,
        str(info.status),
        info.status_message,
        info.start_time_ns // 1_000_000,
        info.end_time_ns // 1_000_000,
        info.start_time_ns,
        info.end_time_ns,
        info.duration_ms,
        info.span_count,
        usage.input_tokens if usage else None,
        usage.output_tokens if usage else None,
        usage.total_tokens if usage else None,
        trace.to_bytes(),
    )


def tag_rows(traces: Mapping[str, Trace]) -> list[tuple[str, str, str]]:
    """``(trace_id, key, value)`` rows of ``trace_tags``."""
    return [(tid, k, v) for tid, t in traces.items() for k, v in t.info.tags.items()]


def span_rows(trace_id: str, trace: Trace) -> list[tuple[Any, ...]]:
    """The ``spans`` rows of a trace: what filters and the dashboard read. One row per span
    id (the table has no key to enforce it: the last record of an id wins). Token usage
    only on the spans it counts for, so sums match the traces' totals."""
    spans = trace.spans
    counted: Container[str] = ()
    for s in spans:
        if s.token_usage is not None:
            counted = {s.span_id for s in counted_usage_spans(spans)}
            break
    start_ms = trace.info.start_time_ns // 1_000_000
    rows: dict[str, tuple[Any, ...]] = {}
    for s in spans:
        usage = s.token_usage if counted and s.span_id in counted else None
        rows[s.span_id] = (
            trace_id,
            s.span_id,
            s.name,
            str(s.span_type),
            str(s.status),
            (s.end_time_ns - s.start_time_ns) / 1e6,
            span_model(s) if s.attributes else None,
            usage.input_tokens if usage else None,
            usage.output_tokens if usage else None,
            start_ms,
        )
    return list(rows.values())
