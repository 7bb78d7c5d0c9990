"""The self-contained HTML trace view, and the notebook displays built on it.

One document with its CSS and JavaScript inline and the trace as JSON inside a
``<script type="application/json">``: it works offline, from a file, and in a notebook
(inside an ``<iframe srcdoc>`` so notebook styles and scripts cannot clash). Trace contents
are untrusted text: the JSON block escapes ``<``, ``>``, ``&`` and U+2028/2029, the script
builds the page with ``textContent`` only, and every cell of the HTML tables is escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import orjson

from lowtrace._controls import escape_controls
from lowtrace._controls import html_text as t
from lowtrace._cost import ModelPrice, PriceTable, estimate_cost, price_table, span_cost
from lowtrace._records import SpanRecord

if TYPE_CHECKING:
    from lowtrace._model import Trace

__all__ = ["annotations_html", "trace_document", "trace_html", "trace_list_html"]

#: Characters of one recorded value shown in the view (the stored trace keeps all of it).
MAX_VALUE_CHARS: Final = 64 * 1024
_ESCAPES: Final = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _asset(name: str) -> str:
    return resources.files("lowtrace._view").joinpath("assets", name).read_text("utf-8")


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element or start markup, whatever it holds."""
    text = orjson.dumps(data).decode("utf-8")
    for char, escaped in _ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def _value(raw: bytes) -> tuple[str | None, bool]:
    if raw == b"null":
        return None, False
    text = raw.decode("utf-8", "replace")
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS], True
    return text, False


def _small(value: Any) -> Any:
    """An attribute value, message or event value, cut to ``MAX_VALUE_CHARS`` if longer."""
    if isinstance(value, str):
        if len(value) <= MAX_VALUE_CHARS:
            return value
        return value[:MAX_VALUE_CHARS] + f" … [view cut {len(value) - MAX_VALUE_CHARS:,} chars]"
    if isinstance(value, (list, tuple, dict)):
        text = orjson.dumps(value, default=str).decode("utf-8", "replace")
        return value if len(text) <= MAX_VALUE_CHARS else _small(text)
    return value


def _small_map(values: Mapping[str, Any]) -> dict[str, Any]:
    return {str(_small(k)): _small(v) for k, v in values.items()}


def _span_data(span: SpanRecord, prices: dict[str, ModelPrice]) -> dict[str, Any]:
    inputs, cut_in = _value(span.inputs_json)
    outputs, cut_out = _value(span.outputs_json)
    usage = span.token_usage
    return {
        "id": span.span_id,
        "parent": span.parent_id,
        "name": span.name,
        "type": str(span.span_type),
        "status": str(span.status),
        "message": _small(span.status_message),
        "start": span.start_time_ns,
        "dur": span.end_time_ns - span.start_time_ns,
        "inputs": inputs,
        "outputs": outputs,
        "attributes": _small_map(span.attributes),
        "events": [
            {"name": _small(e.name), "time": e.time_ns, "attributes": _small_map(e.attributes)}
            for e in span.events
        ],
        "tokens": (
            {
                "input": usage.input_tokens,
                "output": usage.output_tokens,
                "total": usage.total_tokens,
            }
            if usage
            else None
        ),
        "cost": (cost := span_cost(span, prices) if prices else None),
        "cost_label": "" if cost is None else f"{cost:.6f}",  # as the header's total
        "truncated": (
            f"Shown in part: values over {MAX_VALUE_CHARS // 1024} KiB are cut in this view."
            if cut_in or cut_out
            else None
        ),
    }


#: Span types with their own colour in the view (the rest share UNKNOWN's).
_COLOURED: Final = frozenset(
    {"AGENT", "CHAIN", "TOOL", "LLM", "CHAT_MODEL", "RETRIEVER", "EMBEDDING", "RERANKER", "PARSER"}
)


def _ms_label(ms: float) -> str:
    if ms < 10:
        return f"{ms:.3g} ms"  # 0 ms, 0.0025 ms, 2.5 ms, 7.12 ms
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


