"""The dashboard page: volume, errors, latency, tokens and cost over time, and costly spans.

Everything comes from one ``TraceStore.overview`` (SQL aggregates in the SQL stores) and is
drawn as server-side SVG. Costs are priced here, per model and bucket, with the UI's price
table; tokens on spans without a price are counted as unpriced, not guessed.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import attrs

from lowtrace._controls import html_text
from lowtrace._cost import price_table
from lowtrace._query.filter import string_literal
from lowtrace._stores.overview import Overview
from lowtrace._textview import duration_text  # as the list and the CLI write durations
from lowtrace._ui.charts import Series, bar_chart, hbars, line_chart
from lowtrace._ui.frame import Site, layout

__all__ = ["RANGES", "DashboardQuery", "dashboard_page"]

e = html.escape
#: The time ranges offered: URL value -> (label, length in ms; None for every trace).
RANGES: Final[dict[str, tuple[str, int | None]]] = {
    "1h": ("Last hour", 3_600_000),
    "24h": ("Last 24 hours", 86_400_000),
    "7d": ("Last 7 days", 7 * 86_400_000),
    "30d": ("Last 30 days", 30 * 86_400_000),
    "all": ("All time", None),
}


#: What an empty store's dashboard says: the charts fill in as traces arrive.
_NO_TRACES: Final = (
    "No traces in this store yet: the charts fill in as your app records traces "
    "(<code>TracingClient(uri)</code> or <code>@lowtrace.trace</code>)."
)


@attrs.frozen
class DashboardQuery:
    """The dashboard's state from the URL: the time range and an optional filter."""

    range: str = "all"
    q: str = ""

    def bounds(self, now_ms: int) -> tuple[int | None, int | None]:
        """``(start_ms, end_ms)`` for the store; None ends follow the data."""
        length = RANGES.get(self.range, RANGES["all"])[1]
        return (None, None) if length is None else (now_ms - length, now_ms + 1)


def _axis_ms(value: float) -> str:
    """A latency axis label: durations as everywhere else, but a plain "0 ms" at the origin."""
    return "0 ms" if value == 0 else duration_text(value)


def _fmt_cost(value: float) -> str:
    return f"{value:,.4f}" if value < 10 else f"{value:,.2f}"


def _x_label(start_ms: int, bucket_ms: int, length_ms: int) -> str:
    when = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC)
    if bucket_ms < 60_000:
        return f"{when:%H:%M:%S}"
    if length_ms <= 2 * 86_400_000:
        return f"{when:%H:%M}"
    return f"{when:%m-%d %H:%M}" if bucket_ms < 86_400_000 else f"{when:%Y-%m-%d}"


def _costs(overview: Overview, prices: Mapping[str, Any]) -> tuple[list[float], int]:
    """Cost per bucket, and the tokens that had no price."""
    table = price_table(prices)
    costs = [0.0] * len(overview.buckets)
    unpriced = 0
    for m in overview.models:
        price = table.get(m.model) if m.model is not None else None
        if price is None:
            unpriced += m.input_tokens + m.output_tokens
            continue
        costs[m.bucket] += (
            m.input_tokens * price.input_per_million + m.output_tokens * price.output_per_million
        ) / 1_000_000
    return costs, unpriced


def _card(label: str, value: str, note: str = "") -> str:
    extra = f'<span class="db-note">{e(note)}</span>' if note else ""
    return (
        f'<div class="db-card"><span class="db-label">{e(label)}</span>'
        f'<span class="db-value">{e(value)}</span>{extra}</div>'
    )


def _span_link(query: DashboardQuery, name: str, *, errors: bool) -> str:
    condition = f"span.name = {string_literal(name)}"
    if errors:
        condition = f"{condition} AND span.status = 'ERROR'"
    q = f"({query.q}) AND {condition}" if query.q else condition
    return "/?" + urlencode([("q", q)])


def _ranking(query: DashboardQuery, title: str, rows: list[tuple[str, str, float, str]]) -> str:
    """A ranked list of span names, each linking to the matching traces."""
    return f'<section class="db-panel"><h2>{e(title)}</h2>{hbars(title, rows, "ch-bar")}</section>'


def _controls(query: DashboardQuery) -> str:
    options = "".join(
        f'<option value="{e(key)}"{" selected" if key == query.range else ""}>{e(label)}</option>'
        for key, (label, _) in RANGES.items()
    )
    return (
        '<form class="ui-filter" method="get" action="/dashboard" role="search">'
        f'<label>Range <select name="range">{options}</select></label>'
        f'<input class="ui-q" type="search" name="q" value="{e(query.q)}" '
        'placeholder="Optional filter, e.g. tags.env = \'prod\'" aria-label="Filter traces" '
        'autocomplete="off" spellcheck="false"><button type="submit">Apply</button></form>'
    )


