"""What a hostile page, a hostile trace or a hostile URL cannot make the UI do."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from lowtrace import Trace, TracingClient
from lowtrace._query.paging import _fingerprint, parse_order_by
from lowtrace._stores.base import TraceList, TraceStore
from lowtrace._stores.uri import redact
from lowtrace._ui.app import create_app
from lowtrace._ui.guard import CSP, host_name
from lowtrace._ui.pages import tag_filter
from lowtrace._ui.params import MAX_QUERY_CHARS
from lowtrace._ui.server import host_names
from tests.test_cli import lowtrace
from tests.ui.conftest import Seeded, in_process
from tests.ui.test_pages import listed


def test_long_queries_are_refused_before_any_work(http: TestClient) -> None:
    for params in ({"q": "x" * (MAX_QUERY_CHARS + 1)}, {"tv": "v" * (MAX_QUERY_CHARS + 1)}):
        for path in ("/", "/export"):
            response = http.get(path, params={**params, "tk": "k"})
            assert response.status_code == 400 and "longer than" in response.text
            assert len(response.content) < 10_000


def test_tag_chips_do_not_repeat_the_filter(http: TestClient) -> None:
    page = http.get("/", params={"q": "name = 'answer_question'", "n": 500}).text
    chips = re.findall(r'<a class="ui-tag" href="([^"]+)"', page)
    assert chips and all("q=" not in html.unescape(c) for c in chips)


@pytest.mark.parametrize(
    ("headers", "served"),
    [
        (
            {
                "sec-fetch-site": "cross-site",
                "sec-fetch-mode": "no-cors",
                "sec-fetch-dest": "image",
            },
            False,
        ),
        (
            {"sec-fetch-site": "cross-site", "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"},
            False,
        ),
        (
            {
                "sec-fetch-site": "cross-site",
                "sec-fetch-mode": "navigate",
                "sec-fetch-dest": "iframe",
            },
            False,
        ),
        (
            {
                "sec-fetch-site": "cross-site",
                "sec-fetch-mode": "navigate",
                "sec-fetch-dest": "document",
            },
            True,
        ),
        (
            {
                "sec-fetch-site": "same-origin",
                "sec-fetch-mode": "no-cors",
                "sec-fetch-dest": "script",
            },
            True,
        ),
        ({}, True),
    ],
)
def test_other_sites_pages_cannot_make_background_requests(
    http: TestClient, headers: dict[str, str], served: bool
) -> None:
    for path in ("/", "/export", "/static/ui/ui.js"):
        response = http.get(path, headers=headers)
        assert (response.status_code == 200) is served, (path, headers)
        assert response.headers["content-security-policy"] == CSP


def test_export_selected_with_nothing_selected_exports_nothing(http: TestClient) -> None:
    response = http.get("/export", params={"selected": "1"})
    assert response.status_code == 400 and "Select the traces" in response.text
    everything = http.get("/export")  # the "Export all matching" link with no filter
    assert everything.status_code == 200 and len(everything.content.splitlines()) == 13


@pytest.mark.parametrize(
    "q",
    [
        "(" * 2000 + "status = 'OK'" + ")" * 2000,
        "NOT " * 3000 + "status = 'OK'",
        " OR ".join(["status = 'OK'"] * 3000),
    ],
)
def test_pathological_filters_are_filter_errors(http: TestClient, q: str) -> None:
    for path in ("/", "/export"):
        response = http.get(path, params={"q": q[:MAX_QUERY_CHARS]})
        assert response.status_code == 400, path
        assert "Internal" not in response.text


def test_forged_page_tokens_are_400(http: TestClient) -> None:
    keys = parse_order_by(None)
    for values in ([{"a": 1}, "x"], [[1], "x"], [1]):
        payload = {"v": 1, "q": _fingerprint(None, keys), "k": values}
        token = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
        response = http.get("/", params={"page": token})
        assert response.status_code == 400 and "not a valid page token" in response.text


class _Broken(TraceStore):
    """A store whose reads fail with a bug, not a LowtraceError."""

    uri = "broken://"

    def export(self, traces: Sequence[Trace]) -> None: ...

    def get_trace(self, trace_id: str) -> Trace | None:
        raise RuntimeError("bug <script>alert(1)</script>")

    def search_traces(self, filter=None, *, order_by=None, max_results=100, page_token=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug <script>alert(1)</script>")

    def count(self, filter: str | None = None) -> int:
        return 0

    def delete_traces(self, trace_ids=None, *, older_than_ms=None) -> int:  # type: ignore[no-untyped-def]
        return 0


def test_unexpected_errors_are_a_plain_500_with_the_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(_Broken(), allowed_hosts={"127.0.0.1"})
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as http:
        for path in ("/", "/traces/" + "a" * 32):
            response = http.get(path)
            assert response.status_code == 500
            assert response.headers["content-security-policy"] == CSP
            assert "<script>" not in response.text and "Traceback" not in response.text
    assert "bug <script>" in caplog.text  # the details go to the log
    assert TraceList() == []


def test_oversized_delete_forms_are_refused_unread(http: TestClient, seeded: Seeded) -> None:
    victim = seeded.agents[0].info.trace_id
    big = {"id": victim, "csrf": "x", "pad": "p" * 100_000}
    assert http.post("/delete", data=big).status_code == 413

    def endless():  # type: ignore[no-untyped-def]  # no Content-Length: read up to the limit
        for _ in range(64):
            yield b"pad=" + b"p" * 65536

    streamed = http.post(
        "/delete",
        content=endless(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413
    assert http.get(f"/traces/{victim}").status_code == 200


def test_passwords_never_show() -> None:
    assert redact("postgresql://h/db?user=u&password=hunter2") == (
        "postgresql://h/db?user=u&password=***"
    )
    assert redact("postgresql://u:pw@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"
    assert redact("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"
    assert redact("postgresql://u@h:99999/db") == "postgresql://u@h:99999/db"


def test_tag_filter_edge_cases() -> None:
    assert tag_filter("", "x") is None
    assert tag_filter('a`b"c', "x") is None
    assert tag_filter("k", "it's") == "tags.`k` = 'it''s'"


def test_sort_arrows_follow_any_spelling_and_searches_keep_the_page_size(
    http: TestClient,
) -> None:
    page = http.get("/", params={"order": "name   desc, duration_ms", "n": 7}).text
    header = re.search(r'<a class="ui-sort" href="([^"]+)">Name ▼</a>', page)
    assert header is not None and "name+ASC" in header.group(1)
    assert '<input type="hidden" name="n" value="7">' in page
    assert len(listed(page)) == 7


def test_strict_host_parsing() -> None:
    for header in ("[::1]evil.com", "[::1].attacker.com:80", "a:b:c", "127.0.0.1:80:80", ""):
        assert host_name(header) == ""


def test_remote_mode_still_checks_host_names() -> None:
    names = host_names("0.0.0.0")
    assert names is not None and "127.0.0.1" in names and "0.0.0.0" not in names
    assert "rebound.example" not in names
    assert "traces.internal" in (host_names("0.0.0.0", ["traces.internal"]) or ())
    assert host_names("0.0.0.0", ["*"]) is None


def test_bad_port_is_a_message_not_a_traceback(seeded: Seeded) -> None:
    result = lowtrace("ui", "--uri", seeded.uri, "--port", "70000")
    assert result.returncode == 1 and "65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_huge_attributes_are_cut_in_the_view(tmp_path: Path) -> None:
    with TracingClient(f"sqlite:///{tmp_path}/big.db") as client:
        root = client.start_trace("big", attributes={"blob": "a" * 300_000})
        root.add_event("note", attributes={"text": "b" * 300_000})
        trace = client.end_trace(root.trace_id, status="ERROR", status_message="c" * 300_000)
        assert trace is not None
    with in_process(f"sqlite:///{tmp_path}/big.db") as http:
        page = http.get(f"/traces/{trace.info.trace_id}")
    assert page.status_code == 200 and len(page.content) < 250_000
    assert "view cut" in page.text


def test_a_tag_chip_cannot_be_escaped_by_a_malformed_filter(
    http: TestClient, seeded: Seeded
) -> None:
    # Alone this filter is malformed; wrapped in "(...) AND chip" it would parse and list
    # every answer_question trace, whatever its app.version.
    q = "name = 'answer_question') OR (name = 'x'"
    page = http.get("/", params={"q": q, "tk": "app.version", "tv": "v1"}).text
    v2 = {t.info.trace_id for t in seeded.agents if t.info.tags.get("app.version") == "v2"}
    assert v2 and not v2 & set(listed(page))
