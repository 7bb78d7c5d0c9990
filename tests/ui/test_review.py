"""Sessions turn by turn and feedback from the trace page, through TestClient."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from starlette.testclient import TestClient

from lowtrace import TracingClient
from lowtrace._stores.uri import open_store
from lowtrace._ui.app import create_app
from lowtrace._ui.server import LOOPBACK_NAMES
from tests.samples import XSS


@attrs.frozen
class Chats:
    uri: str
    first: list[str]  # trace ids of session chat-1, in order
    second: str  # the one turn of chat-2, recorded last
    hostile: str  # a turn whose session and user ids are injection payloads
    loose: str  # a trace in no session


def turn(client: TracingClient, session: str | None, question: str, user: str = "alice") -> str:
    root = client.start_trace("chat", inputs={"message": question})
    if session is not None:
        client.set_trace_metadata(root.trace_id, session_id=session, user_id=user)
    client.end_trace(root.trace_id, outputs={"reply": f"re: {question}"})
    return root.trace_id


def record_chats(uri: str) -> Chats:
    with TracingClient(uri) as client:
        first = [turn(client, "chat-1", q) for q in ("hello", "weather in Paris?", "thanks")]
        hostile = turn(client, XSS[0], XSS[1], user=XSS[3])
        loose = turn(client, None, "alone")
        second = turn(client, "chat-2", "hi again", user="bob")
        assert client.flush(10)
    return Chats(uri, first, second, hostile, loose)


@pytest.fixture
def chats(tmp_path: Path) -> Chats:
    return record_chats(f"sqlite:///{tmp_path}/chats.db")


@pytest.fixture
def http(chats: Chats) -> Iterator[TestClient]:
    store = open_store(chats.uri, create=False)
    app = create_app(store, allowed_hosts=LOOPBACK_NAMES)
    with TestClient(app, base_url="http://127.0.0.1:5800", follow_redirects=False) as client:
        yield client
    store.shutdown()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return html.unescape(found.group(1))


def test_sessions_are_listed_most_recent_first(http: TestClient, chats: Chats) -> None:
    page = http.get("/sessions").text
    order = re.findall(r'<a href="/sessions/([^"]+)">', page)
    assert order[0] == "chat-2" and order[2] == "chat-1" and len(order) == 3
    row = page.split('href="/sessions/chat-1"')[1].split("</tr>")[0]
    assert ">alice<" in row and '<td class="ui-num">3</td>' in row
    assert "3 sessions" in page


def test_a_session_shows_its_turns_in_order(http: TestClient, chats: Chats) -> None:
    page = http.get("/sessions/chat-1")
    assert page.status_code == 200
    turns = re.findall(r'<a href="/traces/([0-9a-f]+)">chat</a>', page.text)
    assert turns == chats.first
    requests = re.findall(r"Request</span>([^<]*)</div>", page.text)
    assert requests == ["hello", "weather in Paris?", "thanks"]
    assert "re: weather in Paris?" in page.text and "3 turns · user alice" in page.text
    assert http.get("/sessions/nope").status_code == 404


def test_feedback_from_the_trace_page_is_read_back_by_the_client(
    http: TestClient, chats: Chats
) -> None:
    trace_id = chats.first[1]
    page = http.get(f"/traces/{trace_id}").text
    assert 'class="lt-feedback-form"' in page and "Leave feedback" in page
    form = {"csrf": csrf(page), "name": "correct", "reviewer": "alice", "rationale": "right city"}
    posted = http.post(f"/traces/{trace_id}/feedback", data={**form, "verdict": "true"})
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/traces/{trace_id}?saved=1"
    custom = {**form, "name": "score", "verdict": "custom", "custom": "0.75"}
    assert http.post(f"/traces/{trace_id}/feedback", data=custom).status_code == 303
    with TracingClient(chats.uri) as client:
        stored = client.get_trace(trace_id)
        assert stored is not None
        [correct, score] = stored.info.assessments
        assert (correct.kind, correct.name, correct.value) == ("feedback", "correct", True)
        assert correct.source == {"type": "HUMAN", "id": "alice"}
        assert correct.rationale == "right city"
        assert (score.name, score.value) == ("score", 0.75)
        assert [t.info.trace_id for t in client.search_traces("feedback.correct = 'true'")] == [
            trace_id
        ]
    after = http.get(f"/traces/{trace_id}?saved=1").text
    table = after.split('<table class="lt-annotations">', 1)[1].split("</table>", 1)[0]
    assert "Feedback saved." in after and table.count("<th>feedback</th>") == 2
    assert "HUMAN/alice — right city" in table and "<code>0.75</code>" in table


def test_feedback_without_the_token_or_from_elsewhere_is_refused(
    http: TestClient, chats: Chats
) -> None:
    trace_id = chats.first[0]
    token = csrf(http.get(f"/traces/{trace_id}").text)
    form = {"name": "correct", "verdict": "false"}
    assert http.post(f"/traces/{trace_id}/feedback", data=form).status_code == 403
    stale = http.post(f"/traces/{trace_id}/feedback", data={**form, "csrf": "stale"})
    assert stale.status_code == 403 and "stale" in stale.text
    elsewhere = http.post(
        f"/traces/{trace_id}/feedback",
        data={**form, "csrf": token},
        headers={"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    )
    assert elsewhere.status_code == 403
    missing = http.post(f"/traces/{'0' * 32}/feedback", data={**form, "csrf": token})
    assert missing.status_code == 404
    empty = http.post(f"/traces/{trace_id}/feedback", data={"csrf": token, "verdict": "true"})
    assert empty.status_code == 400
    with TracingClient(chats.uri) as client:
        stored = client.get_trace(trace_id)
        assert stored is not None and stored.info.assessments == ()


def test_read_only_shows_feedback_but_takes_none(chats: Chats) -> None:
    with TracingClient(chats.uri) as client:
        client.log_feedback(chats.first[0], "correct", False, source={"type": "HUMAN", "id": "bo"})
    store = open_store(chats.uri, create=False)
    app = create_app(store, read_only=True, allowed_hosts={"127.0.0.1"})
    with TestClient(app, base_url="http://127.0.0.1") as http:
        page = http.get(f"/traces/{chats.first[0]}").text
        assert "<th>feedback</th><td>correct</td><td><code>false</code></td>" in page
        assert "HUMAN/bo" in page
        assert "lt-feedback-form" not in page and 'name="csrf"' not in page
        refused = http.post(
            f"/traces/{chats.first[0]}/feedback", data={"name": "x", "verdict": "true"}
        )
        assert refused.status_code == 403
        assert http.get("/sessions/chat-1").status_code == 200
    store.shutdown()


def test_injection_payloads_in_sessions_and_feedback_stay_text(
    http: TestClient, chats: Chats
) -> None:
    token = csrf(http.get(f"/traces/{chats.hostile}").text)
    form = {"csrf": token, "name": XSS[0], "reviewer": XSS[1], "rationale": XSS[3]}
    form |= {"verdict": "custom", "custom": XSS[2]}
    assert http.post(f"/traces/{chats.hostile}/feedback", data=form).status_code == 303
    pages = [
        http.get("/sessions").text,
        http.get("/sessions/" + XSS[0]).text,
        http.get(f"/traces/{chats.hostile}").text,
    ]
    for page in pages:
        for payload in (XSS[0], XSS[1], XSS[3]):
            assert payload not in page
        assert 'href="javascript' not in page  # XSS[2] may show as text, never as a link
    assert html.escape(XSS[0]) in pages[0] and html.escape(XSS[1]) in pages[1]
    assert html.escape(XSS[3]) in pages[2]  # the rationale, escaped
