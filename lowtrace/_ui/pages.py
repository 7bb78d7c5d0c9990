"""The web UI's HTML pages, rendered on the server with every stored value escaped.

Trace contents are untrusted text (model output, user input, tool output). Everything taken
from a trace or a request goes through ``html.escape`` (quotes included) before it reaches
markup, and URLs are built with ``urlencode``/``quote``; pages carry no inline script or
style, so the server's Content-Security-Policy can forbid both.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Final
from urllib.parse import quote, urlencode

import attrs

from lowtrace._controls import escape_controls, html_text
from lowtrace._model import Trace, TraceInfo
from lowtrace._query.filter import string_literal
from lowtrace._query.paging import parse_order_by
from lowtrace._stores.uri import redact
from lowtrace._ui.cells import (
    duration_text,
    failure_note,
    feedback_marks,
    preview_cell,
    session_chip,
    short_when,
    tokens_text,
)
from lowtrace._ui.compare import NameStats, Row
from lowtrace._ui.frame import Site, layout, plural, preview
from lowtrace.errors import LowtraceError

__all__ = [
    "MAX_TRAIL",
    "ListQuery",
    "Site",
    "compare_page",
    "confirm_delete_page",
    "error_page",
    "layout",
    "list_page",
    "plural",
    "preview",
    "tag_filter",
    "trace_nav",
]

e = html.escape
t = html_text  # text shown to a reader: control characters visibly escaped
#: Sortable columns of the list: (header, filter-language field, first click descending?).
_COLUMNS: Final = (
    ("Name", "name", False),
    ("Status", "status", False),
    ("Started (UTC)", "start_time_ms", True),
    ("Duration", "duration_ms", True),
    ("Spans", "span_count", True),
    ("Tokens", "total_tokens", True),
)
_MAX_TAGS: Final = 6
#: Page tokens kept for "Previous" (about 120 bytes each): URLs stay well under server limits.
MAX_TRAIL: Final = 20


@attrs.frozen
class ListQuery:
    """The list page's state, all of it in the URL: filter, order, page and the way back."""

    q: str = ""
    order: str = ""
    page: str = ""  # page token of this page ("" = the first)
    trail: tuple[str, ...] = ()  # tokens of the pages before this one, the last MAX_TRAIL
    size: int = 50
    number: int = 1

    def url(
        self,
        *,
        order: str | None = None,
        page: str | None = None,
        trail: tuple[str, ...] | None = None,
        number: int | None = None,
    ) -> str:
        """The list URL of this query with some parts changed."""
        query = ListQuery(
            self.q,
            self.order if order is None else order,
            self.page if page is None else page,
            (self.trail if trail is None else trail)[-MAX_TRAIL:],
            self.size,
            self.number if number is None else number,
        )
        params: list[tuple[str, str]] = []
        if query.q:
            params.append(("q", query.q))
        if query.order:
            params.append(("order", query.order))
        if query.size != 50:
            params.append(("n", str(query.size)))
        if query.page:
            params.append(("page", query.page))
        if query.number != 1:
            params.append(("pn", str(query.number)))
        params.extend(("t", token) for token in query.trail)
        return "/?" + urlencode(params) if params else "/"


_FAILED_ROW: Final = ' class="ui-has-failed"'


def _trace_href(trace_id: str) -> str:
    return "/traces/" + quote(trace_id, safe="")


def _when(time_ns: int) -> str:
    return f"{dt.datetime.fromtimestamp(time_ns / 1e9, dt.UTC):%Y-%m-%d %H:%M:%S}"


def _status(status: str) -> str:
    kind = "ui-err" if status == "ERROR" else "ui-ok" if status == "OK" else "ui-unset"
    return f'<span class="ui-badge {kind}">{e(status)}</span>'


def tag_filter(key: str, value: str) -> str | None:
    """``tags.`key` = 'value'`` in the filter language, or None if the key cannot be quoted."""
    if not key:
        return None
    if "`" not in key:
        field = f"tags.`{key}`"
    elif '"' not in key:
        field = f'tags."{key}"'
    else:
        return None
    return f"{field} = {string_literal(value)}"


def _tags(info: TraceInfo, query: ListQuery | None = None) -> str:
    """Tag chips; on the list each links to the traces with that tag (``tk``/``tv``)."""
    items = sorted(info.tags.items())
    chips = []
    for key, value in items[:_MAX_TAGS]:
        text = f"{t(key)}={t(value)}"
        whole = e(escape_controls(f"{key}={value}"[:500]))
        if query is None or tag_filter(key, value) is None:
            chips.append(f'<span class="ui-tag" title="{whole}">{text}</span>')
            continue
        params = [("tk", key), ("tv", value)] + [("order", query.order)] * bool(query.order)
        href = "/?" + urlencode(params)
        chips.append(
            f'<a class="ui-tag" href="{e(href)}" title="{whole} (traces with this tag)">{text}</a>'
        )
    if len(items) > _MAX_TAGS:
        chips.append(f'<span class="ui-more">+{len(items) - _MAX_TAGS}</span>')
    return "".join(chips)


