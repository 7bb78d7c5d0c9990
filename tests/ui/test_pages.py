"""The web UI over HTTP: list, filter, sort, page, trace, compare, export, delete, security."""

from __future__ import annotations

import html
import re
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from lowtrace._dataset import golden_row
from lowtrace._stores.uri import open_store
from lowtrace._ui.app import create_app
from lowtrace._ui.guard import CSP
from tests.samples import XSS
from tests.ui.conftest import Seeded

ROW_ID = re.compile(r'name="id" form="ui-selection" value="([0-9a-f]+)"')


def listed(page: str) -> list[str]:
    """Trace ids on a list page, in order."""
    return ROW_ID.findall(page)


def link(page: str, rel: str) -> str | None:
    match = re.search(rf'rel="{rel}" href="([^"]+)"', page)
    return html.unescape(match.group(1)) if match else None


def ids(traces: list) -> list[str]:  # type: ignore[type-arg]
    return [t.info.trace_id for t in traces]


def test_list_shows_newest_first_with_the_summary_columns(http: TestClient, seeded: Seeded) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert listed(page.text) == ids(seeded.all)[::-1]
    assert "13 traces match" in page.text
    failed = seeded.agents[7].info
    row = page.text.split(f'value="{failed.trace_id}"')[1].split("</tr>")[0]
    assert "answer_question" in row and "ERROR" in row and "app.version=v2" in row
    assert f">{failed.token_usage.total_tokens}<" in row  # type: ignore[union-attr]


def test_filter_box_uses_the_filter_language(http: TestClient, seeded: Seeded) -> None:
    page = http.get("/", params={"q": "tags.app.version = 'v1' AND status = 'OK'"})
    expected = [t for t in seeded.agents if t.info.tags["app.version"] == "v1"]
    assert listed(page.text) == ids(expected)[::-1]
    assert "6 traces match" in page.text
    assert 'value="tags.app.version = &#x27;v1&#x27; AND status = &#x27;OK&#x27;"' in page.text


def test_bad_filter_says_where_and_keeps_the_query(http: TestClient) -> None:
    page = http.get("/", params={"q": "duration_ms > <script>"})
    assert page.status_code == 400
    assert 'role="alert"' in page.text and "position" in page.text
    assert "<script>" not in page.text.split("</head>")[1]
    assert 'value="duration_ms &gt; &lt;script&gt;"' in page.text


def test_sorting_by_a_column_and_back(http: TestClient, seeded: Seeded) -> None:
    page = http.get("/", params={"order": "total_tokens DESC", "q": "name = 'answer_question'"})
    tokens = {t.info.trace_id: t.info.token_usage.total_tokens for t in seeded.agents}  # type: ignore[union-attr]
    got = [tokens[i] for i in listed(page.text)]
    assert got == sorted(got, reverse=True) and len(got) == 12
    header = re.search(r'<a class="ui-sort" href="([^"]+)">Tokens ▼</a>', page.text)
    assert header is not None and "total_tokens+ASC" in header.group(1)


def test_paging_walks_every_trace_once_and_comes_back(http: TestClient, seeded: Seeded) -> None:
    url: str | None = "/?n=5"
    pages: list[list[str]] = []
    while url is not None:
        page = http.get(url).text
        pages.append(listed(page))
        assert f"Page {len(pages)}<" in page
        url = link(page, "next")
    assert [len(p) for p in pages] == [5, 5, 3]
    assert [i for page in pages for i in page] == ids(seeded.all)[::-1]
    second = http.get(link(http.get("/?n=5").text, "next")).text  # type: ignore[arg-type]
    back = link(second, "prev")
    assert back is not None and listed(http.get(back).text) == pages[0]


def test_trace_page_links_its_assets_and_shows_the_trace(http: TestClient, seeded: Seeded) -> None:
    trace = seeded.agents[3]
    page = http.get(f"/traces/{trace.info.trace_id}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts == [
        '<script type="application/json" class="lt-data">',
        '<script src="/static/view/view.js">',
    ]
    assert "<style" not in page.text and " style=" not in page.text
    assert "cost 0.000260" in page.text  # 180 in x 1 + 20 out x 4 per million
    download = http.get(f"/traces/{trace.info.trace_id}/json")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.content == trace.to_json()
    for asset in ("/static/view/view.js", "/static/view/view.css", "/static/ui/ui.js"):
        response = http.get(asset)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"


