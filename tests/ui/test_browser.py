"""The web UI in real headless Chromium against a live server: what a user clicks through.

Every page is checked for dialogs, for ``window.__pwned`` and for Content-Security-Policy
reports in the console: a report would mean either our own page breaks its policy or
injected markup tried to run. Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.samples import XSS
from tests.ui.conftest import Seeded, serving
from tests.ui.test_review import Chats, record_chats

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


class Watched:
    """A page plus what it must never do: open dialogs, set ``__pwned``, break the CSP."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.csp_reports: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on(
            "console",
            lambda m: (
                self.csp_reports.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )

    def goto(self, url: str) -> None:
        self.page.goto(url)
        self.settle()

    def settle(self) -> None:
        self.page.wait_for_load_state("load")
        self.page.wait_for_function(
            "document.documentElement.dataset.ready === 'true' || "
            "document.querySelector('.lt-root[data-ready=true]') !== null",
            timeout=10_000,
        )

    def assert_clean(self) -> None:
        assert self.dialogs == []
        assert self.page.evaluate("window.__pwned") is None
        assert self.csp_reports == []

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def ui(browser: Any, live_ui: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    # Nothing but the UI server may be reached: the pages must work offline.
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(live_ui) else route.abort(),
    )
    watched = Watched(context.new_page())
    watched.goto(live_ui + "/")
    yield watched
    watched.assert_clean()
    context.close()


@pytest.fixture
def chats(tmp_path: Path) -> Chats:
    return record_chats(f"sqlite:///{tmp_path}/chats.db")