def _current_order(order: str) -> tuple[str, bool]:
    """The first sort field of ``order`` and whether it is descending (newest first if none)."""
    try:
        first = parse_order_by(order or None)[0]
    except LowtraceError:
        return "", False
    return first.field.name, first.descending


def _sort_header(query: ListQuery, label: str, field: str, descending_first: bool) -> str:
    current, descending = _current_order(query.order)
    if current == field:
        arrow = " ▼" if descending else " ▲"
        next_order = f"{field} {'ASC' if descending else 'DESC'}"
    else:
        arrow, next_order = "", f"{field} {'DESC' if descending_first else 'ASC'}"
    href = query.url(order=next_order, page="", trail=(), number=1)
    return f'<th><a class="ui-sort" href="{e(href)}">{e(label)}{arrow}</a></th>'


_FILTER_HELP: Final = (
    '<details class="ui-help"><summary>Filter language</summary><ul>'
    "<li><code>status = 'ERROR' AND duration_ms &gt; 500</code></li>"
    "<li><code>name LIKE 'agent%' OR tags.env IN ('prod', 'staging')</code></li>"
    "<li><code>span.type = 'TOOL' AND total_tokens &gt;= 1000</code></li>"
    "<li><code>tags.`user.id` = 'u-42' AND NOT span.status = 'ERROR'</code></li></ul>"
    "<p>Fields: <code>trace_id name status status_message start_time_ms end_time_ms "
    "duration_ms span_count input_tokens output_tokens total_tokens session_id user_id "
    "tags.&lt;key&gt; metadata.&lt;key&gt; feedback.&lt;name&gt; expectation.&lt;name&gt; "
    "span.name span.type span.status</code> (<code>status</code> is the trace's, "
    "<code>span.*</code> holds when any span matches). Operators: <code>= != &lt; &lt;= "
    "&gt; &gt;= LIKE ILIKE RLIKE IN NOT IN IS NULL IS NOT NULL AND OR NOT</code>.</p></details>"
)


def list_page(
    site: Site,
    query: ListQuery,
    traces: Sequence[Trace],
    *,
    total: int | None,
    next_token: str | None,
    error: str | None = None,
    notice: str | None = None,
) -> str:
    """The traces list: filter box, sortable columns, selection actions, pager."""
    parts = [
        '<form class="ui-filter" method="get" action="/" role="search">'
        f'<input class="ui-q" type="search" name="q" value="{e(query.q)}" '
        "placeholder=\"Filter, e.g. status = 'ERROR' AND duration_ms > 500\" "
        'aria-label="Filter traces" autocomplete="off" spellcheck="false">'
        + (f'<input type="hidden" name="order" value="{e(query.order)}">' if query.order else "")
        + (f'<input type="hidden" name="n" value="{query.size}">' if query.size != 50 else "")
        + '<button type="submit">Search</button>'
        + ('<a class="ui-clear" href="/">Clear</a>' if query.q else "")
        + "</form>",
        _FILTER_HELP,
    ]
    if notice:
        parts.append(f'<p class="ui-notice" role="status">{e(notice)}</p>')
    if error is not None:
        parts.append(f'<pre class="ui-error" role="alert">{t(error)}</pre>')
    else:
        matched = (
            ""
            if total is None
            else plural(total, "trace") + (" matches" if total == 1 else " match")
        )
        export_params = urlencode(
            [("q", query.q)] * bool(query.q) + [("order", query.order)] * bool(query.order)
        )
        export_all = "/export" + (f"?{export_params}" if export_params else "")
        parts.append(
            '<form id="ui-selection" class="ui-actions" method="get" action="/compare">'
            f'<span class="ui-count">{e(matched)}</span>'
            '<button type="submit" formaction="/compare" data-need="2" '
            'title="Select two traces">Compare</button>'
            '<button type="submit" formaction="/export" name="selected" value="1" data-need="1" '
            'title="Root inputs, outputs and tags of the selected traces, as JSONL">'
            "Export selected as dataset</button>"
            f'<a class="ui-export-all" href="{e(export_all)}">Export all matching</a>'
            + (
                ""
                if site.read_only
                else '<button type="submit" formaction="/delete" data-need="1" '
                'class="ui-danger">Delete…</button>'
            )
            + "</form>"
        )
        parts.append(_list_table(query, traces))
        parts.append(_pager(query, next_token))
    return layout(site, "Traces", "".join(parts))


