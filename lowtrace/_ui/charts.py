"""Charts drawn on the server as inline SVG: no script, no chart library, nothing fetched.

Colours come from CSS classes (``ui.css``) and sizes from SVG attributes, so the strict
Content-Security-Policy (no inline styles) holds. Every mark has a ``<title>`` (shown on
hover) and every chart an ``aria-label``; labels are escaped like all other page text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from lowtrace._controls import html_text

__all__ = ["Series", "bar_chart", "hbars", "line_chart", "nice_max", "whole_max"]

e = html.escape
_W: Final = 560  # viewBox width
_H: Final = 190  # viewBox height
_LEFT: Final = 52  # room for the y-axis labels
_BOTTOM: Final = 22  # room for the x-axis labels
_TOP: Final = 8


@attrs.frozen
class Series:
    """One series of a chart: a legend name, a CSS class and one value per bucket."""

    name: str
    css: str
    values: tuple[float | None, ...]


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for zero)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def whole_max(value: float) -> float:
    """The top of an axis of counts: four equal whole ticks (1, 2, 2.5 or 5 times 10^k) reach it.

    Counts read oddly at "0.5" or "37.5" (``nice_max(2)`` gives ticks of 0.5), so the tick,
    not the top, is the nice number here, and it is at least 1.
    """
    need = max(value / 4, 1.0)
    power = 10.0 ** math.floor(math.log10(need))
    for step in (1, 2, 2.5, 5):
        tick = step * power
        if tick >= need and tick == int(tick):
            return 4.0 * tick
    return 40.0 * power


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(
    label: str, top: float, x_labels: Sequence[str], fmt: Callable[[float], str]
) -> list[str]:
    """The SVG start, horizontal grid lines with y labels, and a few x labels."""
    plot_h = _H - _BOTTOM - _TOP
    parts = [
        f'<svg class="ch" viewBox="0 0 {_W} {_H}" role="img" aria-label="{e(label)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="ch-grid" x1="{_LEFT}" x2="{_W}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="ch-y" x="{_LEFT - 6}" y="{y + 4:.1f}">{e(fmt(top * i / 4))}</text>'
        )
    n = len(x_labels)
    if n:
        width = (_W - _LEFT) / n
        picks = sorted({0, n // 2, n - 1}) if n > 2 else list(range(n))
        for i in picks:
            x = _LEFT + width * (i + 0.5)
            anchor = "start" if i == 0 and n > 2 else "end" if i == n - 1 and n > 2 else "middle"
            parts.append(
                f'<text class="ch-x" x="{x:.1f}" y="{_H - 6}" text-anchor="{anchor}">'
                f"{e(x_labels[i])}</text>"
            )
    return parts


def _legend(series: Sequence[Series]) -> str:
    return (
        '<ul class="ch-legend">'
        + "".join(f'<li><span class="ch-key {e(s.css)}"></span>{e(s.name)}</li>' for s in series)
        + "</ul>"
    )


def bar_chart(
    label: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str] = _number,
    *,
    whole: bool = False,
) -> str:
    """Stacked bars, one per bucket, with a legend below; ``whole``: an axis of counts."""
    n = len(x_labels)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(n)]
    top = (whole_max if whole else nice_max)(max(totals, default=0))
    parts = _frame(label, top, x_labels, fmt)
    plot_h = _H - _BOTTOM - _TOP
    width = (_W - _LEFT) / max(n, 1)
    for i in range(n):
        base = float(_TOP + plot_h)
        x = _LEFT + width * i + width * 0.12
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(
                f'<rect class="{e(s.css)}" x="{x:.1f}" y="{base:.1f}" '
                f'width="{width * 0.76:.1f}" height="{h:.1f}">'
                f"<title>{e(x_labels[i])}: {e(s.name)} {e(fmt(value))}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts) + _legend(series)


def line_chart(
    label: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str] = _number,
) -> str:
    """Lines with a dot per bucket; buckets without a value break the line."""
    n = len(x_labels)
    values = [v for s in series for v in s.values if v is not None]
    top = nice_max(max(values, default=0))
    parts = _frame(label, top, x_labels, fmt)
    plot_h = _H - _BOTTOM - _TOP
    width = (_W - _LEFT) / max(n, 1)
    for k, s in enumerate(series):
        radius = 2.5 + 1.5 * (len(series) - 1 - k)  # earlier series ring the later: p50 = p95
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = _LEFT + width * (i + 0.5)
            y = _TOP + plot_h - plot_h * value / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle class="{e(s.css)}" cx="{x:.1f}" cy="{y:.1f}" r="{radius:g}">'
                f"<title>{e(x_labels[i])}: {e(s.name)} {e(fmt(value))}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="ch-line {e(s.css)}" points="{" ".join(run)}"/>')
    parts.append("</svg>")
    return "".join(parts) + _legend(series)


def hbars(label: str, rows: Sequence[tuple[str, str, float, str]], css: str) -> str:
    """A ranked table with a bar per row: (name, link, value, value as text)."""
    if not rows:
        return '<p class="ui-empty">Nothing in this range.</p>'
    top = max(value for _, _, value, _ in rows) or 1.0
    body = "".join(
        f'<tr><td class="ui-name"><a href="{e(href)}">{html_text(name)}</a></td>'
        '<td class="ch-cell">'
        f'<svg class="ch-hbar" viewBox="0 0 200 10" preserveAspectRatio="none" aria-hidden="true">'
        f'<rect class="{e(css)}" x="0" y="0" width="{200 * value / top:.1f}" height="10"/></svg>'
        f'</td><td class="ui-num">{e(text)}</td></tr>'
        for name, href, value, text in rows
    )
    return f'<table class="ch-rank" aria-label="{e(label)}"><tbody>{body}</tbody></table>'
