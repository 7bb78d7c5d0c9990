"""Plain-text views of traces for terminals: an indented span tree and a traces table.

Durations and counts are written as the web UI writes them (``2.13 s``, ``1,010``): the UI's
cells use the same ``duration_text`` and ``tokens_text``.

Trace text is untrusted: bidi overrides, invisible and terminal control characters in it
are printed as their escapes (``\\u202e``), never sent raw to the terminal.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from lowtrace._assessment import Assessment
from lowtrace._controls import escape_controls
from lowtrace._model import SpanRecord, TokenUsage, Trace, TraceInfo
from lowtrace._types import SpanStatus

__all__ = [
    "duration_text",
    "failed_spans",
    "format_assessment",
    "format_table",
    "format_tree",
    "tokens_text",
]


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def duration_text(ms: float) -> str:
    """``7.12 ms``, ``640 ms``, ``2.13 s``, ``2 min 5 s``: short enough for one line."""
    if ms < 10:
        return f"{ms:.2f} ms"
    # Halves round up here, as the trace page's script (view.js fmtMs) rounds them.
    if (whole := math.floor(ms + 0.5)) < 1000:
        return f"{whole} ms"
    if (hundredths := math.floor(ms / 10 + 0.5)) < 6000:
        return f"{hundredths / 100:.2f} s"
    minutes, seconds = divmod(math.floor(ms / 1000 + 0.5), 60)
    return f"{minutes:,} min {seconds} s"


def tokens_text(total: int | None) -> str:
    """A token count with thousands separators (empty when nothing was counted)."""
    return "" if total is None else f"{total:,}"


def _tokens(usage: TokenUsage | None) -> str:
    if usage is None:
        return ""
    return (
        f"{tokens_text(usage.total_tokens)} tok "
        f"({tokens_text(usage.input_tokens)} in / {tokens_text(usage.output_tokens)} out)"
    )


def _value(span: SpanRecord, which: str, width: int) -> str:
    raw = span.inputs_json if which == "inputs" else span.outputs_json
    return _clip(raw.decode("utf-8", "replace"), width)


def format_tree(trace: Trace, *, show_io: bool = False, width: int = 100) -> str:
    """An indented tree: name, type, duration, status and tokens of every span."""
    info = trace.info
    lines = [
        f"Trace {info.trace_id}  {info.name!r}  {info.status}"
        + (f" ({info.status_message})" if info.status_message else "")
        + f"  {duration_text(info.duration_ms)}  {info.span_count:,} spans"
        + (f"  {_tokens(info.token_usage)}" if info.token_usage else ""),
    ]
    if info.tags:
        lines.append("  tags: " + ", ".join(f"{k}={v}" for k, v in sorted(info.tags.items())))
    if info.session_id or info.user_id:
        lines.append(f"  session: {info.session_id or '-'}  user: {info.user_id or '-'}")
    if info.metadata:
        pairs = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
        lines.append("  metadata: " + _clip(pairs, width))
    lines.extend(f"  {format_assessment(a, width)}" for a in info.assessments)
    for depth, span in trace.walk():
        mark = "✗" if span.status is SpanStatus.ERROR else "•"
        took = duration_text(span.duration_ms)
        line = f"{'  ' * (depth + 1)}{mark} {span.name} [{span.span_type}] {took}"
        if span.token_usage:
            line += f"  {_tokens(span.token_usage)}"
        if span.status is SpanStatus.ERROR and span.status_message:
            line += f"  ERROR: {_clip(span.status_message, 60)}"
        lines.append(line)
        if show_io:
            pad = "  " * (depth + 2)
            if span.inputs_json != b"null":
                lines.append(f"{pad}in:  {_value(span, 'inputs', width)}")
            if span.outputs_json != b"null":
                lines.append(f"{pad}out: {_value(span, 'outputs', width)}")
    return escape_controls("\n".join(lines))


def format_assessment(assessment: Assessment, width: int = 100) -> str:
    """One line: kind, name = value, who said so and why."""
    source = assessment.source or {}
    who = "/".join(v for v in (source.get("type"), source.get("id")) if v)
    line = f"{assessment.kind} {assessment.name} = {assessment.value_json.decode()}"
    if who:
        line += f"  by {who}"
    if assessment.span_id:
        line += f"  on span {assessment.span_id}"
    if assessment.rationale:
        line += f"  ({assessment.rationale})"
    return escape_controls(_clip(line, width))


def failed_spans(trace: Trace) -> int:
    """How many of the trace's spans ended in ERROR (an OK trace may hide a failed tool)."""
    return sum(span.status == "ERROR" for span in trace.spans)


def format_table(infos: Sequence[TraceInfo], failed: Sequence[int] | None = None) -> str:
    """One line per trace: id, start, name, status, duration, spans, tokens, tags.

    ``failed[i]``, the failed-span count of ``infos[i]``, marks its status as the UI list
    does (``OK ⚠1``: the trace ended OK but a span in it failed).
    """
    statuses = [
        f"{info.status} ⚠{failed[n]}" if failed and failed[n] else str(info.status)
        for n, info in enumerate(infos)
    ]
    width = max([9, *map(len, statuses)])  # "ERROR ⚠101" is wider than the header
    header = (
        f"{'TRACE ID':32}  {'START (UTC)':19}  {'STATUS':{width}}  {'DURATION':>11}  "
        f"{'SPANS':>5}  {'TOKENS':>7}  NAME / TAGS"
    )
    rows = [header]
    for info, status in zip(infos, statuses, strict=True):
        start = dt.datetime.fromtimestamp(info.start_time_ns / 1e9, dt.UTC)
        tokens = tokens_text(info.token_usage.total_tokens) if info.token_usage else "-"
        tags = " ".join(f"{k}={v}" for k, v in sorted(info.tags.items()))
        rows.append(
            f"{info.trace_id}  {start:%Y-%m-%d %H:%M:%S}  {status:{width}}  "
            f"{duration_text(info.duration_ms):>11}  {info.span_count:>5,}  {tokens:>7}  "
            f"{_clip(info.name, 40)}{'  ' + _clip(tags, 60) if tags else ''}"
        )
    return escape_controls("\n".join(rows))