def dashboard_page(
    site: Site,
    query: DashboardQuery,
    overview: Overview | None,
    prices: Mapping[str, Any] | None,
    *,
    error: str | None = None,
) -> str:
    """The whole dashboard, or the controls and ``error`` when the filter was refused."""
    head = "<h1>Dashboard</h1>" + _controls(query)
    if error is not None or overview is None:
        return layout(
            site,
            "Dashboard",
            head + f'<pre class="ui-error" role="alert">{html_text(error or "")}</pre>',
        )
    length = overview.end_ms - overview.start_ms
    labels = [_x_label(b.start_ms, overview.bucket_ms, length) for b in overview.buckets]
    buckets = overview.buckets
    traces, errors = overview.traces, overview.errors
    tokens_in = sum(b.input_tokens for b in buckets)
    tokens_out = sum(b.output_tokens for b in buckets)
    costs, unpriced = _costs(overview, prices) if prices else ([], 0)
    rate = f"{errors / traces:.1%} of traces" if traces else ""
    period = f"{_when(overview.start_ms)} to {_when(overview.end_ms)}" if traces else ""
    cards = (
        _card("Traces", f"{traces:,}", period)
        + _card("Errors", f"{errors:,}", rate)
        + _card("Tokens", f"{tokens_in + tokens_out:,}", f"{tokens_in:,} in · {tokens_out:,} out")
        + (
            _card(
                "Cost", _fmt_cost(sum(costs)), f"{unpriced:,} tokens unpriced" if unpriced else ""
            )
            if prices
            else _card("Cost", "n/a", "start the UI with --prices to price tokens")
        )
    )
    if not traces:
        empty = (
            f'<p class="ui-empty">{_NO_TRACES}</p>'
            if query.range == "all" and not query.q
            else '<p class="ui-empty">No traces in this range. '
            "Try a longer range or another filter.</p>"
        )
        return layout(site, "Dashboard", head + f'<div class="db-cards">{cards}</div>{empty}')
    ok = tuple(float(b.traces - b.errors) for b in buckets)
    charts = [
        (
            "Traces and errors",
            bar_chart(
                "Traces and errors per interval",
                labels,
                [
                    Series("OK", "ch-ok", ok),
                    Series("Error", "ch-err", tuple(float(b.errors) for b in buckets)),
                ],
                whole=True,
            ),
        ),
        (
            "Latency",
            line_chart(
                "Trace latency p50 and p95 per interval",
                labels,
                [
                    Series("p50", "ch-p50", tuple(b.p50_ms for b in buckets)),
                    Series("p95", "ch-p95", tuple(b.p95_ms for b in buckets)),
                ],
                _axis_ms,
            ),
        ),
        (
            "Tokens",
            bar_chart(
                "Tokens per interval",
                labels,
                [
                    Series("input", "ch-in", tuple(float(b.input_tokens) for b in buckets)),
                    Series("output", "ch-out", tuple(float(b.output_tokens) for b in buckets)),
                ],
                whole=True,
            ),
        ),
    ]
    if prices:
        charts.append(
            (
                "Cost",
                bar_chart(
                    "Cost per interval",
                    labels,
                    [Series("cost", "ch-cost", tuple(costs))],
                    _fmt_cost,
                ),
            )
        )
    panels = "".join(
        f'<section class="db-panel"><h2>{e(title)}</h2>{svg}</section>' for title, svg in charts
    )
    slow = [
        (
            s.name,
            _span_link(query, s.name, errors=False),
            s.total_ms,
            f"{duration_text(s.total_ms)} in {s.count:,}",
        )
        for s in overview.slowest
    ]
    failing = [
        (
            s.name,
            _span_link(query, s.name, errors=True),
            float(s.errors),
            f"{s.errors:,} of {s.count:,}",
        )
        for s in overview.failing
    ]
    rankings = _ranking(query, "Span names by total time", slow) + _ranking(
        query, "Span names by errors", failing
    )
    table = _bucket_table(overview, costs)
    body = (
        head
        + f'<div class="db-cards">{cards}</div><div class="db-grid">{panels}{rankings}</div>'
        + table
    )
    return layout(site, "Dashboard", body)


def _when(ms: int) -> str:
    return f"{dt.datetime.fromtimestamp(ms / 1000, dt.UTC):%Y-%m-%d %H:%M} UTC"


def _bucket_table(overview: Overview, costs: list[float]) -> str:
    """The charts' numbers as a table, for screen readers and for copying."""
    rows = "".join(
        f'<tr><td>{_when(b.start_ms)}</td><td class="ui-num">{b.traces:,}</td>'
        f'<td class="ui-num">{b.errors:,}</td>'
        f'<td class="ui-num">{duration_text(b.p50_ms) if b.p50_ms is not None else ""}</td>'
        f'<td class="ui-num">{duration_text(b.p95_ms) if b.p95_ms is not None else ""}</td>'
        f'<td class="ui-num">{b.input_tokens:,}</td><td class="ui-num">{b.output_tokens:,}</td>'
        + (f'<td class="ui-num">{_fmt_cost(costs[i])}</td>' if costs else "")
        + "</tr>"
        for i, b in enumerate(overview.buckets)
    )
    cost_head = "<th>Cost</th>" if costs else ""
    return (
        '<details class="db-numbers"><summary>Numbers per interval</summary>'
        '<table class="ui-traces"><thead><tr><th>Interval start</th><th>Traces</th>'
        "<th>Errors</th><th>p50</th><th>p95</th><th>Input tokens</th><th>Output tokens</th>"
        f"{cost_head}</tr></thead><tbody>{rows}</tbody></table></details>"
    )
