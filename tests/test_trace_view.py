"""The self-contained HTML trace view: escaping, and real headless Chromium (Playwright)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import orjson
from playwright.sync_api import expect

from lowtrace import Trace, TracingClient
from tests.samples import XSS, hostile_trace

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "view"


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


def open_view(browser: object, trace: Trace, tmp_path: Path, name: str, **prices: object):  # type: ignore[no-untyped-def]
    path = tmp_path / f"{name}.html"
    path.write_text(trace.to_html(**prices), encoding="utf-8")  # type: ignore[arg-type]
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


def test_ten_thousand_spans_render_only_the_rows_in_view(browser: object, tmp_path: Path) -> None:
    trace = big_trace(10_000)
    page, _ = open_view(browser, trace, tmp_path, "big")
    rendered = page.locator(".lt-row").count()
    assert 0 < rendered < 200  # virtualised: only the rows in view exist
    page.locator(".lt-list").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(page.locator(".lt-list")).to_contain_text("step 9998")  # rendered on the scroll event
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "big.png"))
    page.close()


def priced_trace() -> Trace:
    with TracingClient("memory://") as client:
        root = client.start_trace("rank", inputs={"query": "q"})
        llm = client.start_span(
            "rerank",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            attributes={"model": "m-1"},
            inputs={"nested": {"deep": {"deeper": {"deepest": "hidden at first"}}}},
        )
        llm.set_token_usage(input_tokens=1000, output_tokens=500)
        llm.end(outputs=[{"rank": n} for n in range(450)])
        trace = client.end_trace(root.trace_id)
    assert trace is not None
    return trace


def test_costs_show_when_prices_are_given() -> None:
    trace = priced_trace()
    assert 'lt-meta">cost' not in trace.to_html()
    document = trace.to_html(prices={"m-1": (2.0, 8.0)})
    assert 'lt-meta">cost 0.006000' in document  # 1000 x 2 + 500 x 8 per million
    data = orjson.loads(document.split('class="lt-data">')[1].split("</script>")[0])
    assert [s["cost"] for s in data["spans"]] == [None, 0.006]


def test_waterfall_rows_show_each_spans_tokens_and_cost(browser: object, tmp_path: Path) -> None:
    page, _ = open_view(browser, priced_trace(), tmp_path, "unpriced")
    assert page.locator(".lt-axis-row .lt-tok").inner_text() == "Tokens"
    assert page.locator(".lt-row .lt-tok").all_inner_texts() == ["", "1,500"]
    assert page.locator(".lt-row .lt-tok").nth(1).get_attribute("title") == "1,000 in · 500 out"
    assert page.locator(".lt-cost").count() == 0  # no prices, no cost column
    prices = {"m-1": (2.0, 8.0)}
    page, _ = open_view(browser, priced_trace(), tmp_path, "priced", prices=prices)
    assert page.locator(".lt-axis-row .lt-cost").inner_text() == "Cost"
    assert page.locator(".lt-row .lt-cost").all_inner_texts() == ["", "0.006000"]
    # The bars keep their lane: the axis starts where the root's bar starts.
    bar, axis = (
        page.locator(".lt-bar").first.bounding_box(),
        page.locator(".lt-axis").bounding_box(),
    )
    assert bar is not None and axis is not None and abs(bar["x"] - axis["x"]) < 2
    assert page.locator(".lt-lane").first.bounding_box()["width"] > 200  # type: ignore[index]
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_a_trace_without_token_counts_has_no_tokens_column(browser: object, tmp_path: Path) -> None:
    page, _ = open_view(browser, big_trace(3), tmp_path, "plain")
    assert page.locator(".lt-row").count() == 3 and page.locator(".lt-tok").count() == 0


def test_json_is_collapsible_and_long_lists_come_in_slices(browser: object, tmp_path: Path) -> None:
    page, dialogs = open_view(browser, priced_trace(), tmp_path, "json")
    page.locator(".lt-row").nth(1).click()
    detail = page.locator(".lt-detail")
    assert "hidden at first" not in detail.inner_text()  # deep levels start closed
    detail.locator("summary", has_text="deep:").click()
    detail.locator("summary", has_text="deeper:").click()
    expect(detail).to_contain_text("hidden at first")  # built by the (async) toggle event
    outputs = detail.locator(".lt-json").nth(1)
    assert outputs.locator(":scope > details > details").count() == 200
    outputs.locator("button", has_text="show 200 more of 250").click()
    outputs.locator("button", has_text="show 50 more of 50").click()
    expect(outputs.locator(":scope > details > details")).to_have_count(450)
    assert outputs.locator("button.lt-jmore").is_hidden()
    assert dialogs == []
    page.close()


def test_span_ids_that_name_object_properties_still_render(browser: object, tmp_path: Path) -> None:
    data = orjson.loads(priced_trace().to_json())
    root, child = data["spans"]
    root["span_id"], child["span_id"], child["parent_id"] = "__proto__", "constructor", "__proto__"
    data["info"]["trace_id"] = "toString"
    trace = Trace.from_json(orjson.dumps(data))
    page, dialogs = open_view(browser, trace, tmp_path, "proto")
    assert page.locator(".lt-row .lt-label").all_inner_texts() == ["rank", "rerank"]
    page.locator(".lt-row").first.locator(".lt-toggle").click()
    assert page.locator(".lt-row").count() == 1
    assert dialogs == []
    page.close()


def test_assessments_metadata_session_and_user_show_escaped() -> None:
    evil = XSS[0]
    with TracingClient("memory://") as client:
        root = client.start_trace("chat", metadata={"prompt": evil})
        client.set_trace_metadata(root.trace_id, session_id="conv<1>", user_id="alice")
        client.end_trace(root.trace_id)
        client.log_feedback(
            root.trace_id, "correct", False, source={"type": "HUMAN", "id": "bob"}, rationale=evil
        )
        client.log_expectation(root.trace_id, "answer", {"text": evil})
        trace = client.get_trace(root.trace_id)
    assert trace is not None
    document = trace.to_html()
    assert evil not in document
    assert "session conv&lt;1&gt;" in document and "user alice" in document
    table = document.split('<table class="lt-annotations">')[1].split("</table>")[0]
    assert "<th>feedback</th><td>correct</td><td><code>false</code></td>" in table
    assert f"HUMAN/bob — {html.escape(evil)}" in table
    assert "<th>expectation</th><td>answer</td>" in table
    assert f"<th>metadata</th><td>prompt</td><td>{html.escape(evil)}</td>" in table