def _list_row(query: ListQuery, trace: Trace) -> str:
    info = trace.info
    usage = info.token_usage
    root = trace.root
    failure = failure_note(trace)
    return (
        f'<tr{_FAILED_ROW if failure else ""}><td class="ui-check">'
        '<input type="checkbox" name="id" form="ui-selection" '
        f'value="{e(info.trace_id)}" aria-label="Select {e(escape_controls(info.name))}"></td>'
        f'<td class="ui-name"><a href="{e(_trace_href(info.trace_id))}">{t(info.name)}</a>'
        f'<code class="ui-id" title="trace id">{e(info.trace_id)}</code></td>'
        f'<td class="ui-status">{_status(str(info.status))}{failure}{feedback_marks(trace)}</td>'
        + preview_cell(preview(root.inputs_json) if root else "")
        + preview_cell(preview(root.outputs_json) if root else "")
        + f'<td class="ui-when">{short_when(info.start_time_ns)}</td>'
        f'<td class="ui-num">{duration_text(info.duration_ms)}</td>'
        f'<td class="ui-num">{info.span_count:,}</td>'
        f'<td class="ui-num">{tokens_text(usage.total_tokens if usage else None)}</td>'
        f'<td class="ui-tags">{session_chip(info)}{_tags(info, query)}</td></tr>'
    )


def _empty(query: ListQuery) -> str:
    """What an empty list says: nothing recorded yet, or nothing matching the filter."""
    if query.q:
        return 'No traces match this filter. <a href="/">Show all traces</a>'
    if query.page:
        return 'No more traces. <a href="/">Back to the first page</a>'
    return (
        "No traces in this store yet. Record some with <code>TracingClient(uri)</code> or "
        "<code>@lowtrace.trace</code> on this store, then reload this page."
    )


def _list_table(query: ListQuery, traces: Sequence[Trace]) -> str:
    headers = [_sort_header(query, *column) for column in _COLUMNS]
    head = (
        '<table class="ui-traces"><thead><tr><th class="ui-check">'
        '<input type="checkbox" class="ui-all" aria-label="Select all" form="ui-selection">'
        "</th>"
        + "".join(headers[:2])
        + "<th>Request</th><th>Response</th>"
        + "".join(headers[2:])
        + "<th>Tags</th></tr></thead><tbody>"
    )
    rows = [_list_row(query, trace) for trace in traces]
    if not rows:
        rows.append(f'<tr><td colspan="10" class="ui-empty">{_empty(query)}</td></tr>')
    return head + "".join(rows) + "</tbody></table>"


def _pager(query: ListQuery, next_token: str | None) -> str:
    links = []
    if query.page:
        links.append(f'<a href="{e(query.url(page="", trail=(), number=1))}">&laquo; First</a>')
    if query.trail:  # empty past MAX_TRAIL pages back: then only "First" leads back
        back = query.url(page=query.trail[-1], trail=query.trail[:-1], number=query.number - 1)
        links.append(f'<a rel="prev" href="{e(back)}">&lsaquo; Previous</a>')
    links.append(f'<span class="ui-page">Page {query.number}</span>')
    if next_token is not None:
        forward = query.url(
            page=next_token, trail=(*query.trail, query.page), number=query.number + 1
        )
        links.append(f'<a rel="next" href="{e(forward)}">Next &rsaquo;</a>')
    return '<nav class="ui-pager">' + "".join(links) + "</nav>"


def trace_nav(trace: Trace) -> str:
    """The links above a served trace view: back to the pages, this trace's session, files."""
    href = _trace_href(trace.info.trace_id)
    session = trace.info.session_id
    in_session = (
        f'<a href="/sessions/{e(quote(session, safe=""))}">Session {t(session)}</a>'
        if session
        else ""
    )
    return (
        '<nav class="lt-nav" aria-label="Pages"><a href="/">← Traces</a>'
        f'<a href="/dashboard">Dashboard</a><a href="/sessions">Sessions</a>{in_session}'
        f'<a class="lt-navsep" href="{e(href)}/json" download>Download JSON</a>'
        f'<a href="/export?id={e(quote(trace.info.trace_id, safe=""))}">Dataset row</a></nav>'
    )


def _delta(value: float, digits: int = 0) -> str:
    if round(value, digits) == 0:
        return '<td class="ui-num ui-same">0</td>'
    kind = "ui-up" if value > 0 else "ui-down"
    return f'<td class="ui-num {kind}">{value:+,.{digits}f}</td>'


def _pair(label: str, a: str, b: str) -> str:
    return f"<tr><th>{e(label)}</th><td>{a}</td><td>{b}</td></tr>"


