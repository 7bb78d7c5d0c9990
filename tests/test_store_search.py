"""Every store answers get_trace / search_traces / count / delete the same way."""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import shutil
import sqlite3
import string
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowtrace import (
    FilterError,
    InvalidArgumentError,
    SpanRecord,
    SpanStatus,
    SpanType,
    StoreError,
    StoreNotFoundError,
    TokenUsage,
    Trace,
    TraceInfo,
    TracingClient,
)
from lowtrace._query.evaluate import search_in_memory
from lowtrace._stores.base import TraceStore
from lowtrace._stores.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from lowtrace._stores.uri import open_store
from tests.strategies import filters, orders, traces

T0 = 1_700_000_000_000_000_000  # ns
#: A schema-version-2 SQLite store with three traces, written by lowtrace 0.1 before v3.
V2_STORE = Path(__file__).parent / "data" / "sqlite_v2.db"


def make_trace(
    n: int,
    *,
    name: str = "agent",
    status: SpanStatus = SpanStatus.OK,
    duration_ms: int = 100,
    tags: dict[str, str] | None = None,
    tokens: int | None = None,
    child: tuple[str, SpanType] = ("search", SpanType.RETRIEVER),
) -> Trace:
    trace_id = f"{n + 1:032x}"
    start = T0 + n * 1_000_000_000
    end = start + duration_ms * 1_000_000
    usage = TokenUsage(tokens, 0, tokens) if tokens is not None else None
    root = SpanRecord(
        trace_id,
        f"{2 * n + 1:016x}",
        None,
        name,
        SpanType.AGENT,
        start,
        end,
        status,
        "boom" if status is SpanStatus.ERROR else None,
        inputs={"q": n},
        outputs={"a": n},
    )
    kid = SpanRecord(
        trace_id,
        f"{2 * n + 2:016x}",
        root.span_id,
        child[0],
        child[1],
        start + 1,
        end - 1,
        SpanStatus.OK,
        token_usage=usage,
    )
    info = TraceInfo(trace_id, name, status, root.status_message, start, end, tags or {}, usage, 2)
    return Trace(info, (root, kid))


STORES = ["memory", "sqlite", "jsonl", "delta", "postgres"]


def open_kind(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> TraceStore:
    if kind == "postgres":
        return open_store(request.getfixturevalue("postgres_uri"))
    uri = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path}/t.db",
        "jsonl": f"jsonl://{tmp_path}/t.jsonl.zst",
        "delta": f"delta://{tmp_path}/table",
    }[kind]
    return open_store(uri)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    store = open_kind(request.param, request, tmp_path)
    yield store
    store.shutdown()


@pytest.fixture
def sample(store: TraceStore) -> list[Trace]:
    data = [
        make_trace(0, name="agent", duration_ms=50, tags={"env": "prod"}, tokens=10),
        make_trace(
            1,
            name="agent",
            status=SpanStatus.ERROR,
            duration_ms=900,
            tags={"env": "staging", "user": "it's me", "odd`key": "1", 'say "hi"': "2"},
        ),
        make_trace(
            2,
            name="Agent-v2",
            duration_ms=600,
            tags={"env": "prod"},
            tokens=300,
            child=("calculator", SpanType.TOOL),
        ),
        make_trace(3, name="rag_100%", status=SpanStatus.ERROR, duration_ms=20),
        make_trace(4, name="rag_x", duration_ms=1200, child=("calculator", SpanType.TOOL)),
    ]
    store.export(data)
    return data


def ids(traces: list[Trace]) -> list[int]:
    return [int(t.info.trace_id, 16) - 1 for t in traces]


def test_round_trip_and_get(store: TraceStore, sample: list[Trace]) -> None:
    for trace in sample:
        assert store.get_trace(trace.info.trace_id) == trace
    assert store.get_trace("f" * 32) is None
    assert store.count() == 5


