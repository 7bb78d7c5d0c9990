"""``store.sessions()``: conversations summarised alike by every store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from lowtrace import FilterError, TracingClient
from lowtrace._stores.base import TraceStore

WRITABLE = ["memory", "sqlite", "postgres"]  # session ids are set on stored traces


@pytest.fixture(params=WRITABLE)
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_uri"))
    return {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/s.db"}[request.param]


@pytest.fixture
def client(uri: str) -> Iterator[TracingClient]:
    with TracingClient(uri) as client:
        yield client


def store_of(client: TracingClient) -> TraceStore:
    return client._require_store()  # the client's own store: each memory:// is its own


def turn(
    client: TracingClient, session: str | None, user: str | None, *, fail: bool = False
) -> str:
    root = client.start_trace("chat", inputs={"q": session})
    if session is not None:
        client.set_trace_metadata(root.trace_id, session_id=session, user_id=user)
    llm = client.start_span("llm", trace_id=root.trace_id, parent_id=root.span_id)
    llm.set_token_usage(input_tokens=10, output_tokens=5)
    llm.end()
    client.end_trace(root.trace_id, status="ERROR" if fail else "OK")
    return root.trace_id


def test_sessions_count_turns_errors_and_tokens(client: TracingClient) -> None:
    turn(client, "a", "alice")
    turn(client, "b", "bob")
    turn(client, "a", "alice", fail=True)
    turn(client, None, None)
    assert client.flush(10)
    store = store_of(client)
    sessions = store.sessions()
    assert [s.session_id for s in sessions] == ["a", "b"]  # "a" was active last
    a = sessions[0]
    assert (a.traces, a.errors, a.total_tokens, a.user_id) == (2, 1, 30, "alice")
    assert a.first_start_ns < a.last_start_ns
    assert [s.session_id for s in store.sessions("status = 'OK'")] == ["b", "a"]
    assert [s.session_id for s in store.sessions(max_results=1)] == ["a"]


HOSTILE = "<script>alert(1)</script>' OR 1=1; -- \u202eevil\u202c \x00"


def said(client: TracingClient, session: str, request: object, response: object) -> str:
    root = client.start_trace("chat", inputs={"question": request})
    client.set_trace_metadata(root.trace_id, session_id=session)
    client.end_trace(root.trace_id, outputs={"answer": response})
    return root.trace_id


def test_sessions_carry_the_first_request_and_the_last_response(client: TracingClient) -> None:
    first = said(client, "s", "first question", "first answer")
    said(client, "s", "second question", HOSTILE)
    said(client, "t", HOSTILE, None)
    assert client.flush(10)
    store = store_of(client)
    t, s = store.sessions()
    assert orjson.loads(s.first_request) == {"question": "first question"}
    assert orjson.loads(s.last_response) == {"answer": HOSTILE}
    assert orjson.loads(t.first_request) == {"question": HOSTILE}
    assert orjson.loads(t.last_response) == {"answer": None}
    # A filter picks the turns: the first matching request, the last matching response.
    (only,) = store.sessions(f"session_id = 's' AND trace_id != '{first}'")
    assert orjson.loads(only.first_request) == {"question": "second question"}


@pytest.mark.parametrize(
    "bad",
    ["name = 'chat') OR (name = 'chat'", "name = 'chat') OR (1 = 1", "name = 'chat' OR"],
)
def test_a_malformed_filter_is_refused_not_joined_to_the_session_condition(
    client: TracingClient, bad: str
) -> None:
    turn(client, "a", "alice")
    turn(client, None, None)  # a trace with no session: never a session row
    assert client.flush(10)
    store = store_of(client)
    with pytest.raises(FilterError):
        store.sessions(bad)
    assert [s.session_id for s in store.sessions("name = 'chat'")] == ["a"]


def test_session_and_user_ids_with_lone_surrogates_are_stored_made_valid(
    client: TracingClient,
) -> None:
    # A lone surrogate (text decoded with errors="surrogateescape") cannot be written as
    # UTF-8: it becomes U+FFFD, as in every other recorded string, and the trace is stored.
    trace_id = turn(client, "s\ud800", "u\udfff")
    assert client.flush(10)
    trace = client.get_trace(trace_id)
    assert trace is not None
    assert (trace.info.session_id, trace.info.user_id) == ("s\ufffd", "u\ufffd")
    assert [(s.session_id, s.user_id) for s in store_of(client).sessions()] == [
        ("s\ufffd", "u\ufffd")
    ]