def test_unknown_trace_is_a_404_that_escapes_the_id(http: TestClient) -> None:
    page = http.get("/traces/%3Cscript%3Ealert(1)%3Cb%3E")
    assert page.status_code == 404
    assert "&lt;script&gt;alert(1)&lt;b&gt;" in page.text
    assert "<script>alert" not in page.text
    assert page.headers["content-security-policy"] == CSP
    nowhere = http.get("/no/such/<script>alert(1)</script>")
    assert nowhere.status_code == 404 and "<script>alert" not in nowhere.text
    assert "&lt;script&gt;" in nowhere.text


def test_compare_counts_time_and_tokens_per_span_name(http: TestClient, seeded: Seeded) -> None:
    v1, v2 = seeded.agents[0], seeded.agents[1]
    page = http.get("/compare", params=[("id", v1.info.trace_id), ("id", v2.info.trace_id)])
    assert page.status_code == 200
    rows = {
        html.unescape(m.group(1)): re.findall(r'<td class="ui-num[^"]*">([^<]*)</td>', m.group(2))
        for m in re.finditer(r'<td class="ui-name">([^<]*)</td>(.*?)</tr>', page.text)
    }
    # count A, B, delta | duration A, B, delta | tokens A, B, delta | errors A, B, delta
    assert rows["retrieve"][0:3] == ["1", "2", "+1"]
    assert rows["chat"][6:9] == ["120", "200", "+80"]
    assert rows["answer_question"][0:3] == ["1", "1", "0"]
    one = http.get("/compare", params={"id": v1.info.trace_id})
    assert one.status_code == 400 and "exactly two" in one.text
    missing = http.get("/compare", params=[("id", v1.info.trace_id), ("id", "f" * 32)])
    assert missing.status_code == 404


def test_export_selected_traces_as_a_golden_dataset(http: TestClient, seeded: Seeded) -> None:
    chosen = [seeded.agents[2], seeded.hostile]
    response = http.get("/export", params=[("id", t.info.trace_id) for t in chosen])
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="lowtrace-dataset.jsonl"'
    )
    rows = [orjson.loads(line) for line in response.content.splitlines()]  # newest first
    assert rows == [orjson.loads(orjson.dumps(golden_row(t))) for t in reversed(chosen)]
    assert rows[0]["inputs"] == {"question": XSS[3]} and rows[0]["tags"] == {"user": XSS[1]}
    assert rows[1]["outputs"] == {"answer": "answer to question 2"}
    odd = http.get("/export", params=[("id", chosen[0].info.trace_id), ("id", "it's')--")])
    assert odd.status_code == 404 and "it&#x27;s&#x27;)--" in odd.text


def test_export_all_matching_a_filter(http: TestClient, seeded: Seeded) -> None:
    response = http.get("/export", params={"q": "status = 'ERROR'", "order": "name ASC"})
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert [r["trace_id"] for r in rows] == [seeded.agents[7].info.trace_id]
    bad = http.get("/export", params={"q": "nope ="})
    assert bad.status_code == 400 and "unknown field" in bad.text


