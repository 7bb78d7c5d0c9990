"""Two traces side by side, per span name: how often it ran, how long it took, its tokens.

Comparing a trace from one app version with one from the next shows where time and tokens
moved: a retriever called twice as often, a model call that got slower, a tool that
disappeared. Token counts per name are each span's own usage, so a model call reported by
both a wrapper and the client inside it shows under both names.
"""

from __future__ import annotations

import attrs

from lowtrace._model import Trace

__all__ = ["NameStats", "Row", "compare_traces"]


@attrs.frozen
class NameStats:
    """Spans of one name in one trace."""

    count: int = 0
    errors: int = 0
    duration_ms: float = 0.0
    tokens: int = 0


@attrs.frozen
class Row:
    """One span name in both traces (``NameStats()`` where the trace has no such span)."""

    name: str
    a: NameStats
    b: NameStats

    @property
    def duration_delta_ms(self) -> float:
        return self.b.duration_ms - self.a.duration_ms

    @property
    def tokens_delta(self) -> int:
        return self.b.tokens - self.a.tokens


def _stats(trace: Trace) -> dict[str, NameStats]:
    totals: dict[str, list[float]] = {}
    for span in trace.spans:
        item = totals.setdefault(span.name, [0, 0, 0.0, 0])
        item[0] += 1
        item[1] += str(span.status) == "ERROR"
        item[2] += span.duration_ms
        item[3] += span.token_usage.total_tokens if span.token_usage else 0
    return {
        name: NameStats(int(count), int(errors), duration, int(tokens))
        for name, (count, errors, duration, tokens) in totals.items()
    }


def compare_traces(a: Trace, b: Trace) -> list[Row]:
    """A row per span name found in either trace, the largest total duration first."""
    left, right = _stats(a), _stats(b)
    empty = NameStats()
    rows = [Row(name, left.get(name, empty), right.get(name, empty)) for name in left | right]
    rows.sort(key=lambda r: (-max(r.a.duration_ms, r.b.duration_ms), r.name))
    return rows