def _axis(total_ns: int, *, tokens: bool, cost: bool) -> str:
    """The waterfall's header row: column names and a time axis in five ticks. Per-span
    tokens and cost get a column each only when the trace counted tokens / was priced."""
    ticks = "".join(
        f'<span class="lt-tick lt-tick-{i}">{_ms_label(total_ns * i / 4 / 1e6)}</span>'
        for i in range(5)
    )
    return (
        '<div class="lt-axis-row"><div class="lt-name">Span</div><div class="lt-dur">Duration</div>'
        + ('<div class="lt-tok">Tokens</div>' if tokens else "")
        + ('<div class="lt-cost">Cost</div>' if cost else "")
        + f'<div class="lt-lane lt-axis" aria-label="time since the trace started">{ticks}'
        "</div></div>"
    )


def _duration(ms: float) -> str:
    # Halves round up, as the waterfall's JavaScript rounds them (2.125 s -> 2.13 s).
    return f"{ms:,.1f} ms" if ms < 1000 else f"{math.floor(ms / 10 + 0.5) / 100:,.2f} s"


def _failures(trace: Trace) -> str:
    """``⚠ 1 span failed`` and the first failure's message, beside the status (or nothing)."""
    failed = [s for s in trace.spans if s.status == "ERROR"]
    if not failed:
        return ""
    n = len(failed)
    message = trace.info.status_message or next(
        (s.status_message for s in failed if s.status_message), ""
    )
    title = html.escape(escape_controls(message[:500]), quote=True)
    return f'<span class="lt-failed">⚠ {n} span{"" if n == 1 else "s"} failed</span>' + (
        f'<span class="lt-errmsg" title="{title}">{t(message[:300])}</span>' if message else ""
    )


def _legend(trace: Trace) -> str:
    """The span types of this trace with their waterfall colours."""
    types = sorted({str(s.span_type) for s in trace.spans})
    items = "".join(
        f'<li><span class="lt-key lt-k-{kind if kind in _COLOURED else "UNKNOWN"}"></span>'
        f"{t(kind)}</li>"
        for kind in types
    )
    return f'<ul class="lt-legend" aria-label="Span types">{items}</ul>'


def trace_document(
    trace: Trace,
    *,
    prices: PriceTable | None = None,
    assets_url: str | None = None,
    nav: str = "",
    review: str = "",
) -> str:
    """A complete HTML page showing one trace.

    By default the page is self-contained (CSS and script inline). With ``assets_url`` it
    links ``view.css`` and ``view.js`` from there instead, so a server can send a
    Content-Security-Policy that forbids inline script. ``nav`` is trusted markup put above
    the trace header and ``review`` trusted markup below it; ``prices`` (model -> per-1M-token
    prices) adds costs.
    """
    info = trace.info
    table = price_table(prices) if prices else {}
    end = max([info.end_time_ns, *(s.end_time_ns for s in trace.spans)])
    data = {
        "start": info.start_time_ns,
        "end": end,
        "spans": [_span_data(s, table) for s in trace.spans],
    }
    usage = info.token_usage
    status = str(info.status)
    cost = estimate_cost(trace, table) if table else None
    meta = [
        _duration(info.duration_ms),
        f"{info.span_count} span{'' if info.span_count == 1 else 's'}",
        f"{usage.total_tokens:,} tokens ({usage.input_tokens:,} in · {usage.output_tokens:,} out)"
        if usage
        else "",
        f"cost {cost.total:.6f}" if cost is not None and cost.by_model else "",
        " ".join(f"{k}={v}" for k, v in sorted(info.tags.items())),
        f"session {info.session_id}" if info.session_id else "",
        f"user {info.user_id}" if info.user_id else "",
    ]
    e = html.escape
    if assets_url is None:
        style = f"<style>{_asset('view.css')}</style>"
        script = f"<script>{_asset('view.js')}</script>"
    else:
        base = e(assets_url.rstrip("/"), quote=True)
        style = f'<link rel="stylesheet" href="{base}/view.css">'
        script = f'<script src="{base}/view.js"></script>'
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{e(escape_controls(info.name))} · lowtrace</title>{style}</head>"
        f'<body><div class="lt-root">{nav}<div class="lt-head">'
        f'<span class="lt-title">{t(info.name)}</span>'
        f'<span class="lt-badge {"lt-error" if status == "ERROR" else "lt-ok"}">{e(status)}'
        "</span>"
        + _failures(trace)
        + "".join(f'<span class="lt-meta">{t(m)}</span>' for m in meta if m)
        + f'<span class="lt-meta">{e(info.trace_id)}</span>{_legend(trace)}'
        '<input class="lt-search" type="search" placeholder="Search spans…" '
        'aria-label="Search spans"></div>'
        + annotations_html(trace)
        + f'{review}<div class="lt-main">'
        + f'<div class="lt-list{" lt-usage" if usage else ""}" tabindex="0">'
        + _axis(end - info.start_time_ns, tokens=usage is not None, cost=bool(table))
        + '<div class="lt-spacer"></div></div>'
        '<div class="lt-detail"></div></div>'
        f'<script type="application/json" class="lt-data">{_json_for_script(data)}</script>'
        f"</div>{script}</body></html>"
    )