@contextmanager
def watched(browser: Any, url: str) -> Iterator[Watched]:
    """A fresh 1280 px page on ``url`` that may reach nothing else, checked when done."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(url) else route.abort(),
    )
    page = Watched(context.new_page())
    page.goto(url + "/")
    try:
        yield page
        page.assert_clean()
    finally:
        context.close()


def rows(ui: Watched) -> list[str]:
    return ui.page.locator("table.ui-traces tbody input[name=id]").evaluate_all(
        "boxes => boxes.map(b => b.value)"
    )


def select(ui: Watched, *trace_ids: str) -> None:
    for trace_id in trace_ids:
        ui.page.check(f"input[name=id][value='{trace_id}']")


def test_list_loads_and_the_search_box_filters(ui: Watched, seeded: Seeded) -> None:
    assert rows(ui) == [t.info.trace_id for t in reversed(seeded.all)]
    assert ui.page.locator(".ui-count").inner_text() == "13 traces match"
    ui.shot("list")
    ui.page.fill(".ui-q", "tags.app.version = 'v1'")
    ui.page.press(".ui-q", "Enter")
    ui.settle()
    v1 = [t.info.trace_id for t in reversed(seeded.agents) if t.info.tags["app.version"] == "v1"]
    assert rows(ui) == v1
    ui.shot("list-filtered")
    ui.page.fill(".ui-q", "duration > 5")
    ui.page.press(".ui-q", "Enter")
    ui.settle()
    alert = ui.page.locator("[role=alert]").inner_text()
    assert "unknown field 'duration'" in alert and "position 0" in alert
    ui.shot("list-bad-filter")


def test_sorting_and_paging_by_clicking(ui: Watched, seeded: Seeded, live_ui: str) -> None:
    ui.goto(live_ui + "/?n=5")
    ui.page.click("a.ui-sort:has-text('Tokens')")
    ui.settle()
    tokens = {t.info.trace_id: t.info.token_usage.total_tokens for t in seeded.all}  # type: ignore[union-attr]
    first = [tokens[i] for i in rows(ui)]
    assert first == sorted(tokens.values(), reverse=True)[:5]
    ui.page.click("a[rel=next]")
    ui.settle()
    assert ui.page.locator(".ui-page").inner_text() == "Page 2"
    second = rows(ui)
    ui.page.click("a[rel=prev]")
    ui.settle()
    assert [tokens[i] for i in rows(ui)] == first and not set(second) & set(rows(ui))


def test_a_trace_opens_expands_and_shows_its_spans(ui: Watched, seeded: Seeded) -> None:
    trace = seeded.agents[1]  # v2: the agent, two retrievals, one chat
    ui.page.click(f"a[href='/traces/{trace.info.trace_id}']")
    ui.settle()
    page = ui.page
    assert page.locator(".lt-bar").count() == len(trace.spans) == 4  # every span on the timeline
    page.locator(".lt-row").first.locator(".lt-toggle").click()
    assert page.locator(".lt-row").count() == 1
    page.keyboard.press("ArrowRight")
    assert page.locator(".lt-row .lt-label").all_inner_texts() == [
        "answer_question",
        "retrieve",
        "retrieve",
        "chat",
    ]
    page.locator(".lt-row", has_text="chat").click()
    detail = page.locator(".lt-detail")
    assert "question 1" in detail.inner_text()  # the chat span's inputs
    assert "200 (180 in / 20 out)" in detail.inner_text()
    assert detail.locator("details.lt-jn").count() >= 2  # collapsible JSON
    ui.shot("trace")
    page.click("text=← Traces")
    ui.settle()
    assert len(rows(ui)) == 13


def test_injection_payloads_render_as_text_everywhere(
    ui: Watched, seeded: Seeded, live_ui: str
) -> None:
    hostile = seeded.hostile.info.trace_id
    page = ui.page
    assert page.locator(f"a[href='/traces/{hostile}']").inner_text() == XSS[0]
    assert XSS[1].replace('"', "") not in page.locator("body").inner_html().replace("&quot;", "")
    ui.shot("hostile-list")
    page.click(f"a[href='/traces/{hostile}']")
    ui.settle()
    assert page.locator(".lt-title").inner_text() == XSS[0]
    assert page.locator(".lt-row .lt-label").all_inner_texts() == [XSS[0], XSS[1], "model call"]
    page.locator(".lt-row").nth(1).click()
    assert XSS[2] in page.locator(".lt-detail").inner_text()
    ui.shot("hostile-trace")
    ui.assert_clean()
    ui.goto(f"{live_ui}/compare?id={hostile}&id={seeded.agents[0].info.trace_id}")
    assert page.locator(".ui-cmp td.ui-name", has_text="model call").count() == 1
    assert XSS[1] in page.locator(".ui-cmp").inner_text()
    ui.shot("hostile-compare")
    ui.goto(f"{live_ui}/delete?id={hostile}")
    assert XSS[0] in page.locator("table").inner_text()
    ui.shot("hostile-delete")


def test_compare_needs_exactly_two(ui: Watched, seeded: Seeded) -> None:
    a, b, c = (t.info.trace_id for t in seeded.agents[:3])
    button = ui.page.locator("button", has_text="Compare")
    assert button.is_disabled()
    select(ui, a)
    assert button.is_disabled()
    select(ui, b)
    assert button.is_enabled()
    select(ui, c)
    assert button.is_disabled()
    ui.page.uncheck(f"input[name=id][value='{c}']")
    button.click()
    ui.settle()
    assert ui.page.locator("h1").inner_text() == "Compare traces"
    retrieve = ui.page.locator("tr.ui-cmp-row", has_text="retrieve").locator("td")
    assert retrieve.nth(1).inner_text() == "1" and retrieve.nth(2).inner_text() == "2"
    ui.shot("compare")


def test_select_all_and_export_a_dataset(ui: Watched, seeded: Seeded) -> None:
    ui.page.check(".ui-all")
    assert ui.page.locator("#ui-selection").get_attribute("data-selected") == "13"
    ui.page.uncheck(".ui-all")
    chosen = [seeded.agents[4], seeded.hostile]
    select(ui, *(t.info.trace_id for t in chosen))
    with ui.page.expect_download() as download:
        ui.page.click("button:has-text('Export selected as dataset')")
    assert download.value.suggested_filename == "lowtrace-dataset.jsonl"
    lines = Path(download.value.path()).read_bytes().splitlines()
    exported = [orjson.loads(line) for line in lines]
    assert {r["trace_id"] for r in exported} == {t.info.trace_id for t in chosen}
    assert {r["name"] for r in exported} == {"answer_question", XSS[0]}


def test_delete_asks_then_deletes(ui: Watched, seeded: Seeded) -> None:
    victim = seeded.agents[9].info.trace_id
    select(ui, victim)
    ui.page.click("button:has-text('Delete')")
    ui.settle()
    assert ui.page.locator("h1").inner_text() == "Delete 1 trace?"
    ui.shot("delete-confirm")
    ui.page.click("button:has-text('Delete 1 trace')")
    ui.settle()
    assert ui.page.locator(".ui-notice").inner_text() == "Deleted 1 trace."
    assert ui.page.locator(".ui-count").inner_text() == "12 traces match"
    assert victim not in rows(ui)


def test_the_list_tells_traces_apart(ui: Watched, seeded: Seeded) -> None:
    row = ui.page.locator(f"tr:has(input[value='{seeded.agents[3].info.trace_id}'])")
    cells = row.locator("td.ui-preview")
    assert cells.nth(0).inner_text() == "question 3"
    assert cells.nth(1).inner_text() == "answer to question 3"
    assert row.locator(".ui-id").inner_text() == seeded.agents[3].info.trace_id
    hostile = ui.page.locator(f"tr:has(input[value='{seeded.hostile.info.trace_id}'])")
    assert hostile.locator(".ui-failed").inner_text() == "⚠ 1 span failed"
    assert ui.page.locator(".ui-failed").count() == 2  # the failed agent run and the hostile one
    width = ui.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280  # readable at 1280 px: no sideways scrolling
    ui.shot("list-previews")


def test_the_dashboard_by_keyboard(ui: Watched, seeded: Seeded, live_ui: str) -> None:
    page = ui.page
    with page.expect_navigation():
        page.click("nav.ui-nav a:has-text('Dashboard')")
    ui.settle()
    values = page.locator(".db-value").all_inner_texts()
    assert values[:2] == ["13", "1"]  # traces, errors: as the store counts them
    assert page.locator("svg.ch").count() == 4
    assert page.locator("svg.ch rect.ch-err").count() == 1  # one bucket holds the error
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    ui.shot("dashboard")
    page.focus("select[name=range]")
    page.keyboard.press("ArrowDown")  # "Last 24 hours" after... any range holds today's traces
    page.keyboard.press("Tab")
    page.keyboard.type("tags.`app.version` = 'v2'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    ui.settle()
    assert page.locator(".db-value").first.inner_text() == "6"
    with page.expect_navigation():  # the span name that failed, to its traces
        page.locator(".ch-rank a:has-text('chat')").last.click()
    ui.settle()
    assert rows(ui) == [seeded.agents[7].info.trace_id]
    ui.goto(live_ui + "/dashboard?q=" + "name%20%3D%20'%3Cscript%3E'")
    assert page.locator(".ui-q").input_value() == "name = '<script>'"
    ui.shot("dashboard-empty")


def test_the_waterfall_has_a_time_axis_and_a_legend(ui: Watched, seeded: Seeded) -> None:
    trace = seeded.agents[7]
    with ui.page.expect_navigation():
        ui.page.click(f"a[href='/traces/{trace.info.trace_id}']")
    ui.settle()
    ticks = ui.page.locator(".lt-tick").all_inner_texts()
    assert len(ticks) == 5 and ticks[0] == "0 ms"
    assert ui.page.locator(".lt-legend li").all_inner_texts() == [
        "AGENT",
        "CHAT_MODEL",
        "RETRIEVER",
    ]
    first_bar = ui.page.locator(".lt-bar").first.bounding_box()
    axis = ui.page.locator(".lt-axis").bounding_box()
    assert first_bar is not None and axis is not None
    assert abs(first_bar["x"] - axis["x"]) < 2  # the axis starts where the root's bar starts
    ui.shot("trace-axis")


def test_a_conversation_turn_by_turn_then_feedback_by_keyboard(browser: Any, chats: Chats) -> None:
    with serving(chats.uri) as url, watched(browser, url) as ui:
        page = ui.page
        with page.expect_navigation():
            page.click("nav.ui-nav a:has-text('Sessions')")
        ui.settle()
        ui.shot("sessions")
        with page.expect_navigation():
            page.click("a[href='/sessions/chat-1']")
        ui.settle()
        assert page.locator(".ss-in").all_inner_texts() == [
            "Request\nhello",
            "Request\nweather in Paris?",
            "Request\nthanks",
        ]
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        ui.shot("session")
        with page.expect_navigation():
            page.locator(".ss-turn a", has_text="chat").nth(1).click()
        ui.settle()
        page.click(".lt-review summary")
        page.fill("input[name=reviewer]", "alice")
        page.focus("input[name=rationale]")
        page.keyboard.type("right city")
        page.keyboard.press("Tab")  # to the Yes button
        with page.expect_navigation():
            page.keyboard.press("Enter")
        ui.settle()
        assert page.locator(".lt-review .ui-notice").inner_text() == "Feedback saved."
        assert "right city" in page.locator(".lt-annotations").inner_text()
        ui.shot("trace-feedback")
    from lowtrace import TracingClient

    with TracingClient(chats.uri) as client:
        stored = client.get_trace(chats.first[1])
        assert stored is not None
        [feedback] = stored.info.assessments
        assert (feedback.name, feedback.value, feedback.source) == (
            "correct",
            True,
            {"type": "HUMAN", "id": "alice"},
        )


def test_read_only_pages_offer_no_feedback_form(browser: Any, chats: Chats) -> None:
    with serving(chats.uri, read_only=True) as url, watched(browser, url) as ui:
        ui.goto(f"{url}/traces/{chats.first[0]}")
        assert ui.page.locator("form.lt-feedback-form").count() == 0
        assert ui.page.locator(".lt-review").count() == 0
        ui.goto(f"{url}/sessions/{chats.first[0]}")  # not a session: a 404 page, no crash
        assert "Session not found" in ui.page.inner_text("h1")


def test_injection_payloads_on_sessions_pages(browser: Any, chats: Chats) -> None:
    with serving(chats.uri) as url, watched(browser, url) as ui:
        ui.goto(f"{url}/sessions")
        assert XSS[0] in ui.page.inner_text("table")
        ui.page.click(f"a:has-text('{XSS[0][:20]}')")
        ui.settle()
        assert XSS[1] in ui.page.inner_text(".ss-in")
        ui.shot("session-hostile")


def test_sessions_show_the_first_request_and_the_last_response(browser: Any, chats: Chats) -> None:
    from lowtrace import TracingClient

    with TracingClient(chats.uri) as client:
        root = client.start_trace("chat", inputs={"message": "\u202eevil\u202c question"})
        client.set_trace_metadata(root.trace_id, session_id="bidi")
        client.end_trace(root.trace_id, outputs={"reply": XSS[0]})
        assert client.flush(10)
    with serving(chats.uri) as url, watched(browser, url) as ui:
        ui.goto(f"{url}/sessions")

        def previews(session: str) -> list[str]:
            row = ui.page.locator("tbody tr").filter(
                has=ui.page.locator(f"a[href='/sessions/{session}']")
            )
            return [text.strip() for text in row.locator(".ui-preview").all_inner_texts()]

        assert previews("chat-1") == ["hello", "re: thanks"]
        assert previews("chat-2") == ["hi again", "re: hi again"]
        request, response = previews("bidi")
        assert "\u202e" not in request and "evil" in request and "question" in request
        assert response == XSS[0]  # the payload as text, not as markup
        assert ui.page.evaluate("document.documentElement.scrollWidth") <= 1280
        ui.shot("sessions-previews")


def test_waterfall_rows_show_tokens_and_cost_on_the_trace_page(
    ui: Watched, seeded: Seeded, live_ui: str
) -> None:
    trace = seeded.agents[0]  # v1: 100 in + 20 out on small-model, priced 1.0 / 4.0 per 1M
    ui.goto(f"{live_ui}/traces/{trace.info.trace_id}")
    rows = ui.page.locator(".lt-row")
    labels = rows.locator(".lt-label").all_inner_texts()
    tokens = dict(zip(labels, rows.locator(".lt-tok").all_inner_texts(), strict=True))
    costs = dict(zip(labels, rows.locator(".lt-cost").all_inner_texts(), strict=True))
    counted = [s.name for s in trace.spans if s.token_usage]
    assert counted and all(tokens[name] == "120" and costs[name] == "0.000180" for name in counted)
    assert all(tokens[n] == costs[n] == "" for n in labels if n not in counted)
    assert ui.page.evaluate("document.documentElement.scrollWidth") <= 1280
    ui.shot("trace-tokens")
