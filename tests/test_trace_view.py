"""The self-contained HTML trace view: escaping, and real headless Chromium (Playwright)."""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from lowtrace import SpanType, Trace, TracingClient

XSS = [
    "<script>window.__pwned = 1; alert(1)</script>",
    '<img src=x onerror="window.__pwned = 2; alert(2)">',
    "javascript:alert(3)",
    "</script><script>window.__pwned = 4</script>",
    "\u2028line separator\u2029",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "view"


def hostile_trace() -> Trace:
    with TracingClient("memory://") as client:
        root = client.start_trace(
            XSS[0], inputs={"question": XSS[3]}, tags={"user": XSS[1]}, span_type=SpanType.AGENT
        )
        tool = client.start_span(
            XSS[1],
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.TOOL,
            inputs={"link": XSS[2]},
            attributes={"note": XSS[4]},
        )
        tool.record_exception(ValueError(XSS[3]))
        tool.end(outputs=XSS)
        llm = client.start_span(
            "model call",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.CHAT_MODEL,
            inputs={"prompt": "Hi"},
        )
        llm.set_token_usage(input_tokens=12, output_tokens=3)
        llm.end(outputs={"text": "Hello <b>there</b>"})
        trace = client.end_trace(root.trace_id, outputs={"answer": XSS[3]})
    assert trace is not None
    return trace


def big_trace(spans: int) -> Trace:
    with TracingClient("memory://") as client:
        root = client.start_trace("big")
        parent = root
        for n in range(spans - 1):
            span = client.start_span(
                f"step {n}",
                trace_id=root.trace_id,
                parent_id=(root if n % 50 == 0 else parent).span_id,
                inputs={"n": n},
            )
            if n % 50 == 0:
                parent = span
        trace = client.end_trace(root.trace_id, close_open_spans=True)
    assert trace is not None
    return trace


def test_data_block_cannot_break_out_of_its_script() -> None:
    document = hostile_trace().to_html()
    data = re.search(
        r'<script type="application/json" class="lt-data">(.*?)</script>', document, re.S
    )
    assert data is not None
    block = data.group(1)
    assert "<" not in block and ">" not in block and "\u2028" not in block
    spans = orjson.loads(block)["spans"]
    assert spans[0]["name"] == XSS[0]  # escaped as JSON, decoded intact
    head = document.split('<script type="application/json"')[0]
    assert XSS[0] not in head and html.escape(XSS[0]) in head


def test_notebook_views_escape_everything() -> None:
    trace = hostile_trace()
    frame = trace._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    assert "<script" not in frame  # the whole document is an escaped attribute value
    from lowtrace import TraceList

    listing = TraceList([trace])._repr_html_()
    assert XSS[0] not in listing and html.escape(XSS[0]) in listing
    assert XSS[1] not in listing


# -- real Chromium --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (Debian package 'chromium')")
        pytest.skip("Chromium is not installed: the browser tests did NOT run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def open_view(browser: object, trace: Trace, tmp_path: Path, name: str):  # type: ignore[no-untyped-def]
    path = tmp_path / f"{name}.html"
    path.write_text(trace.to_html(), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 720})  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.context.route(
        "**/*",
        lambda route: (
            route.abort() if not route.request.url.startswith("file:") else route.continue_()
        ),
    )
    page.goto(path.as_uri())
    page.wait_for_selector(".lt-root[data-ready=true]", timeout=10_000)
    return page, dialogs


def test_hostile_trace_renders_as_text_and_runs_nothing(browser: object, tmp_path: Path) -> None:
    trace = hostile_trace()
    page, dialogs = open_view(browser, trace, tmp_path, "hostile")
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".lt-title").inner_text() == XSS[0]
    labels = page.locator(".lt-row .lt-label").all_inner_texts()
    assert labels == [XSS[0], XSS[1], "model call"]
    assert page.locator(".lt-bar").count() == len(trace.spans)
    page.locator(".lt-row").nth(1).click()
    detail = page.locator(".lt-detail").inner_text()
    assert XSS[2] in detail and "ValueError" in detail
    page.keyboard.press("ArrowDown")
    assert "15 (12 in / 3 out)" in page.locator(".lt-detail").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hostile.png"))
    assert dialogs == [] and page.evaluate("window.__pwned") is None
    page.close()


def test_tree_collapses_and_search_filters(browser: object, tmp_path: Path) -> None:
    page, _ = open_view(browser, hostile_trace(), tmp_path, "tree")
    page.locator(".lt-row").first.locator(".lt-toggle").click()
    assert page.locator(".lt-row").count() == 1
    page.keyboard.press("ArrowRight")
    assert page.locator(".lt-row").count() == 3
    page.fill(".lt-search", "model")
    assert page.locator(".lt-row .lt-label").all_inner_texts() == [XSS[0], "model call"]
    page.close()


def test_ten_thousand_spans_stay_fast(browser: object, tmp_path: Path) -> None:
    trace = big_trace(10_000)
    started = time.perf_counter()
    page, _ = open_view(browser, trace, tmp_path, "big")
    elapsed = time.perf_counter() - started
    assert elapsed < 10
    rendered = page.locator(".lt-row").count()
    assert 0 < rendered < 200  # virtualised: only the rows in view exist
    page.locator(".lt-list").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_function("document.querySelector('.lt-row .lt-label') !== null")
    assert "step 9998" in page.locator(".lt-list").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "big.png"))
    page.close()