def compare_page(site: Site, a: Trace, b: Trace, rows: Sequence[Row]) -> str:
    """Two traces side by side (A the older): summaries, then per span name count, time, tokens."""
    ia, ib = a.info, b.info
    ta, tb = ia.token_usage, ib.token_usage
    summary = (
        '<table class="ui-pair"><thead><tr><th></th><th>A</th><th>B</th></tr></thead><tbody>'
        + _pair(
            "trace",
            f'<a href="{e(_trace_href(ia.trace_id))}">{t(ia.name)}</a>',
            f'<a href="{e(_trace_href(ib.trace_id))}">{t(ib.name)}</a>',
        )
        + _pair("id", f"<code>{e(ia.trace_id)}</code>", f"<code>{e(ib.trace_id)}</code>")
        + _pair("status", _status(str(ia.status)), _status(str(ib.status)))
        + _pair("started (UTC)", _when(ia.start_time_ns), _when(ib.start_time_ns))
        + _pair("duration", duration_text(ia.duration_ms), duration_text(ib.duration_ms))
        + _pair("spans", str(ia.span_count), str(ib.span_count))
        + _pair("tokens", str(ta.total_tokens) if ta else "", str(tb.total_tokens) if tb else "")
        + _pair("tags", _tags(ia), _tags(ib))
        + "</tbody></table>"
    )
    body = []
    for row in rows:
        kind = " ui-only-a" if not row.b.count else " ui-only-b" if not row.a.count else ""
        body.append(
            f'<tr class="ui-cmp-row{kind}"><td class="ui-name">{t(row.name)}</td>'
            + _cells(row.a, row.b, "count")
            + _cells(row.a, row.b, "duration_ms")
            + _cells(row.a, row.b, "tokens")
            + _cells(row.a, row.b, "errors")
            + "</tr>"
        )
    table = (
        '<table class="ui-cmp"><thead><tr><th rowspan="2">Span name</th>'
        '<th colspan="3">Count</th><th colspan="3">Total duration (ms)</th>'
        '<th colspan="3">Tokens</th><th colspan="3">Errors</th></tr><tr>'
        + "<th>A</th><th>B</th><th>Δ</th>" * 4
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )
    return layout(
        site,
        "Compare traces",
        f"<h1>Compare traces</h1>{summary}<h2>Per span name</h2>{table}",
    )


def _cells(a: NameStats, b: NameStats, field: str) -> str:
    va, vb = getattr(a, field), getattr(b, field)
    digits = 2 if field == "duration_ms" else 0
    return (
        f'<td class="ui-num">{va:,.{digits}f}</td><td class="ui-num">{vb:,.{digits}f}</td>'
        + _delta(vb - va, digits=digits)
    )


def confirm_delete_page(site: Site, found: Sequence[TraceInfo], missing: Sequence[str]) -> str:
    """Asks before deleting; the form posts the ids and the CSRF token."""
    n = len(found)
    rows = "".join(
        f'<tr><td class="ui-name">{t(info.name)}</td><td><code>{e(info.trace_id)}</code>'
        f"</td><td>{_when(info.start_time_ns)}</td></tr>"
        for info in found
    )
    hidden = "".join(
        f'<input type="hidden" name="id" value="{e(info.trace_id)}">' for info in found
    )
    gone = (
        '<p class="ui-notice">Not in the store (already deleted?): '
        + ", ".join(f"<code>{t(i)}</code>" for i in missing)
        + "</p>"
        if missing
        else ""
    )
    form = (
        '<form class="ui-confirm" method="post" action="/delete">'
        f'<input type="hidden" name="csrf" value="{e(site.csrf_token)}">{hidden}'
        f'<button type="submit" class="ui-danger">Delete {n} trace{"" if n == 1 else "s"}'
        '</button><a href="/">Cancel</a></form>'
        if n
        else '<p><a href="/">Back to the traces</a></p>'
    )
    body = (
        f"<h1>Delete {n} trace{'' if n == 1 else 's'}?</h1>"
        f"<p>This removes them from <code>{e(redact(site.uri))}</code> for good.</p>"
        f'{gone}<table class="ui-traces"><thead><tr><th>Name</th><th>Trace id</th>'
        f"<th>Started (UTC)</th></tr></thead><tbody>{rows}</tbody></table>{form}"
    )
    return layout(site, "Delete traces", body)


def error_page(site: Site, title: str, message: str) -> str:
    """A page that says what went wrong and links back to the list."""
    return layout(
        site,
        title,
        f'<h1>{t(title)}</h1><pre class="ui-error" role="alert">{t(message)}</pre>'
        '<p><a href="/">Back to the traces</a></p>',
    )
