"""The dashboard, the list's previews and marks, and the small pages, through TestClient."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from starlette.testclient import TestClient

from lowtrace import TracingClient
from lowtrace._controls import html_text
from lowtrace._stores.uri import open_store
from lowtrace._textview import duration_text
from lowtrace._ui.app import create_app
from tests.ui.conftest import Seeded, in_process


def card(page: str, label: str) -> str:
    """The value shown on the dashboard card with this label."""
    found = re.search(
        rf'<span class="db-label">{label}</span><span class="db-value">([^<]*)</span>', page
    )
    assert found is not None, label
    return html.unescape(found.group(1))


def row_of(page: str, trace_id: str) -> str:
    return page.split(f'value="{trace_id}"')[1].split("</tr>", maxsplit=1)[0]


def test_list_rows_show_previews_the_id_and_failed_spans(http: TestClient, seeded: Seeded) -> None:
    page = http.get("/").text
    ok, failed = seeded.agents[3].info, seeded.agents[7].info
    row = row_of(page, ok.trace_id)
    assert "question 3" in row and "answer to question 3" in row  # request and response
    assert f'<code class="ui-id" title="trace id">{ok.trace_id}</code>' in row
    assert "failed" not in row
    assert "⚠ 2 spans failed" in row_of(page, failed.trace_id)  # the model call and the root
    # An OK trace whose tool span failed is marked too: it is not a clean run.
    hostile = row_of(page, seeded.hostile.info.trace_id)
    assert ">OK<" in hostile and "⚠ 1 span failed" in hostile


def test_counts_read_in_the_singular_for_one(http: TestClient, seeded: Seeded) -> None:
    one = http.get("/", params={"q": f"trace_id = '{seeded.hostile.info.trace_id}'"}).text
    assert "1 trace matches" in one
    assert "13 traces match" in http.get("/").text


def test_dashboard_numbers_are_the_stores(http: TestClient, seeded: Seeded) -> None:
    page = http.get("/dashboard")
    assert page.status_code == 200
    text = page.text
    store = open_store(seeded.uri, create=False)
    try:
        overview = store.overview()
        assert card(text, "Traces") == f"{store.count():,}" == "13"
        errors = store.count("status = 'ERROR'")
        assert card(text, "Errors") == str(errors) == "1"
    finally:
        store.shutdown()
    tokens = sum(t.info.token_usage.total_tokens for t in seeded.all if t.info.token_usage)
    assert card(text, "Tokens") == f"{tokens:,}"
    # small-model costs 1.0 in / 4.0 out per million tokens; the hostile trace has no model.
    priced = [t for t in seeded.agents if t.info.token_usage]
    cost = (
        sum(
            t.info.token_usage.input_tokens * 1.0 + t.info.token_usage.output_tokens * 4.0  # type: ignore[union-attr]
            for t in priced
        )
        / 1e6
    )
    assert card(text, "Cost") == f"{cost:,.4f}"
    assert "15 tokens unpriced" in text
    assert text.count('<svg class="ch"') == 4  # volume, latency, tokens, cost
    # The slowest name comes from real timings: under load it can be the hostile one.
    assert html_text(overview.slowest[0].name) in text
    assert 'href="/?q=span.name+%3D+%27chat%27+AND+span.status+%3D+%27ERROR%27"' in text


def test_dashboard_filter_and_range(http: TestClient, seeded: Seeded) -> None:
    page = http.get("/dashboard", params={"q": "tags.`app.version` = 'v1'", "range": "24h"})
    assert page.status_code == 200 and card(page.text, "Traces") == "6"
    assert '<option value="24h" selected>' in page.text
    old = http.get("/dashboard", params={"range": "1h", "q": "start_time_ms < 1000"})
    assert card(old.text, "Traces") == "0" and "No traces in this range" in old.text
    bad = http.get("/dashboard", params={"q": "status = 'EROR'"})
    assert bad.status_code == 400
    assert "status is one of UNSET, OK, ERROR, not &#x27;EROR&#x27;" in bad.text


def test_favicon_and_a_download_named_after_the_trace(http: TestClient, seeded: Seeded) -> None:
    icon = http.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    trace_id = seeded.agents[0].info.trace_id
    download = http.get(f"/traces/{trace_id}/json")
    assert download.headers["content-disposition"] == f'attachment; filename="{trace_id}.json"'


def test_the_trace_page_has_a_time_axis_and_a_legend(http: TestClient, seeded: Seeded) -> None:
    page = http.get(f"/traces/{seeded.agents[1].info.trace_id}").text
    assert '<div class="lt-lane lt-axis"' in page and page.count('class="lt-tick ') == 5
    legend = page.split('<ul class="lt-legend"', 1)[1].split("</ul>", 1)[0]
    assert re.findall(r"</span>([A-Z_]+)</li>", legend) == ["AGENT", "CHAT_MODEL", "RETRIEVER"]


def test_the_dashboard_works_read_only(seeded: Seeded) -> None:
    store = open_store(seeded.uri, create=False)
    app = create_app(store, read_only=True, allowed_hosts={"127.0.0.1"})
    with TestClient(app, base_url="http://127.0.0.1") as http:
        page = http.get("/dashboard").text
        assert "read-only" in page and card(page, "Traces") == "13"
        assert "start the UI with --prices" in page
    store.shutdown()


def test_the_dashboard_writes_durations_as_the_list_and_the_cli_do(tmp_path: Path) -> None:
    # One duration reads the same everywhere: a 1,500 ms trace is "1.50 s" in the list,
    # in the CLI and on the dashboard (its latency table and its costliest span names).
    uri = f"sqlite:///{tmp_path}/one.db"
    start_ns = time.time_ns()
    with TracingClient(uri) as client:
        root = client.start_trace("slow_agent", start_time_ns=start_ns)
        client.end_trace(root.trace_id, end_time_ns=start_ns + 1_500_000_000)
        assert client.flush(timeout=30)
    assert duration_text(1500) == "1.50 s"
    with in_process(uri) as http:
        listed = http.get("/").text
        page = http.get("/dashboard").text
    assert '<td class="ui-num">1.50 s</td>' in listed
    assert page.count('<td class="ui-num">1.50 s</td>') == 2  # p50 and p95
    assert "1.50 s in 1" in page  # slow_agent by total time


def test_count_axes_are_labelled_in_whole_numbers(tmp_path: Path) -> None:
    # Three traces and 228 tokens: no axis says "0.5 traces" or "37.5 tokens".
    uri = f"sqlite:///{tmp_path}/few.db"
    with TracingClient(uri) as client:
        for n in range(3):
            root = client.start_trace(f"agent {n}")
            root.set_token_usage(input_tokens=63, output_tokens=13)
            client.end_trace(root.trace_id)
        assert client.flush(timeout=30)
    with in_process(uri) as http:
        page = http.get("/dashboard").text
    charts = {
        title: re.findall(r'class="ch-y"[^>]*>([^<]*)<', svg)
        for title, svg in re.findall(r'<h2>([^<]*)</h2>(<svg class="ch".*?</svg>)', page)
    }
    for title in ("Traces and errors", "Tokens"):
        ticks = [int(label) for label in charts[title]]  # ValueError on "0.5"
        assert ticks == [ticks[1] * i for i in range(5)] and ticks[1] >= 1, (title, ticks)
    assert charts["Traces and errors"][-1] in ("4", "8")  # 1 to 3 traces a bucket
