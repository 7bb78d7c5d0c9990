"""What people moving from MLflow Tracing expect: metadata, sessions and users, tags and
assessments on stored traces, MLflow's filter dialect, module-level reads that see the
traces just ended, ``output_reducer`` and prompt-cache token counts. Every store that can
change runs each test; the append-only inference table answers changes with a StoreError."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lowtrace
from lowtrace import (
    Assessment,
    FilterError,
    InvalidArgumentError,
    ModelPrice,
    StoreError,
    TokenUsage,
    TraceEndedError,
    TraceNotFoundError,
    TracingClient,
    estimate_cost,
)
from lowtrace._stores.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION

V2_STORE = Path(__file__).parent / "data" / "sqlite_v2.db"
WRITABLE = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=WRITABLE)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TracingClient]:
    """A strict client on each store that can change stored traces."""
    if request.param == "postgres":
        uri = request.getfixturevalue("postgres_uri")
    else:
        uri = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/t.db"}[request.param]
    with TracingClient(uri) as client:
        yield client


def chat_turn(client: TracingClient, session: str, question: str, user: str = "alice") -> str:
    root = client.start_trace("chat", inputs={"q": question}, metadata={"release": "v2"})
    client.set_trace_metadata(root.trace_id, session_id=session, user_id=user)
    client.end_trace(root.trace_id, outputs={"a": question.upper()})
    return root.trace_id


def found(client: TracingClient, filter: str) -> set[str]:
    return {t.info.trace_id for t in client.search_traces(filter)}


# -- metadata, session and user ----------------------------------------------------------------


def test_metadata_session_and_user_are_recorded_and_searchable(client: TracingClient) -> None:
    first = chat_turn(client, "chat-1", "hi")
    second = chat_turn(client, "chat-1", "and then?", user="bob")
    other = chat_turn(client, "chat-2", "hello")

    trace = client.get_trace(second)  # no flush: reads see the traces this client ended
    assert trace is not None
    assert trace.info.metadata == {"release": "v2"}
    assert (trace.info.session_id, trace.info.user_id) == ("chat-1", "bob")
    assert found(client, "session_id = 'chat-1'") == {first, second}
    assert found(client, "user_id = 'alice'") == {first, other}
    assert found(client, "metadata.release = 'v2'") == {first, second, other}
    assert found(client, "metadata.missing IS NULL") == {first, second, other}
    assert found(client, "session_id = 'chat-2' OR user_id = 'bob'") == {second, other}
    ordered = client.search_traces("session_id = 'chat-1'", order_by="start_time_ms")
    assert [t.info.trace_id for t in ordered] == [first, second]


def test_update_current_trace_sets_metadata_session_and_user(client: TracingClient) -> None:
    @lowtrace.trace(client=client)
    def answer(question: str) -> str:
        lowtrace.update_current_trace(
            tags={"team": "search"},
            metadata={"prompt": "p7"},
            session_id="conv-9",
            user_id="carol",
        )
        return question[::-1]

    answer("abc")
    trace_id = client.get_last_active_trace_id()
    assert trace_id is not None
    trace = client.get_trace(trace_id)
    assert trace is not None
    assert trace.info.tags == {"team": "search"}
    assert trace.info.metadata == {"prompt": "p7"}
    assert (trace.info.session_id, trace.info.user_id) == ("conv-9", "carol")


def test_metadata_is_fixed_once_the_trace_ends(client: TracingClient) -> None:
    trace_id = chat_turn(client, "s", "q")
    with pytest.raises(TraceEndedError):
        client.set_trace_metadata(trace_id, {"release": "v3"})
    stored = client.get_trace(trace_id)
    assert stored is not None and stored.info.metadata == {"release": "v2"}


# -- tags on stored traces ---------------------------------------------------------------------


def test_set_trace_tags_and_delete_trace_tag_on_stored_traces(client: TracingClient) -> None:
    root = client.start_trace("agent", tags={"env": "prod", "stale": "x"})
    client.set_trace_tags(root.trace_id, {"live": "yes"})  # while live
    client.end_trace(root.trace_id)

    client.set_trace_tags(root.trace_id, {"reviewed": True, "env": "staging"})  # stored
    client.delete_trace_tag(root.trace_id, "stale")
    client.delete_trace_tag(root.trace_id, "never-there")

    trace = client.get_trace(root.trace_id)
    assert trace is not None
    assert trace.info.tags == {"env": "staging", "live": "yes", "reviewed": "True"}
    assert found(client, "tags.reviewed = 'True' AND tags.env = 'staging'") == {root.trace_id}
    assert found(client, "tags.stale IS NOT NULL") == set()
    assert found(client, "tags.env = 'prod'") == set()


def test_changing_an_unknown_stored_trace_is_an_error(client: TracingClient) -> None:
    with pytest.raises(TraceNotFoundError):
        client.set_trace_tags("f" * 32, {"a": "b"})
    with pytest.raises(TraceNotFoundError):
        client.log_feedback("f" * 32, "correct", True)


# -- assessments -------------------------------------------------------------------------------


def test_log_feedback_and_expectation(client: TracingClient) -> None:
    trace_id = chat_turn(client, "s", "What is 6 x 7?")
    trace = client.get_trace(trace_id)
    assert trace is not None
    span_id = trace.spans[0].span_id

    verdict = client.log_feedback(
        trace_id,
        "correct",
        False,
        source={"type": "HUMAN", "id": "alice"},
        rationale="the answer is 42",
        span_id=span_id,
    )
    score = client.log_feedback(trace_id, "score", 2, source={"type": "LLM_JUDGE", "id": "j"})
    golden = client.log_expectation(trace_id, "answer", {"text": "42"})

    assert isinstance(verdict, Assessment)
    assert (verdict.kind, verdict.name, verdict.value) == ("feedback", "correct", False)
    assert verdict.source == {"type": "HUMAN", "id": "alice"}
    assert verdict.rationale == "the answer is 42" and verdict.span_id == span_id
    assert verdict.created_time_ns > 0 and len(verdict.assessment_id) == 32
    assert golden is not None and golden.kind == "expectation" and golden.rationale is None

    stored = client.get_trace(trace_id)
    assert stored is not None
    assert stored.info.assessments == (verdict, score, golden)
    assert lowtrace.Trace.from_json(stored.to_json()) == stored


def test_assessment_filters(client: TracingClient) -> None:
    good, bad, unrated = (chat_turn(client, "s", q) for q in ("a", "b", "c"))
    client.log_feedback(good, "correct", True)
    client.log_feedback(good, "score", 5)
    client.log_feedback(bad, "correct", False)
    client.log_feedback(bad, "score", 1.5)
    client.log_feedback(bad, "comment", "too long, it's wordy")
    client.log_expectation(good, "answer", "A")

    assert found(client, "feedback.correct = 'true'") == {good}
    assert found(client, "feedback.correct = 'false'") == {bad}
    assert found(client, "feedback.score >= 2") == {good}
    assert found(client, "feedback.score < 2") == {bad}
    assert found(client, "feedback.score IN (1.5, 5)") == {good, bad}
    assert found(client, "feedback.score = '5'") == set()  # a number is not the text '5'
    assert found(client, "feedback.comment LIKE '%wordy'") == {bad}
    assert found(client, "feedback.comment RLIKE 'it.s'") == {bad}
    assert found(client, "feedback.correct IS NULL") == {unrated}
    assert found(client, "NOT feedback.correct = 'true'") == {bad, unrated}
    assert found(client, 'expectation.answer = "A"') == {good}
    assert found(client, "expectation.correct IS NOT NULL") == set()


def test_delete_assessment(client: TracingClient) -> None:
    trace_id = chat_turn(client, "s", "q")
    first = client.log_feedback(trace_id, "correct", True)
    second = client.log_feedback(trace_id, "correct", False)
    assert first is not None and second is not None
    client.delete_assessment(trace_id, first.assessment_id)
    trace = client.get_trace(trace_id)
    assert trace is not None and trace.info.assessments == (second,)
    assert found(client, "feedback.correct = 'true'") == set()
    with pytest.raises(InvalidArgumentError):
        client.delete_assessment(trace_id, first.assessment_id)


def test_bad_assessments_are_refused(client: TracingClient, lenient: TracingClient) -> None:
    trace_id = chat_turn(client, "s", "q")
    with pytest.raises(InvalidArgumentError):
        client.log_feedback(trace_id, "", True)
    with pytest.raises(InvalidArgumentError):
        client.log_feedback(trace_id, "x", 1, source="alice")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.log_expectation(trace_id, "x", 1, span_id="0" * 16)  # no such span
    live = client.start_trace("live")
    with pytest.raises(TraceNotFoundError, match="still being recorded"):
        client.log_feedback(live.trace_id, "x", 1)
    client.end_trace(live.trace_id)
    assert lenient.log_feedback("f" * 32, "x", 1) is None  # non-strict: logged, counted
    assert lenient.stats().violations == {"TraceNotFoundError": 1}


def test_append_only_store_answers_changes_with_a_store_error(tmp_path: Path) -> None:
    with TracingClient(f"jsonl://{tmp_path}/table.jsonl.zst") as client:
        root = client.start_trace("serve")
        client.end_trace(root.trace_id)
        with pytest.raises(StoreError, match="append-only"):
            client.log_feedback(root.trace_id, "correct", True)
        with pytest.raises(StoreError, match="append-only"):
            client.set_trace_tags(root.trace_id, {"a": "b"})
        with pytest.raises(StoreError, match="append-only"):
            client.delete_assessment(root.trace_id, "0" * 32)


# -- MLflow's filter dialect -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter", "matches"),
    [
        ("attributes.status = 'OK'", True),
        ('trace.status = "OK"', True),
        ("trace.execution_time_ms > 5", True),
        ("execution_time_ms < 5", False),
        ("attributes.name = 'slow'", True),
        ("trace.timestamp_ms > 0 AND timestamp_ms < 99999999999999", True),
        ("name RLIKE 'lo'", True),
        ("name RLIKE '^lo'", False),
        ("name NOT RLIKE '^s[a-z]+$'", False),
        ('tags.`mlflow.source` = "notebook"', True),
        ("tags.\"mlflow.source\" = 'notebook'", True),
        ("metadata.`mlflow.user` = 'it\"s'", True),
        ('trace.name = "say ""hi"""', False),
    ],
)
def test_mlflow_filter_strings(client: TracingClient, filter: str, matches: bool) -> None:
    start = time.time_ns()
    root = client.start_trace(
        "slow",
        tags={"mlflow.source": "notebook"},
        metadata={"mlflow.user": 'it"s'},
        start_time_ns=start,
    )
    client.end_trace(root.trace_id, end_time_ns=start + 10_000_000)  # 10 ms
    assert found(client, filter) == ({root.trace_id} if matches else set())
    assert found(client, f"request_id = '{root.trace_id}'") == {root.trace_id}