def test_default_order_is_newest_first(store: TraceStore, sample: list[Trace]) -> None:
    assert ids(store.search_traces()) == [4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("status = 'ERROR'", [3, 1]),
        ("status = 'error'", [3, 1]),
        ("status != 'ERROR'", [4, 2, 0]),
        ("duration_ms > 500", [4, 2, 1]),
        ("duration_ms >= 600 AND duration_ms <= 900", [2, 1]),
        ("duration_ms < 50", [3]),
        ("status = 'ERROR' AND duration_ms > 500", [1]),
        ("status = 'ERROR' OR duration_ms > 1000", [4, 3, 1]),
        ("(status = 'ERROR' OR duration_ms > 1000) AND name LIKE 'rag%'", [4, 3]),
        ("name = 'agent'", [1, 0]),
        ("name LIKE 'agent%'", [1, 0]),
        ("name ILIKE 'agent%'", [2, 1, 0]),
        ("name LIKE 'rag\\_%'", [4, 3]),
        ("name LIKE '%\\%'", [3]),
        ("name LIKE 'rag_x'", [4]),
        ("name NOT LIKE 'rag%'", [2, 1, 0]),
        ("name IN ('agent', 'rag_x')", [4, 1, 0]),
        ("name NOT IN ('agent', 'rag_x')", [3, 2]),
        ("tags.env = 'prod'", [2, 0]),
        ("tags.env != 'prod'", [1]),
        ("tags.user = 'it''s me'", [1]),
        ("tags.\"odd`key\" = '1'", [1]),
        ("tags.`say \"hi\"` = '2'", [1]),
        ("tags.env IS NULL", [4, 3]),
        ("tags.env IS NOT NULL", [2, 1, 0]),
        ("NOT tags.env = 'prod'", [4, 3, 1]),
        ("span.name = 'calculator'", [4, 2]),
        ("span.type = 'TOOL'", [4, 2]),
        ("span.type = 'AGENT' AND span.type = 'RETRIEVER'", [3, 1, 0]),
        ("total_tokens > 100", [2]),
        ("total_tokens IS NULL", [4, 3, 1]),
        ("total_tokens != 10", [2]),
        ("NOT total_tokens = 10", [4, 3, 2, 1]),
        ("span_count = 2", [4, 3, 2, 1, 0]),
        (f"start_time_ms >= {T0 // 1_000_000 + 3000}", [4, 3]),
        (f"trace_id = '{1:032x}'", [0]),
        ("name = 'x'' OR ''1''=''1'", []),
        ("name = 'agent; DROP TABLE traces; --'", []),
        ("name = '/* comment */'", []),
    ],
)
def test_filters(store: TraceStore, sample: list[Trace], filter: str, expected: list[int]) -> None:
    assert ids(store.search_traces(filter)) == expected
    assert store.count(filter) == len(expected)


def test_hostile_filters_leave_the_store_intact(store: TraceStore, sample: list[Trace]) -> None:
    for hostile in [
        "name = 'a'; DROP TABLE traces",
        "name = 'a' -- comment",
        "1 = 1",
        "name = 'a' UNION SELECT * FROM traces",
        "tags.`x; DROP` = 'y'",
    ]:
        with contextlib.suppress(FilterError):
            store.search_traces(hostile)
    assert store.count() == 5


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("duration_ms DESC", [4, 1, 2, 0, 3]),
        ("duration_ms", [3, 0, 2, 1, 4]),
        (["status DESC", "duration_ms ASC"], [0, 2, 4, 3, 1]),
        ("total_tokens DESC", [2, 0, 1, 3, 4]),
        ("total_tokens ASC", [0, 2, 1, 3, 4]),
        ("tags.env", [0, 2, 1, 3, 4]),
        ("name", [2, 0, 1, 3, 4]),
    ],
)
def test_order_by(
    store: TraceStore, sample: list[Trace], order_by: object, expected: list[int]
) -> None:
    assert ids(store.search_traces(order_by=order_by)) == expected  # type: ignore[arg-type]


