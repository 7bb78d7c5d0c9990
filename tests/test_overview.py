"""Dashboard numbers: every store's ``overview`` agrees with reading every trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowtrace import SpanType, Trace, TracingClient
from lowtrace._stores.base import TraceStore
from lowtrace._stores.overview import Overview, SpanNameStats, plan_buckets, scan_overview
from lowtrace._stores.uri import open_store
from lowtrace.errors import FilterError
from tests.strategies import traces

STORES = ["memory", "sqlite", "jsonl", "postgres"]


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> TraceStore:
    if kind == "postgres":
        return open_store(request.getfixturevalue("postgres_uri"))
    return open_store(
        {
            "memory": "memory://",
            "sqlite": f"sqlite:///{tmp_path}/t.db",
            "jsonl": f"jsonl://{tmp_path}/t.jsonl.zst",
        }[kind]
    )


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    store = _open(request.param, request, tmp_path)
    yield store
    store.shutdown()


def _comparable(overview: Overview) -> Overview:
    """Summed durations rounded: SQL adds floats in another order than Python."""
    import attrs

    def rounded(stats: tuple[SpanNameStats, ...]) -> tuple[SpanNameStats, ...]:
        return tuple(attrs.evolve(s, total_ms=round(s.total_ms, 6)) for s in stats)

    return attrs.evolve(
        overview, slowest=rounded(overview.slowest), failing=rounded(overview.failing)
    )


def _reference(data: list[Trace], filter: str | None = None, **kwargs: int) -> Overview:
    from lowtrace._query.evaluate import search_in_memory

    return scan_overview(
        lambda full: search_in_memory(data, full, max_results=None),
        filter,
        kwargs.get("start_ms"),
        kwargs.get("end_ms"),
        kwargs.get("buckets", 30),
        kwargs.get("top", 8),
    )


def _minute(n: int) -> int:
    return 1_700_000_000_000 + n * 60_000


def _record(
    client: TracingClient,
    minute: int,
    duration_ms: int,
    *,
    fail_tool: bool = False,
    error: bool = False,
    tokens: tuple[int, int] = (0, 0),
    tags: dict[str, str] | None = None,
) -> Trace:
    start_ns = _minute(minute) * 1_000_000
    root = client.start_trace("agent", inputs={"q": minute}, tags=tags, start_time_ns=start_ns)
    tool = client.start_span(
        "lookup",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.TOOL,
        start_time_ns=start_ns,
    )
    tool.end(status="ERROR" if fail_tool else "OK", end_time_ns=start_ns + 1_000_000)
    if tokens != (0, 0):
        llm = client.start_span(
            "chat",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.CHAT_MODEL,
            attributes={"model": "m1"},
            start_time_ns=start_ns,
        )
        llm.set_token_usage(input_tokens=tokens[0], output_tokens=tokens[1])
        llm.end(end_time_ns=start_ns + 2_000_000)
    trace = client.end_trace(
        root.trace_id,
        status="ERROR" if error else "OK",
        end_time_ns=start_ns + duration_ms * 1_000_000,
    )
    assert trace is not None
    return trace


def test_buckets_count_traces_errors_percentiles_and_tokens(store: TraceStore) -> None:
    with TracingClient("memory://") as client:
        data = [  # minute 0: five traces; minute 2: one OK trace whose tool failed
            *(
                _record(client, 0, d, error=d == 1000, tokens=(100, 10))
                for d in (10, 20, 30, 40, 1000)
            ),
            _record(client, 2, 7, fail_tool=True),
        ]
    store.export(data)
    got = store.overview(start_ms=_minute(0), end_ms=_minute(3), buckets=3)
    assert (got.bucket_ms, [b.start_ms for b in got.buckets]) == (
        60_000,
        [_minute(0), _minute(1), _minute(2)],
    )
    first, empty, last = got.buckets
    assert (first.traces, first.errors, first.p50_ms, first.p95_ms) == (5, 1, 30.0, 1000.0)
    assert (first.input_tokens, first.output_tokens) == (500, 50)
    assert (empty.traces, empty.p50_ms) == (0, None)
    assert (last.traces, last.errors, last.p50_ms, last.p95_ms) == (1, 0, 7.0, 7.0)
    assert [(m.bucket, m.model, m.input_tokens) for m in got.models] == [(0, "m1", 500)]
    assert got.slowest[0].name == "agent" and got.slowest[0].count == 6
    assert [(s.name, s.errors) for s in got.failing] == [("agent", 1), ("lookup", 1)]
    assert (got.traces, got.errors) == (6, 1)


def test_a_model_named_empty_and_no_model_are_listed_in_one_order(store: TraceStore) -> None:
    def chat(client: TracingClient, model: str | None) -> Trace:
        root = client.start_trace("agent", start_time_ns=_minute(0) * 1_000_000)
        attributes = {} if model is None else {"model": model}
        llm = client.start_span(
            "chat", trace_id=root.trace_id, parent_id=root.span_id, attributes=attributes
        )
        llm.set_token_usage(input_tokens=1, output_tokens=1)
        llm.end()
        trace = client.end_trace(root.trace_id)
        assert trace is not None
        return trace

    with TracingClient("memory://") as client:
        data = [chat(client, ""), chat(client, None)]  # '' seen first, NULL sorts first
    store.export(data)
    got = store.overview(start_ms=_minute(0), end_ms=_minute(1), buckets=1)
    assert [m.model for m in got.models] == [None, ""]
    assert got.models == _reference(data, start_ms=_minute(0), end_ms=_minute(1), buckets=1).models


def test_the_filter_and_an_open_range(store: TraceStore) -> None:
    with TracingClient("memory://") as client:
        store.export([_record(client, 0, 5), _record(client, 10, 50, error=True)])
    got = store.overview("status = 'ERROR'")  # open range: from the first to the last match
    assert (got.start_ms, got.traces, got.errors) == (_minute(10), 1, 1)
    assert store.overview().traces == 2
    assert store.overview(start_ms=_minute(20), end_ms=_minute(30)).traces == 0
    with pytest.raises(FilterError, match="UNSET, OK, ERROR"):
        store.overview("status = 'EROR'")


def test_an_empty_store_has_an_empty_overview(store: TraceStore) -> None:
    got = store.overview()
    assert (got.buckets, got.slowest, got.traces) == ((), (), 0)


def test_sqlite_evaluates_a_filter_once_per_overview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    with TracingClient("memory://") as client:
        data = [
            _record(client, m, 5 + m, tokens=(1, 1), tags={"env": "prod" if m in (0, 3) else "dev"})
            for m in range(4)
        ]
    store.export(data)
    statements: list[str] = []
    fetch = store._fetch  # type: ignore[attr-defined]

    def counting(sql: str, params: list[object] = []) -> object:  # noqa: B006
        statements.append(sql)
        return fetch(sql, params)

    monkeypatch.setattr(store, "_fetch", counting)
    got = store.overview("tags.env = 'prod'", buckets=4)
    assert (got.traces, [b.traces for b in got.buckets]) == (2, [1, 0, 0, 1])
    assert sum("trace_tags" in sql for sql in statements) == 1  # not once per aggregate
    # The matching traces were staged in a temporary table, gone once the answer is back.
    assert store.overview("tags.env = 'prod'").traces == 2
    assert fetch("SELECT name FROM temp.sqlite_master") == []
    store.shutdown()


def test_plan_buckets_covers_the_range() -> None:
    assert plan_buckets(0, 100, 30) == (4, 25)
    assert plan_buckets(0, 1, 30) == (1, 1)
    assert plan_buckets(0, 10**9, 10**6) == (5_000_000, 200)  # at most 200 buckets


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=st.lists(traces(), min_size=1, max_size=10, unique_by=lambda t: t.info.trace_id),
    filter=st.sampled_from(
        [
            None,
            "status = 'ERROR'",
            "span.type = 'TOOL'",
            "tags.env = 'prod'",
            "tags.env = 'it''s' AND span.type = 'TOOL'",
            "status = 'OK' AND metadata.release = 'prod' AND NOT tags.team = 'prod'",
        ]
    ),
    buckets=st.integers(1, 12),
    top=st.integers(1, 4),
    half=st.booleans(),
)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sql_aggregates_match_reading_every_trace(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    data: list[Trace],
    filter: str | None,
    buckets: int,
    top: int,
    half: bool,
) -> None:
    starts = [t.info.start_time_ns // 1_000_000 for t in data]
    window = {}  # the open range, or a closed one over the first half of the data's span
    if half:
        window = {"start_ms": min(starts), "end_ms": (min(starts) + max(starts)) // 2 + 1}
    if backend == "sqlite":
        store = open_store(f"sqlite:///{tmp_path_factory.mktemp('ov')}/o.db")
    else:  # one database for every example, emptied before each
        store = open_store(request.getfixturevalue("postgres_uri"))
        store.delete_traces(older_than_ms=2**62)
    try:
        store.export(data)
        got = store.overview(filter, buckets=buckets, top=top, **window)
    finally:
        store.shutdown()
    expected = _reference(data, filter, buckets=buckets, top=top, **window)
    assert _comparable(got) == _comparable(expected)


def _tagged(count: int) -> list[Trace]:
    with TracingClient("memory://") as client:
        return [
            _record(
                client,
                m,
                5 + m,
                fail_tool=m % 3 == 0,
                tokens=(m, 1),
                tags={"env": "prod" if m % 2 else "dev"},
            )
            for m in range(count)
        ]


def _counting(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the store's reads run from now on."""
    statements: list[str] = []
    fetch = store._fetch  # type: ignore[attr-defined]

    def counting(sql: str, params: list[object] = []) -> object:  # noqa: B006
        statements.append(sql)
        return fetch(sql, params)

    monkeypatch.setattr(store, "_fetch", counting)
    return statements