@pytest.mark.parametrize(
    "bad",
    [
        "name RLIKE '(a+)+$'",  # exponential backtracking
        "name RLIKE '(x|xx)*y'",
        "name RLIKE '(a)\\1'",  # backreference
        "name RLIKE '['",  # not a regex
        "duration_ms RLIKE '1'",
        "feedback.score IN (1, 'a')",
        'name = "unterminated',
    ],
)
def test_bad_mlflow_filters_say_where(client: TracingClient, bad: str) -> None:
    with pytest.raises(FilterError):
        client.search_traces(bad)


# -- module level and read-your-writes --------------------------------------------------------


def test_module_level_reads_see_the_trace_just_ended(client: TracingClient) -> None:
    lowtrace.set_default_client(client)
    try:

        @lowtrace.trace
        def add(a: int, b: int) -> int:
            return a + b

        assert lowtrace.get_last_active_trace_id() is None
        for n in range(20):
            add(n, 1)
            trace_id = lowtrace.get_last_active_trace_id()
            assert trace_id is not None
            trace = lowtrace.get_trace(trace_id)  # no flush in between
            assert trace is not None and trace.spans[0].outputs == n + 1
        assert len(lowtrace.search_traces("name LIKE '%add'")) == 20
        assert lowtrace.flush(10)
    finally:
        lowtrace.set_default_client(None)