def test_pages_cover_everything_once_while_traces_arrive(store: TraceStore) -> None:
    store.export([make_trace(n, duration_ms=n % 7) for n in range(40)])
    seen: list[int] = []
    token = None
    extra = 100
    while True:
        page = store.search_traces(
            "duration_ms < 6", order_by="duration_ms DESC", max_results=7, page_token=token
        )
        seen += ids(page)
        store.export([make_trace(extra, duration_ms=extra % 7)])  # arrives between pages
        extra += 1
        token = page.next_page_token
        if token is None:
            break
    original = [n for n in range(40) if n % 7 < 6]
    assert sorted(n for n in seen if n < 40) == original
    assert len(seen) == len(set(seen))


def test_bad_queries_say_where(store: TraceStore, sample: list[Trace]) -> None:
    with pytest.raises(FilterError, match="position 20"):
        store.search_traces("status = 'ERROR' AND")
    with pytest.raises(FilterError, match="unknown field"):
        store.search_traces("colour = 'red'")
    with pytest.raises(FilterError, match="takes a number"):
        store.search_traces("duration_ms > 'slow'")
    with pytest.raises(FilterError):
        store.search_traces(order_by="span.name")
    with pytest.raises(InvalidArgumentError):
        store.search_traces(max_results=0)
    page = store.search_traces(max_results=2)
    with pytest.raises(InvalidArgumentError, match="different filter"):
        store.search_traces("status = 'OK'", max_results=2, page_token=page.next_page_token)