def test_postgres_answers_a_filtered_overview_in_one_statement(
    postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(postgres_uri)
    store.delete_traces(older_than_ms=2**62)
    data = _tagged(12)
    store.export(data)
    statements = _counting(store, monkeypatch)
    try:
        got = store.overview("tags.env = 'prod'", buckets=4)
        assert len(statements) == 1  # the filter, the range and every chart at once
        assert statements[0].count("trace_tags") == 1
        assert _comparable(got) == _comparable(_reference(data, "tags.env = 'prod'", buckets=4))
        statements.clear()
        window = {"start_ms": _minute(2), "end_ms": _minute(9)}
        assert _comparable(store.overview(**window)) == _comparable(_reference(data, **window))
        assert len(statements) == 1  # a closed range needs no look at the data's extent
    finally:
        store.shutdown()


def test_sqlite_ranks_a_filtered_overviews_span_names_from_one_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    data = _tagged(12)
    store.export(data)
    fetch = store._fetch  # type: ignore[attr-defined]
    plans: list[str] = []

    def explaining(sql: str, params: list[object] = []) -> object:  # noqa: B006
        if "CROSS JOIN spans" in sql:  # the span ranking, driven by the matching traces
            plans.append(" ".join(r[3] for r in fetch(f"EXPLAIN QUERY PLAN {sql}", params)))
        return fetch(sql, params)

    monkeypatch.setattr(store, "_fetch", explaining)
    try:
        got = store.overview("tags.env = 'prod'", buckets=4)
    finally:
        store.shutdown()
    assert _comparable(got) == _comparable(_reference(data, "tags.env = 'prod'", buckets=4))
    assert len(plans) == 1 and "COVERING INDEX spans_trace" in plans[0]


def test_a_version_4_sqlite_file_gets_the_covering_span_index(tmp_path: Path) -> None:
    import contextlib
    import sqlite3

    path = tmp_path / "t.db"
    data = _tagged(6)
    open_store(f"sqlite:///{path}").export(data)
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as version 4 made it
        conn.execute("DROP INDEX spans_trace")
        conn.execute("CREATE INDEX spans_trace ON spans (trace_id, type, name, status)")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    store = open_store(f"sqlite:///{path}")
    try:
        got = store.overview("tags.env = 'prod'")
    finally:
        store.shutdown()
    assert _comparable(got) == _comparable(_reference(data, "tags.env = 'prod'"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        columns = [row[2] for row in conn.execute("PRAGMA index_info(spans_trace)")]
    assert columns == ["trace_id", "type", "name", "status", "duration_ms"]


def test_sqlite_stages_a_filtered_range_through_the_range_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Staged in id order, but a narrow range of a large store must not read every trace.
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    data = _tagged(12)
    store.export(data)
    fetch = store._fetch  # type: ignore[attr-defined]
    plans: list[str] = []

    def explaining(sql: str, params: list[object] = []) -> object:  # noqa: B006
        if sql.startswith("CREATE TEMP TABLE"):
            select = sql[sql.index("SELECT") :]
            plans.append(" ".join(r[3] for r in fetch(f"EXPLAIN QUERY PLAN {select}", params)))
        return fetch(sql, params)

    monkeypatch.setattr(store, "_fetch", explaining)
    try:
        got = store.overview("tags.env = 'prod'", start_ms=_minute(9))  # the last few minutes
    finally:
        store.shutdown()
    assert got.traces == 2  # minutes 9 and 11
    want = _reference(data, "tags.env = 'prod'", start_ms=_minute(9))
    assert _comparable(got) == _comparable(want)
    assert len(plans) == 1 and "traces_overview (start_time_ms>?)" in plans[0]


def _staging_plans(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The query plan of each statement that stages a filtered overview's traces."""
    fetch = store._fetch  # type: ignore[attr-defined]
    plans: list[str] = []

    def explaining(sql: str, params: list[object] = []) -> object:  # noqa: B006
        if sql.startswith("CREATE TEMP TABLE"):
            select = sql[sql.index("SELECT") :]
            plans.append(" ".join(r[3] for r in fetch(f"EXPLAIN QUERY PLAN {select}", params)))
        return fetch(sql, params)

    monkeypatch.setattr(store, "_fetch", explaining)
    return plans


@pytest.mark.parametrize(
    "filter",
    ["tags.env = 'prod'", "span.type = 'TOOL' AND tags.env = 'prod' AND duration_ms > 7"],
)
def test_sqlite_stages_a_tag_filter_from_the_tag_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filter: str
) -> None:
    # Only the tagged traces are read, found through trace_tags (key, value), each by id.
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    data = _tagged(12)
    store.export(data)
    plans = _staging_plans(store, monkeypatch)
    window = {"start_ms": _minute(1), "end_ms": _minute(11)}  # 10 traces, 5 of them tagged
    try:
        everything, ranged = store.overview(filter, buckets=4), store.overview(filter, **window)
    finally:
        store.shutdown()
    assert _comparable(everything) == _comparable(_reference(data, filter, buckets=4))
    assert _comparable(ranged) == _comparable(_reference(data, filter, **window))
    assert ranged.traces == (5 if filter == "tags.env = 'prod'" else 4)
    assert len(plans) == 2
    for plan in plans:
        assert "COVERING INDEX trace_tags_kv (key=? AND value=?)" in plan
        assert "sqlite_autoindex_traces_1 (trace_id=?)" in plan
        assert "B-TREE FOR ORDER BY" not in plan  # already in id order


def test_sqlite_stages_a_narrow_range_of_a_tag_filter_through_the_range_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More traces have the tag (6) than the range holds (2): the range leads instead.
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    data = _tagged(12)
    store.export(data)
    plans = _staging_plans(store, monkeypatch)
    window = {"start_ms": _minute(9), "end_ms": _minute(11)}
    try:
        got = store.overview("metadata.release = 'x' OR tags.env = 'prod'", **window)
        tagged = store.overview("tags.env = 'prod'", **window)
    finally:
        store.shutdown()
    assert (got.traces, tagged.traces) == (1, 1)  # minute 9
    want = _reference(data, "tags.env = 'prod'", **window)
    assert _comparable(got) == _comparable(tagged) == _comparable(want)
    assert len(plans) == 2
    for plan in plans:
        assert "traces_overview (start_time_ms>? AND start_time_ms<?)" in plan
        assert "trace_tags_kv" not in plan
