"""Dashboard numbers over a time range, computed by the store instead of loading every trace.

An ``Overview`` splits the range into equal buckets by trace start time and gives, per
bucket, how many traces started and failed, latency p50/p95 (nearest rank) and token usage,
plus token usage per model (priced by the UI, which holds the price table) and the span
names that took the most time and failed most often. SQL stores answer with aggregates
(SQLite: ``staged_overview``; PostgreSQL: ``pgoverview``, one statement); any other store
scans its traces (``scan_overview``), the reference the SQL must agree with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

from lowtrace._model import SpanRecord, Trace, counted_usage_spans
from lowtrace._query.filter import Comparison, parse_filter
from lowtrace._query.sql import Dialect, Query, keyed_conjunct, keyed_ids

__all__ = [
    "OVERVIEW_INDEXES",
    "SPANS_TRACE_INDEX",
    "Bucket",
    "ModelTokens",
    "Overview",
    "SpanNameStats",
    "plan_buckets",
    "scan_overview",
    "span_model",
    "sql_overview",
    "staged_overview",
]

#: The most buckets one overview may have (the charts stay readable, the answer small).
MAX_BUCKETS: Final = 200
#: Covering indexes for ``sql_overview`` (created by the SQLite and PostgreSQL migrations):
#: bucket aggregates, the span name ranking and token usage per model read only these
#: (``trace_id`` last: a filter's tag and span conditions join on it without the row).
OVERVIEW_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS traces_overview ON traces "
    "(start_time_ms, duration_ms, status, input_tokens, output_tokens, trace_id)",
    "CREATE INDEX IF NOT EXISTS spans_names ON spans (name, trace_start_ms, duration_ms, status)",
    "CREATE INDEX IF NOT EXISTS spans_usage ON spans "
    "(trace_start_ms, model, input_tokens, output_tokens) WHERE input_tokens IS NOT NULL",
)
#: SQLite's per-trace span index (filters' ``span.*`` conditions) with the duration last, so
#: that the span ranking of a filtered overview reads each matching trace's spans from it
#: alone (0.87 s -> 0.11 s at 50k matching traces of 100k).
SPANS_TRACE_INDEX: Final = (
    "CREATE INDEX spans_trace ON spans (trace_id, type, name, status, duration_ms)"
)


@attrs.frozen
class Bucket:
    """Traces that started in ``[start_ms, start_ms + bucket_ms)``."""

    start_ms: int
    traces: int = 0
    errors: int = 0  # traces whose status is ERROR
    p50_ms: float | None = None
    p95_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0


@attrs.frozen
class ModelTokens:
    """Token usage of one model in one bucket (``model`` None: spans without a model)."""

    bucket: int
    model: str | None
    input_tokens: int
    output_tokens: int


@attrs.frozen
class SpanNameStats:
    """Every span of one name in the range: how many, their summed duration, how many failed."""

    name: str
    count: int
    total_ms: float
    errors: int


@attrs.frozen
class Overview:
    """The dashboard's numbers; ``buckets`` covers the whole range, empty buckets included."""

    start_ms: int
    end_ms: int
    bucket_ms: int
    buckets: tuple[Bucket, ...]
    models: tuple[ModelTokens, ...]
    slowest: tuple[SpanNameStats, ...]  # most total time first
    failing: tuple[SpanNameStats, ...]  # most errors first; names that never failed are left out

    @property
    def traces(self) -> int:
        return sum(b.traces for b in self.buckets)

    @property
    def errors(self) -> int:
        return sum(b.errors for b in self.buckets)


def span_model(span: SpanRecord) -> str | None:
    """The model a span's tokens are priced by: its ``model`` attribute when that is text
    a database column can hold (PostgreSQL text refuses NUL)."""
    model = span.attributes.get("model")
    return model if isinstance(model, str) and "\x00" not in model else None