def test_delete(store: TraceStore, sample: list[Trace]) -> None:
    if store.uri.startswith(("jsonl:", "delta:")):
        with pytest.raises(StoreError, match="append-only"):
            store.delete_traces(older_than_ms=0)
        return
    assert store.delete_traces([sample[0].info.trace_id, "f" * 32]) == 1
    assert store.delete_traces(older_than_ms=T0 // 1_000_000 + 2500) == 2
    assert ids(store.search_traces()) == [4, 3]
    assert store.search_traces("span.type = 'RETRIEVER'") == [sample[3]]


def test_fragments_of_one_trace_are_merged(store: TraceStore) -> None:
    local = make_trace(0)
    root = local.spans[0]
    remote_span = SpanRecord(
        local.info.trace_id,
        "abcdefabcdefabcd",
        local.spans[1].span_id,
        "tool-service",
        SpanType.TOOL,
        root.start_time_ns + 10,
        root.start_time_ns + 20,
        SpanStatus.OK,
    )
    remote = Trace(
        TraceInfo(
            local.info.trace_id,
            "tool-service",
            SpanStatus.OK,
            None,
            remote_span.start_time_ns,
            remote_span.end_time_ns,
            {"side": "server"},
            None,
            1,
        ),
        (remote_span,),
    )
    store.export([remote])
    store.export([local])
    merged = store.get_trace(local.info.trace_id)
    assert merged is not None
    assert [s.name for s in merged.spans] == ["agent", "search", "tool-service"]
    assert merged.info.name == "agent" and merged.info.span_count == 3
    assert merged.info.tags == {"side": "server"}
    assert store.search_traces("span.name = 'tool-service'") == [merged]
    assert store.count() == 1
    # The index rows were rewritten, not added to: each span counted once.
    assert sum(s.count for s in store.overview(top=100).slowest) == 3


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_trace_written_again_has_its_rows_replaced(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    store = open_kind(kind, request, tmp_path)
    trace = make_trace(0, tags={"env": "prod"}, tokens=10)
    tid = trace.info.trace_id
    store.export([trace])
    store.export([trace])  # a batch retried after its commit was not confirmed
    store.update_trace(tid, lambda t: t)  # what adding a tag or an assessment does
    assert store.search_traces("tags.env = 'prod'") == [trace]
    assert store.search_traces("span.type = 'RETRIEVER'") == [trace]
    assert sum(s.count for s in store.overview(top=100).slowest) == trace.info.span_count
    store.shutdown()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=st.lists(traces(), min_size=1, max_size=8, unique_by=lambda t: t.info.trace_id),
    filter=filters,
    order=orders,
)
@pytest.mark.parametrize("backend", ["sqlite", "delta", "postgres"])
def test_sql_matches_the_reference_semantics(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    data: list[Trace],
    filter: str,
    order: object,
) -> None:
    expected = [
        t.info.trace_id
        for t in search_in_memory(
            data,
            filter,
            order_by=order,  # type: ignore[arg-type]
            max_results=None,
        )
    ]
    if backend == "sqlite":
        store = open_store(f"sqlite:///{tmp_path_factory.mktemp('prop')}/p.db")
    elif backend == "delta":  # pushed-down predicates must not lose a matching trace
        store = open_store(f"delta://{tmp_path_factory.mktemp('prop')}/table")
    else:  # one database for every example, emptied before each
        store = open_store(request.getfixturevalue("postgres_uri"))
        store.delete_traces(older_than_ms=2**62)
    try:
        store.export(data)
        got = [
            t.info.trace_id
            for t in store.search_traces(
                filter,
                order_by=order,  # type: ignore[arg-type]
                max_results=100,
            )
        ]
    finally:
        store.shutdown()
    assert got == expected


def test_reading_never_creates_a_store(tmp_path: Path) -> None:
    for uri in (
        f"sqlite:///{tmp_path}/missing.db",
        f"jsonl://{tmp_path}/missing.jsonl.zst",
        f"delta://{tmp_path}/missing",
    ):
        with pytest.raises(StoreNotFoundError):
            open_store(uri, create=False)
    assert list(tmp_path.iterdir()) == []


def test_sqlite_file_survives_a_fresh_store_object(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/t.db"
    with TracingClient(uri) as client:
        root = client.start_trace("persisted", tags={"k": "v"})
        trace = client.end_trace(root.trace_id)
        assert client.flush(5)
    reopened = open_store(uri, create=False)
    assert reopened.get_trace(root.trace_id) == trace
    version = sqlite3.connect(tmp_path / "t.db").execute("PRAGMA user_version").fetchone()[0]
    assert version == SQLITE_SCHEMA_VERSION


def test_sqlite_file_of_an_older_version_is_upgraded_in_place(tmp_path: Path) -> None:
    # A version-2 file written by lowtrace before assessments existed, set back to version 1.
    shutil.copy(V2_STORE, tmp_path / "t.db")
    uri = f"sqlite:///{tmp_path}/t.db"
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as conn:  # back to version 1
        conn.execute("DROP INDEX traces_status")
        conn.execute("CREATE INDEX traces_status ON traces (status, start_time_ms)")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    store = open_store(uri, create=False)
    [failed] = store.search_traces("status = 'ERROR'")
    assert failed.info.name == "v2-agent-2" and failed.info.tags == {"env": "prod"}
    # The dashboard's span columns are filled in for the traces already stored.
    overview = store.overview()
    assert overview.traces == store.count() and overview.slowest
    spans = sum(t.info.span_count for t in store.search_traces(max_results=1000))
    assert sum(s.count for s in store.overview(top=1000).slowest) == spans
    store.shutdown()
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SQLITE_SCHEMA_VERSION
        columns = [row[2] for row in conn.execute("PRAGMA index_info(traces_status)")]
        assert columns == ["status", "start_time_ns"]
        missing = conn.execute("SELECT COUNT(*) FROM spans WHERE duration_ms IS NULL")
        assert missing.fetchone()[0] == 0


def test_jsonl_table_is_append_only(tmp_path: Path) -> None:
    from lowtrace._stores.jsonl import iter_rows

    path = tmp_path / "table.jsonl.zst"
    with TracingClient(f"jsonl://{path}") as client:
        for n in range(3):
            root = client.start_trace("serve", inputs={"question": n})
            client.end_trace(root.trace_id, outputs={"answer": n * 2})
            assert client.flush(5)  # each flush appends a frame; rows readable at once
            assert len(list(iter_rows(path))) == n + 1
        with pytest.raises(StoreError, match="append-only"):
            client.delete_traces(older_than_ms=0)
    rows = list(iter_rows(path))
    assert [(r["request"], r["response"], r["status"]) for r in rows] == [
        ({"question": n}, {"answer": n * 2}, "OK") for n in range(3)
    ]
    assert all(r["execution_duration_ms"] >= 0 and r["trace"]["spans"] for r in rows)
    with path.open("ab") as f:  # a torn frame from a crashed writer is skipped, not fatal
        f.write(b"\x28\xb5\x2f\xfd\x00garbage")
    assert len(list(iter_rows(path))) == 3


def _write_many(uri: str, worker: int, count: int) -> None:
    with TracingClient(uri) as client:
        for n in range(count):
            root = client.start_trace(f"w{worker}", tags={"worker": worker, "n": n})
            client.end_trace(root.trace_id)
            if n % 10 == 0:
                client.flush(10)
        assert client.flush(30)


@pytest.mark.parametrize("kind", ["sqlite", "jsonl", "delta", "postgres"])
def test_processes_writing_one_store(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    uri = {
        "sqlite": f"sqlite:///{tmp_path}/shared.db",
        "jsonl": f"jsonl://{tmp_path}/shared.jsonl.zst",
        "delta": f"delta://{tmp_path}/shared",
    }.get(kind) or request.getfixturevalue("postgres_uri")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(uri, w, 60)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    store = open_store(uri, create=False)
    assert store.count() == 180
    assert store.count("tags.worker = '2'") == 60


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_text_with_nul_is_stored_and_found_as_on_every_store(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    # PostgreSQL text cannot hold NUL: the trace must still be stored whole and found.
    store = open_kind(kind, request, tmp_path)
    with TracingClient(store) as client:
        root = client.start_trace("nul\x00name", tags={"k\x00": "v\x00"}, metadata={"m": "x\x00y"})
        span = client.start_span(
            "span\x00",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            attributes={"model": "gpt\x00"},
        )
        span.set_token_usage(input_tokens=3, output_tokens=1)
        span.end()
        trace = client.end_trace(root.trace_id)
    assert trace is not None
    assert store.get_trace(trace.info.trace_id) == trace
    for filter in [
        "name = 'nul\x00name'",
        "tags.`k\x00` = 'v\x00'",
        "metadata.m LIKE 'x\x00%'",
        "span.name = 'span\x00'",
    ]:
        assert store.search_traces(filter) == [trace], filter
    assert store.search_traces("name = 'nul'") == []
    assert store.overview("tags.`k\x00` = 'v\x00'").traces == 1
    assert [m.model for m in store.overview().models] == [None]  # no model: NUL in it
    assert store.get_trace("no\x00such") is None
    assert store.delete_traces(["no\x00such"]) == 0
    # An id with NUL (a record built by hand): written twice, updated, deleted.
    odd = make_trace(7)
    tid = "id\x00" + odd.info.trace_id
    odd = Trace(
        attrs.evolve(odd.info, trace_id=tid),
        tuple(attrs.evolve(s, trace_id=tid) for s in odd.spans),
    )
    store.export([odd])
    store.export([odd])
    assert store.update_trace(tid, lambda t: t) == odd
    assert store.get_trace(tid) == odd
    assert store.delete_traces([tid]) == 1
    store.shutdown()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_token_counts_that_add_up_past_64_bits_are_stored_at_the_limit(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    # Each count is below 2**63, but input + output and the trace's sum over two model
    # calls are not: the SQL columns are signed 64-bit, so the totals stop at 2**63 - 1
    # instead of failing the whole batch.
    most = 2**63 - 1
    store = open_kind(kind, request, tmp_path)
    with TracingClient("memory://") as client:
        root = client.start_trace("huge")
        for name in ("call1", "call2"):
            span = client.start_span(
                name, trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.LLM
            )
            span.set_token_usage(input_tokens=most, output_tokens=most)
            span.end()
        huge = client.end_trace(root.trace_id)
        plain = client.end_trace(client.start_trace("plain").trace_id)
    assert huge is not None and plain is not None
    assert huge.info.token_usage == TokenUsage(most, most, most)
    assert [s.token_usage for s in huge.spans[1:]] == [TokenUsage(most, most, most)] * 2
    store.export([huge, plain])
    assert store.get_trace(huge.info.trace_id) == huge
    assert store.get_trace(plain.info.trace_id) == plain
    assert store.search_traces(f"total_tokens = {most}") == [huge]
    store.shutdown()


HOSTILE_TEXT = ["lone\ud800x", "\udfff", "rtl\u202egnp.exe", "nul\x00in", "\x00", "\U0010ffff"]


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "jsonl", "delta"])
def test_hostile_text_in_every_field_round_trips_and_leaves_the_batch_intact(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    # Lone surrogates, RTL overrides and NUL in names, tag keys and values, metadata,
    # session and user ids, payloads, events and status messages: every trace of the
    # batch reads back as recorded (surrogates made U+FFFD), the plain one unchanged.
    store = open_kind(kind, request, tmp_path)
    with TracingClient("memory://") as client:
        batch = []
        for bad in HOSTILE_TEXT:
            root = client.start_trace(f"t{bad}", tags={f"k{bad}": f"v{bad}"}, metadata={bad: bad})
            client.set_trace_metadata(root.trace_id, session_id=f"s{bad}", user_id=f"u{bad}")
            span = client.start_span(
                bad,
                trace_id=root.trace_id,
                parent_id=root.span_id,
                span_type=SpanType.LLM,
                inputs={bad: bad},
                attributes={bad: bad, "model": bad},
            )
            span.add_event(bad, attributes={bad: [bad, 2**70]})
            span.end(status="ERROR", status_message=bad, outputs=bad)
            batch.append(client.end_trace(root.trace_id, status="ERROR", status_message=bad))
        batch.append(client.end_trace(client.start_trace("plain", tags={"a": "b"}).trace_id))
    store.export(batch)
    for trace in batch:
        assert trace is not None
        got = store.get_trace(trace.info.trace_id)
        assert got is not None
        assert got.info == trace.info
        for read, recorded in zip(got.spans, trace.spans, strict=True):
            for field in ("name", "status_message", "attributes", "events", "inputs", "outputs"):
                assert getattr(read, field) == getattr(recorded, field), field
    assert store.count() == len(batch)
    assert store.search_traces("tags.a = 'b'") == batch[-1:]
    store.shutdown()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_text_too_long_for_an_index_is_stored_and_found_by_its_start(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    # PostgreSQL refuses an index entry over ~2.7 KB: a trace with a long random name, tag,
    # span name, session id or metadata must still be stored whole, in the same batch as
    # a trace with NUL and one whose 900-byte tag must be kept as is.
    store = open_kind(kind, request, tmp_path)
    letters = string.ascii_letters + string.digits
    long = "".join(random.Random(7).choices(letters, k=9000))  # compresses poorly
    medium = "m" * 900
    with TracingClient("memory://") as client:
        root = client.start_trace(long, tags={"k": long, long: "v"}, metadata={"m": long})
        client.set_trace_metadata(root.trace_id, session_id=long, user_id=long)
        span = client.start_span(
            long, trace_id=root.trace_id, parent_id=root.span_id, attributes={"model": long}
        )
        span.end()
        huge = client.end_trace(root.trace_id)
        nul = client.end_trace(client.start_trace("n\x00ul").trace_id)
        kept = client.end_trace(client.start_trace("kept", tags={"k": medium}).trace_id)
    batch = [huge, nul, kept]
    store.export(batch)
    for trace in batch:
        assert trace is not None
        assert store.get_trace(trace.info.trace_id) == trace
    assert store.search_traces(f"tags.k = '{medium}'") == [kept]
    assert store.search_traces(f"name LIKE '{long[:100]}%'") == [huge]
    assert store.search_traces(f"span.name LIKE '{long[:100]}%'") == [huge]
    assert huge is not None
    assert store.update_trace(huge.info.trace_id, lambda t: t) == huge  # written again
    assert store.get_trace(huge.info.trace_id) == huge
    store.shutdown()