def annotations_html(trace: Trace) -> str:
    """The trace's metadata and assessments as an escaped table (empty when it has none)."""
    info = trace.info
    e = html.escape
    rows = [
        f"<tr><th>metadata</th><td>{t(key)}</td><td>{t(value)}</td><td></td></tr>"
        for key, value in sorted(info.metadata.items())
    ]
    for a in info.assessments:
        source = a.source or {}
        who = "/".join(v for v in (source.get("type"), source.get("id")) if v)
        why = f" — {a.rationale}" if a.rationale else ""
        value = a.value_json.decode("utf-8", "replace")[:MAX_VALUE_CHARS]
        rows.append(
            f'<tr class="lt-{e(a.kind)}"><th>{e(a.kind)}</th><td>{t(a.name)}</td>'
            f"<td><code>{t(value)}</code></td><td>{t(who + why)}</td></tr>"
        )
    if not rows:
        return ""
    return f'<table class="lt-annotations">{"".join(rows)}</table>'


def trace_html(trace: Trace, height: int = 560, *, prices: PriceTable | None = None) -> str:
    """The trace view for a notebook cell: the document inside a sandboxed iframe."""
    document = html.escape(trace_document(trace, prices=prices), quote=True)
    return (
        f'<iframe srcdoc="{document}" sandbox="allow-scripts" '
        f'style="width:100%;height:{int(height)}px;border:1px solid #e4e7ec;border-radius:6px">'
        "</iframe>"
    )


def trace_list_html(traces: Iterable[Trace]) -> str:
    """A table of traces (name, status, start, duration, tokens, tags), every cell escaped."""
    e = html.escape
    rows = []
    for trace in traces:
        info = trace.info
        start = dt.datetime.fromtimestamp(info.start_time_ns / 1e9, dt.UTC)
        tags = ", ".join(f"{k}={v}" for k, v in sorted(info.tags.items()))
        rows.append(
            "<tr>"
            f"<td><code>{e(info.trace_id)}</code></td><td>{t(info.name)}</td>"
            f"<td>{e(str(info.status))}</td><td>{start:%Y-%m-%d %H:%M:%S}</td>"
            f'<td style="text-align:right">{info.duration_ms:,.1f} ms</td>'
            f'<td style="text-align:right">'
            f"{info.token_usage.total_tokens if info.token_usage else ''}</td>"
            f"<td>{t(tags)}</td></tr>"
        )
    return (
        "<table><thead><tr><th>trace id</th><th>name</th><th>status</th><th>start (UTC)</th>"
        "<th>duration</th><th>tokens</th><th>tags</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