def plan_buckets(start_ms: int, end_ms: int, buckets: int) -> tuple[int, int]:
    """``(bucket_ms, count)``: at most ``buckets`` equal buckets covering ``[start, end)``."""
    buckets = max(1, min(int(buckets), MAX_BUCKETS))
    span = max(end_ms - start_ms, 1)
    bucket_ms = max(1, -(-span // buckets))
    return bucket_ms, -(-span // bucket_ms)


def _rank(count: int, percent: int) -> int:
    """The 1-based nearest rank of a percentile: ceil(percent / 100 * count)."""
    return (percent * count + 99) // 100


def _finish(
    start_ms: int,
    end_ms: int,
    bucket_ms: int,
    count: int,
    found: dict[int, Bucket],
    models: Iterable[ModelTokens],
    slowest: Sequence[SpanNameStats],
    failing: Sequence[SpanNameStats],
) -> Overview:
    buckets = tuple(found.get(i, Bucket(start_ms + i * bucket_ms)) for i in range(count))
    return Overview(
        start_ms,
        end_ms,
        bucket_ms,
        buckets,
        tuple(sorted(models, key=lambda m: (m.bucket, m.model is not None, m.model or ""))),
        tuple(slowest),
        tuple(failing),
    )


def _empty(start_ms: int | None, end_ms: int | None) -> Overview:
    """No trace matched: no buckets (an open range has no extent)."""
    start = start_ms if start_ms is not None else end_ms if end_ms is not None else 0
    end = max(start, end_ms if end_ms is not None else start)
    return Overview(start, end, max(end - start, 1), (), (), (), ())


def _ranked(stats: Iterable[SpanNameStats], top: int) -> tuple[list[SpanNameStats], ...]:
    items = list(stats)
    slowest = sorted(items, key=lambda s: (-s.total_ms, s.name))[:top]
    failing = sorted((s for s in items if s.errors), key=lambda s: (-s.errors, s.name))[:top]
    return slowest, failing


def scan_overview(
    traces: Callable[[str | None], Iterable[Trace]],
    filter: str | None,
    start_ms: int | None,
    end_ms: int | None,
    buckets: int,
    top: int,
) -> Overview:
    """The overview by reading every matching trace: ``traces(filter)`` yields them."""
    parse_filter(filter)  # a bad filter fails before any trace is read
    bounds = [] if start_ms is None else [f"start_time_ms >= {int(start_ms)}"]
    bounds += [] if end_ms is None else [f"start_time_ms < {int(end_ms)}"]
    full = " AND ".join([f"({filter})"] * bool(filter and filter.strip()) + bounds) or None
    rows = [
        (
            t.info.start_time_ns // 1_000_000,
            t.info.duration_ms,
            str(t.info.status),
            t.info.token_usage,
            t.spans,
        )
        for t in traces(full)
    ]
    if not rows and (start_ms is None or end_ms is None):
        return _empty(start_ms, end_ms)  # an open range has no extent without traces
    start = min(r[0] for r in rows) if start_ms is None else start_ms
    end = max(r[0] for r in rows) + 1 if end_ms is None else end_ms
    bucket_ms, count = plan_buckets(start, end, buckets)
    grouped: dict[int, list[Any]] = {}
    for row in rows:
        grouped.setdefault((row[0] - start) // bucket_ms, []).append(row)
    found: dict[int, Bucket] = {}
    models: dict[tuple[int, str | None], tuple[int, int]] = {}
    names: dict[str, tuple[int, float, int]] = {}
    for index, group in grouped.items():
        durations = sorted(r[1] for r in group)
        n = len(durations)
        found[index] = Bucket(
            start + index * bucket_ms,
            n,
            sum(r[2] == "ERROR" for r in group),
            durations[_rank(n, 50) - 1],
            durations[_rank(n, 95) - 1],
            sum(r[3].input_tokens for r in group if r[3]),
            sum(r[3].output_tokens for r in group if r[3]),
        )
        for *_, spans in group:
            for span in counted_usage_spans(spans):
                usage = span.token_usage
                assert usage is not None
                key = (index, span_model(span))
                before = models.get(key, (0, 0))
                models[key] = (before[0] + usage.input_tokens, before[1] + usage.output_tokens)
            for span in spans:
                c, ms, err = names.get(span.name, (0, 0.0, 0))
                names[span.name] = (
                    c + 1,
                    ms + (span.end_time_ns - span.start_time_ns) / 1e6,
                    err + (str(span.status) == "ERROR"),
                )
    slowest, failing = _ranked((SpanNameStats(k, *v) for k, v in names.items()), top)
    return _finish(
        start,
        end,
        bucket_ms,
        count,
        found,
        (ModelTokens(b, m, i, o) for (b, m), (i, o) in models.items()),
        slowest,
        failing,
    )


Fetch = Callable[[str, list[Any]], Sequence[Sequence[Any]]]


def sql_overview(
    dialect: Dialect,
    fetch: Fetch,
    filter: str | None,
    start_ms: int | None,
    end_ms: int | None,
    buckets: int,
    top: int,
    *,
    staged: str | None = None,
) -> Overview:
    """The overview with SQL aggregates over ``traces t`` and ``spans x`` (SQLite, PostgreSQL).

    Shaped for the indexes (``traces_overview``, ``spans_names``, ``spans_usage``): each
    bucket is an index range aggregated as it streams (no sort of every trace), its
    percentiles two ``ORDER BY duration_ms LIMIT 1 OFFSET k`` over that bucket only, and the
    span rows carry their trace's start time so that without a filter no join is needed.
    ``staged`` names a table of the matching traces' ``STAGED_COLUMNS`` (filter and range
    already applied, see ``staged_overview``): read in place of ``traces`` and ``filter``.
    """
    expr = parse_filter(filter)
    source = "traces" if staged is None else staged
    if start_ms is None or end_ms is None:
        query = Query(dialect)
        where = query.where(expr)
        low, high = fetch(
            f"SELECT MIN(t.start_time_ms), MAX(t.start_time_ms) FROM {source} t WHERE {where}",
            query.params,
        )[0]
        if low is None:
            return _empty(start_ms, end_ms)
        start_ms = int(low) if start_ms is None else start_ms
        end_ms = int(high) + 1 if end_ms is None else end_ms
    bucket_ms, count = plan_buckets(start_ms, end_ms, buckets)

    def in_bucket(query: Query, low: int, high: int) -> str:
        return (
            f"FROM {source} t WHERE t.start_time_ms >= {query.bind(low)} AND t.start_time_ms < "
            f"{query.bind(high)} AND {query.where(expr)}"
        )

    found: dict[int, Bucket] = {}
    for index in range(count):
        low = start_ms + index * bucket_ms
        high = min(low + bucket_ms, end_ms)
        query = Query(dialect)
        n, err, tokens_in, tokens_out = fetch(
            "SELECT COUNT(*), SUM(CASE WHEN t.status = 'ERROR' THEN 1 ELSE 0 END), "
            f"SUM(t.input_tokens), SUM(t.output_tokens) {in_bucket(query, low, high)}",
            query.params,
        )[0]
        if not n:
            continue
        ranked = []
        for percent in (50, 95):
            # From whichever end is nearer: the sort keeps only OFFSET + 1 rows.
            rank = _rank(int(n), percent)
            direction, offset = ("ASC", rank - 1) if rank - 1 <= n - rank else ("DESC", n - rank)
            query = Query(dialect)
            sql = (
                f"SELECT t.duration_ms {in_bucket(query, low, high)} ORDER BY t.duration_ms "
                f"{direction} LIMIT 1 OFFSET {int(offset)}"
            )
            ranked.append(float(fetch(sql, query.params)[0][0]))
        found[index] = Bucket(
            low, int(n), int(err), ranked[0], ranked[1], int(tokens_in or 0), int(tokens_out or 0)
        )

    def spans_in_range(query: Query, driven: bool = True) -> str:
        """``FROM spans x ... WHERE``: the spans of matching traces in range (``driven``: the
        staged traces lead, else the span index does and looks their ids up)."""
        if staged is not None and driven:
            # Driven by the matching traces in id order (already in range), each a seek into
            # ``spans_trace``, which covers what is summed: no span row is read.
            return f"FROM {staged} m CROSS JOIN spans x ON x.trace_id = m.trace_id WHERE 1 = 1"
        low, high = query.bind(start_ms), query.bind(end_ms)
        bounds = f"x.trace_start_ms >= {low} AND x.trace_start_ms < {high}"
        if staged is not None:
            # Unary + (SQLite): the ids are looked up, not the index to search by.
            return f"FROM spans x WHERE {bounds} AND +x.trace_id IN (SELECT trace_id FROM {staged})"
        if expr is None:
            return f"FROM spans x WHERE {bounds}"
        # The matching ids once (an ephemeral index), not the filter once per span.
        low, high = query.bind(start_ms), query.bind(end_ms)
        return (
            f"FROM spans x WHERE {bounds} AND x.trace_id IN (SELECT t.trace_id FROM traces t "
            f"WHERE t.start_time_ms >= {low} AND t.start_time_ms < {high} AND "
            f"{query.where(expr)})"
        )

    query = Query(dialect)
    bucket = f"(x.trace_start_ms - {query.bind(start_ms)}) / {query.bind(bucket_ms)}"
    models = [
        ModelTokens(int(b), model, int(i or 0), int(o or 0))
        for b, model, i, o in fetch(
            f"SELECT {bucket} AS b, x.model, SUM(x.input_tokens), SUM(x.output_tokens) "
            f"{spans_in_range(query, driven=False)} AND x.input_tokens IS NOT NULL "
            "GROUP BY b, x.model",
            query.params,
        )
    ]
    query = Query(dialect)
    top = int(top)
    named = fetch(
        "WITH g AS (SELECT x.name AS name, COUNT(*) AS n, SUM(x.duration_ms) AS ms, "
        f"SUM(CASE WHEN x.status = 'ERROR' THEN 1 ELSE 0 END) AS err {spans_in_range(query)} "
        f"GROUP BY x.name) SELECT * FROM (SELECT 0, name, n, ms, err FROM g "
        f"ORDER BY ms DESC, name LIMIT {top}) a UNION ALL SELECT * FROM (SELECT 1, name, n, "
        f"ms, err FROM g WHERE err > 0 ORDER BY err DESC, name LIMIT {top}) b",
        query.params,
    )
    lists: tuple[list[SpanNameStats], list[SpanNameStats]] = ([], [])
    for which, name, n, ms, err in named:
        lists[int(which)].append(SpanNameStats(name, int(n), float(ms or 0.0), int(err)))
    return _finish(start_ms, end_ms, bucket_ms, count, found, models, *lists)


#: The columns ``staged_overview`` copies of each matching trace.
STAGED_COLUMNS: Final = "trace_id, start_time_ms, duration_ms, status, input_tokens, output_tokens"


def staged_overview(
    dialect: Dialect,
    fetch: Fetch,
    filter: str | None,
    start_ms: int | None,
    end_ms: int | None,
    buckets: int,
    top: int,
) -> Overview:
    """``sql_overview`` with the filter evaluated once: the matching traces in range are
    copied to a temporary table (per connection: ``fetch`` must keep to one, as SQLite's
    per-thread connection does) that every aggregate then reads instead of ``traces``."""
    expr = parse_filter(filter)
    if expr is None:
        return sql_overview(dialect, fetch, None, start_ms, end_ms, buckets, top)
    query = Query(dialect)
    keyed = keyed_conjunct(expr)
    ranged = start_ms is not None or end_ms is not None
    if keyed is not None and (
        not ranged or _fewer_keyed(dialect, fetch, keyed[0], start_ms, end_ms)
    ):
        # Driven by the (key, value) index: only the traces with that tag are read, in id
        # order, each by its id (50k of 100k: 114-187 -> 97-100 ms CPU); the unary + keeps
        # the range index from leading.
        where = f"t.trace_id IN ({keyed_ids(query, keyed[0])})"
        prefix, rest = "+", keyed[1]
    else:
        where, prefix, rest = "1 = 1", "", expr
    column = f"{prefix}t.start_time_ms"
    bounds = [] if start_ms is None else [f"{column} >= {query.bind(int(start_ms))}"]
    bounds += [] if end_ms is None else [f"{column} < {query.bind(int(end_ms))}"]
    where = " AND ".join([where, *bounds, query.where(rest)])
    # In id order, so that the span ranking walks spans_trace in its order. Over all time the
    # traces are read in that order too (a filter's tag and span lookups then go through
    # their indexes in order: 1.5x faster); a range is read by its index and then sorted
    # (unary + keeps SQLite from reading every trace in id order to spare the sort).
    order = "+t.trace_id" if ranged and not prefix else "t.trace_id"
    table = "temp.lowtrace_overview"
    fetch(f"DROP TABLE IF EXISTS {table}", [])
    try:
        columns = ", ".join(f"t.{c.strip()}" for c in STAGED_COLUMNS.split(","))
        fetch(
            f"CREATE TEMP TABLE lowtrace_overview AS SELECT {columns} FROM traces t WHERE {where} "
            f"ORDER BY {order}",
            query.params,
        )
        fetch(
            "CREATE INDEX temp.lowtrace_overview_start ON lowtrace_overview "
            "(start_time_ms, duration_ms, status, input_tokens, output_tokens)",
            [],
        )
        return sql_overview(
            dialect, fetch, None, start_ms, end_ms, buckets, top, staged="lowtrace_overview"
        )
    finally:
        fetch(f"DROP TABLE IF EXISTS {table}", [])


def _fewer_keyed(
    dialect: Dialect, fetch: Fetch, cmp: Comparison, start_ms: int | None, end_ms: int | None
) -> bool:
    """Whether fewer traces have ``cmp``'s tag than started in the range (two index counts):
    then reading those beats testing every trace in range (not so in a narrow range)."""
    query = Query(dialect)
    bounds = ["1 = 1"]
    bounds += [] if start_ms is None else [f"start_time_ms >= {query.bind(int(start_ms))}"]
    bounds += [] if end_ms is None else [f"start_time_ms < {query.bind(int(end_ms))}"]
    sql = f"SELECT COUNT(*) FROM traces WHERE {' AND '.join(bounds)}"
    in_range = int(fetch(sql, query.params)[0][0])
    query = Query(dialect)
    return int(fetch(keyed_ids(query, cmp, "COUNT(*)"), query.params)[0][0]) <= in_range