# -- output_reducer and chunk events ------------------------------------------------------------


def test_output_reducer_on_a_generator(client: TracingClient) -> None:
    @lowtrace.trace(client=client, output_reducer="".join)
    def stream(words: list[str]) -> Iterator[str]:
        yield from words

    assert list(stream(["Hel", "lo", "!"])) == ["Hel", "lo", "!"]
    trace_id = client.get_last_active_trace_id()
    assert trace_id is not None
    trace = client.get_trace(trace_id)
    assert trace is not None
    span = trace.spans[0]
    assert span.outputs == "Hello!"
    chunks = [(e.name, e.attributes["index"], e.attributes["value"]) for e in span.events]
    assert chunks == [("chunk", 0, "Hel"), ("chunk", 1, "lo"), ("chunk", 2, "!")]


def test_output_reducer_on_an_async_generator_and_a_failing_reducer(
    client: TracingClient,
) -> None:
    import asyncio

    @lowtrace.trace(client=client, output_reducer=sum)
    async def numbers() -> object:
        for n in (1, 2, 3):
            yield n

    def broken(items: list[object]) -> object:
        raise RuntimeError("reducer bug")

    @lowtrace.trace(client=client, output_reducer=broken)
    def letters() -> Iterator[str]:
        yield "a"

    async def consume() -> list[object]:
        return [n async for n in numbers()]  # type: ignore[attr-defined]

    assert asyncio.run(consume()) == [1, 2, 3]
    summed = client.get_trace(client.get_last_active_trace_id() or "")
    assert summed is not None and summed.spans[0].outputs == 6
    assert list(letters()) == ["a"]  # the reducer's failure never reaches the caller
    kept = client.get_trace(client.get_last_active_trace_id() or "")
    assert kept is not None and kept.spans[0].outputs == ["a"]
    assert any("output_reducer" in name for name in client.stats().violations)


# -- prompt-cache tokens -----------------------------------------------------------------------