def test_delete_asks_first_and_needs_the_forms_token(http: TestClient, seeded: Seeded) -> None:
    victim = seeded.agents[5].info.trace_id
    confirm = http.get("/delete", params={"id": victim})
    assert confirm.status_code == 200 and "Delete 1 trace?" in confirm.text
    assert http.get(f"/traces/{victim}").status_code == 200  # asking deleted nothing
    token = re.search(r'name="csrf" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]

    assert http.post("/delete", data={"id": victim}).status_code == 403
    assert http.post("/delete", data={"id": victim, "csrf": token + "x"}).status_code == 403
    foreign = {"origin": "http://evil.example"}
    assert (
        http.post("/delete", data={"id": victim, "csrf": token}, headers=foreign).status_code == 403
    )
    cross = {"sec-fetch-site": "cross-site"}
    assert (
        http.post("/delete", data={"id": victim, "csrf": token}, headers=cross).status_code == 403
    )
    as_json = http.post("/delete", json={"id": victim, "csrf": token})
    assert as_json.status_code == 415
    assert http.get(f"/traces/{victim}").status_code == 200

    done = http.post(
        "/delete",
        data={"id": victim, "csrf": token},
        headers={"origin": "http://127.0.0.1:5800", "sec-fetch-site": "same-origin"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/?deleted=1"
    assert http.get(f"/traces/{victim}").status_code == 404
    after = http.get("/?deleted=1").text
    assert "Deleted 1 trace." in after and victim not in listed(after)
    assert http.get("/delete", params={"id": victim}).text.count("already deleted") == 1


def test_read_only_ui_never_deletes(seeded: Seeded) -> None:
    store = open_store(seeded.uri, create=False)
    app = create_app(store, read_only=True, allowed_hosts={"127.0.0.1"})
    victim = seeded.agents[0].info.trace_id
    with TestClient(app, base_url="http://127.0.0.1") as http:
        page = http.get("/").text
        assert "read-only" in page and 'formaction="/delete"' not in page
        assert http.get("/delete", params={"id": victim}).status_code == 403
        assert http.post("/delete", data={"id": victim, "csrf": "x"}).status_code == 403
        assert http.get(f"/traces/{victim}").status_code == 200
    store.shutdown()


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("127.0.0.1:5800", True),
        ("localhost:5800", True),
        ("[::1]:5800", True),
        ("LOCALHOST", True),
        ("evil.example", False),
        ("127.0.0.1.evil.example:5800", False),
        ("", False),
    ],
)
def test_only_loopback_host_names_are_served(http: TestClient, host: str, served: bool) -> None:
    response = http.get("/", headers={"host": host})
    assert (response.status_code == 200) is served
    if not served:
        assert response.status_code == 421
        assert response.headers["content-security-policy"] == CSP


def test_hostile_contents_are_escaped_on_every_page(http: TestClient, seeded: Seeded) -> None:
    hostile = seeded.hostile.info.trace_id
    other = seeded.agents[0].info.trace_id
    pages = [
        http.get("/").text,
        http.get("/", params={"q": f"trace_id = '{hostile}'"}).text,
        http.get("/compare", params=[("id", hostile), ("id", other)]).text,
        http.get("/delete", params={"id": hostile}).text,
        http.get("/dashboard").text,
        http.get("/dashboard", params={"q": f"name = '{XSS[3]}'"}).text,
    ]
    for page in pages:
        body = page.split("</head>", 1)[1]
        assert "<script" not in body and "onerror=" not in body.replace("onerror=&quot;", "")
        for payload in XSS[:4]:
            assert payload not in page
    assert html.escape(XSS[0]) in pages[0] and html.escape(XSS[1]) in pages[0]
    view = http.get(f"/traces/{hostile}").text
    data = view.split('class="lt-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data
    assert orjson.loads(data)["spans"][0]["name"] == XSS[0]


def test_deep_paging_keeps_urls_short_and_numbers_right(tmp_path: Path) -> None:
    from lowtrace import TracingClient
    from lowtrace._ui.pages import MAX_TRAIL
    from tests.ui.conftest import in_process

    uri = f"sqlite:///{tmp_path}/many.db"
    with TracingClient(uri) as client:
        for n in range(MAX_TRAIL + 5):
            client.end_trace(client.start_trace(f"t{n}").trace_id)
    with in_process(uri) as http:
        url: str | None = "/?n=1"
        forward: list[str] = []
        while url is not None:
            page = http.get(url).text
            forward += listed(page)
            assert f"Page {len(forward)}<" in page
            assert url.count("&t=") <= MAX_TRAIL
            last, url = url, link(page, "next")
        assert len(forward) == MAX_TRAIL + 5
        backward = []
        url = last
        while url is not None:
            page = http.get(url).text
            backward += listed(page)
            url = link(page, "prev")
        assert backward == forward[::-1][: MAX_TRAIL + 1]  # the last page and 20 back
        assert "&laquo; First" in page and f"Page {len(forward) - MAX_TRAIL}<" in page


@pytest.mark.parametrize(
    ("key", "value"),
    [("app.version", "v1"), ("it's", "o'clock"), ("back`tick", 'dq"'), ("user", XSS[0])],
)
def test_tag_chips_filter_by_their_tag(tmp_path: Path, key: str, value: str) -> None:
    from lowtrace import TracingClient
    from lowtrace._ui.pages import tag_filter
    from tests.ui.conftest import in_process

    uri = f"sqlite:///{tmp_path}/tags.db"
    with TracingClient(uri) as client:
        wanted = client.end_trace(client.start_trace("a", tags={key: value}).trace_id)
        client.end_trace(client.start_trace("b", tags={key: value + "x"}).trace_id)
    assert wanted is not None
    with in_process(uri) as http:
        page = http.get("/", params={"q": "name = 'a' OR name = 'b'"}).text
        row = page.split(f'value="{wanted.info.trace_id}"')[1].split("</tr>")[0]
        chip = re.search(r'<a class="ui-tag" href="([^"]+)"', row)
        assert chip is not None
        narrowed = http.get(html.unescape(chip.group(1))).text
        assert listed(narrowed) == [wanted.info.trace_id]
        assert tag_filter(key, value) is not None
