"""Bidi overrides and invisible characters in trace text are shown escaped, never obeyed:
in the UI's pages, the HTML trace view (server and script), the notebook table and the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from lowtrace import Trace, TracingClient
from lowtrace._textview import format_table, format_tree
from lowtrace._view.html import trace_document, trace_list_html
from tests.ui.conftest import in_process

RLO = "\u202e"
#: "invoice" + RLO + "fdp.exe" displays as "invoiceexe.pdf": a spoofed file name.
SPOOF = f"invoice{RLO}fdp.exe"
HIDDEN = ["\u202e", "\u2066", "\u200b", "\ufeff", "\x1b", "\U000e0041"]
MARK = '<span class="lt-ctl" title="U+202E RIGHT-TO-LEFT OVERRIDE">\\u202e</span>'


def raw_controls(text: str) -> list[str]:
    return [c for c in HIDDEN if c in text]


@pytest.fixture
def spoofed(tmp_path: Path) -> tuple[str, Trace, Trace]:
    uri = f"sqlite:///{tmp_path}/t.db"
    with TracingClient(uri) as client:
        root = client.start_trace(
            SPOOF,
            tags={"user\u2066": "a\u200bb", "bom": "\ufeffx"},
            inputs={"q": "x\x1b[2J"},
            metadata={"note\u202e": "x\u2066y"},
        )
        span = client.start_span("tool\U000e0041", trace_id=root.trace_id, parent_id=root.span_id)
        span.end(status_message="bad\u202eend")
        trace = client.end_trace(root.trace_id)
        other = client.end_trace(client.start_trace("plain").trace_id)
        assert client.flush(10)
    return uri, trace, other


@pytest.fixture
def http(spoofed: tuple[str, Trace, Trace]) -> Iterator[TestClient]:
    with in_process(spoofed[0]) as client:
        yield client


def test_the_list_shows_control_characters_as_marked_escapes(
    http: TestClient, spoofed: tuple[str, Trace, Trace]
) -> None:
    page = http.get("/").text
    assert raw_controls(page) == []
    assert f"invoice{MARK}fdp.exe" in page
    assert 'aria-label="Select invoice\\u202efdp.exe"' in page
    assert 'a<span class="lt-ctl" title="U+200B ZERO WIDTH SPACE">\\u200b</span>b' in page


def test_the_other_pages_escape_them_too(
    http: TestClient, spoofed: tuple[str, Trace, Trace]
) -> None:
    _, trace, other = spoofed
    tid, oid = trace.info.trace_id, other.info.trace_id
    for url in (f"/compare?id={tid}&id={oid}", f"/delete?id={tid}"):
        page = http.get(url).text
        assert raw_controls(page) == [], url
        assert MARK in page
    page = http.get(f"/?q=name+%3D+%27{RLO}%27").text  # an error page quoting the filter
    assert raw_controls(page.split('value="', 1)[1].split('"', 1)[1]) == []


def test_the_trace_view_header_and_notebook_table_escape_them(
    spoofed: tuple[str, Trace, Trace],
) -> None:
    _, trace, _ = spoofed
    document = trace_document(trace)
    head = document.split('<script type="application/json"', 1)[0]
    assert raw_controls(head.split("</style>", 1)[1]) == []
    assert f'<span class="lt-title">invoice{MARK}fdp.exe</span>' in head
    assert "<title>invoice\\u202efdp.exe · lowtrace</title>" in head
    assert 'x<span class="lt-ctl" title="U+2066 LEFT-TO-RIGHT ISOLATE">\\u2066</span>y' in head
    table = trace_list_html([trace])
    assert raw_controls(table) == [] and MARK in table


def test_the_cli_text_views_escape_them(spoofed: tuple[str, Trace, Trace]) -> None:
    _, trace, _ = spoofed
    for text in (format_tree(trace, show_io=True), format_table([trace.info])):
        assert raw_controls(text) == []
        assert "invoice\\u202efdp.exe" in text
    tree = format_tree(trace, show_io=True)
    assert "tool\\U000e0041" in tree and "user\\u2066=a\\u200bb" in tree


def test_the_trace_view_script_marks_them_in_a_browser(
    browser: Any, spoofed: tuple[str, Trace, Trace], tmp_path: Path
) -> None:
    _, trace, _ = spoofed
    path = tmp_path / "trace.html"
    path.write_text(trace_document(trace), encoding="utf-8")
    page = browser.new_page()
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(".lt-row")
        labels = page.locator(".lt-row .lt-label").all_inner_texts()
        assert labels == ["invoice\\u202efdp.exe", "tool\\U000e0041"]
        assert page.locator(".lt-row .lt-label .lt-ctl").count() == 2
        page.locator(".lt-row").nth(1).click()
        detail = page.locator(".lt-detail").inner_text()
        assert "bad\\u202eend" in detail and not raw_controls(detail)
        body = page.locator("body").inner_text()
        assert not raw_controls(re.sub(r"\s+", " ", body))
    finally:
        page.close()