def test_token_usage_cache_fields_and_their_cost(client: TracingClient) -> None:
    root = client.start_trace("agent")
    llm = client.start_span("llm", trace_id=root.trace_id, parent_id=root.span_id)
    llm.set_attributes({"model": "m"})
    llm.set_token_usage(
        input_tokens=1000,
        output_tokens=100,
        cache_read_input_tokens=800,
        cache_creation_input_tokens=100,
    )
    llm.end()
    plain = client.start_span("plain", trace_id=root.trace_id, parent_id=root.span_id)
    plain.set_token_usage(input_tokens=10, output_tokens=1)
    plain.end()
    trace = client.end_trace(root.trace_id)
    assert trace is not None
    usage = trace.info.token_usage
    assert usage == TokenUsage(1010, 101, 1111, 800, 100)
    assert trace.spans[2].token_usage == TokenUsage(10, 1, 11)
    assert trace.spans[2].token_usage.cache_read_input_tokens is None  # not reported

    flat = estimate_cost(trace, {"m": (1.0, 2.0)})  # no cache prices: all input at 1.0
    assert flat.total == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)
    cached = estimate_cost(trace, {"m": ModelPrice(1.0, 2.0, 0.1, 1.25)})
    expected = 100 * 1.0 + 800 * 0.1 + 100 * 1.25 + 100 * 2.0
    assert cached.total == pytest.approx(expected / 1e6)
    stored = client.get_trace(root.trace_id)
    assert stored is not None and stored.info.token_usage == usage


# -- the SQLite schema migration ------------------------------------------------------------------


def test_a_version_2_sqlite_store_with_traces_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(V2_STORE, path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        old_ids = {row[0] for row in conn.execute("SELECT trace_id FROM traces")}
    assert len(old_ids) == 3

    with TracingClient(f"sqlite:///{path}") as client:
        traces = client.search_traces(order_by="name")
        assert [t.info.name for t in traces] == ["v2-agent-0", "v2-agent-1", "v2-agent-2"]
        assert all(t.info.assessments == () and t.info.session_id is None for t in traces)
        first = traces[0].info.trace_id
        client.log_feedback(first, "correct", True)
        client.set_trace_tags(first, {"reviewed": "yes"})
        new = chat_turn(client, "after-upgrade", "q")
        assert found(client, "feedback.correct = 'true'") == {first}
        assert found(client, "tags.env = 'prod'") == old_ids - {first}
        assert found(client, "tags.reviewed = 'yes' AND tags.env = 'dev'") == {first}
        assert found(client, "session_id = 'after-upgrade'") == {new}
        assert client.count_traces() == 4

    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SQLITE_SCHEMA_VERSION


def test_a_version_1_postgres_store_with_traces_is_migrated_in_place(postgres_uri: str) -> None:
    import psycopg

    with TracingClient(postgres_uri) as client:  # written as version 1 would have
        root = client.start_trace("old", tags={"env": "prod"})
        client.end_trace(root.trace_id)
        kept = root.trace_id
        assert client.flush(10)
    with psycopg.connect(postgres_uri, autocommit=True) as conn:  # back to version 1
        conn.execute("DROP TABLE trace_metadata")
        conn.execute("DROP TABLE assessments")
        conn.execute("ALTER TABLE traces DROP COLUMN session_id")
        conn.execute("ALTER TABLE traces DROP COLUMN user_id")
        conn.execute("UPDATE lowtrace_schema SET version = 1")
    with TracingClient(postgres_uri) as client:
        assert client.get_trace(kept) is not None
        client.log_feedback(kept, "correct", True)
        assert found(client, "feedback.correct = 'true'") == {kept}
        assert found(client, "session_id IS NULL AND tags.env = 'prod'") == {kept}
    from lowtrace._stores.postgres import SCHEMA_VERSION

    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM lowtrace_schema").fetchone() == (SCHEMA_VERSION,)


def test_a_store_that_keeps_nothing_says_so_when_asked_to_change_a_trace() -> None:
    with TracingClient("none://") as client:
        root = client.start_trace("t")
        client.end_trace(root.trace_id)
        with pytest.raises(StoreError, match="keeps no traces"):
            client.log_feedback(root.trace_id, "correct", True)


def test_feedback_with_lone_surrogates_is_stored_like_its_value(client: TracingClient) -> None:
    root = client.start_trace("t")
    client.end_trace(root.trace_id)
    logged = client.log_feedback(
        root.trace_id,
        "tone\ud800",
        "ok\udfff",
        rationale="why\ud800",
        source={"type": "HUMAN", "id": "al\udc00ice"},
    )
    assert logged is not None
    assert logged.name == "tone\ufffd" and logged.value == "ok\ufffd"
    assert logged.rationale == "why\ufffd" and logged.source == {
        "type": "HUMAN",
        "id": "al\ufffdice",
    }
    stored = client.get_trace(root.trace_id)
    assert stored is not None and stored.info.assessments == (logged,)
