"""What a reader sees at 1280 px in Chromium, found missing beside MLflow's and Phoenix's UIs.

See ``test-artifacts/ui/compare/README.md``: a row says what failed and what reviewers said,
rows stay one line per field, the trace page links to the other pages and names its
failure, every control is reachable by keyboard with a visible focus, and empty stores say
what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from lowtrace import SpanType, TracingClient
from lowtrace._textview import duration_text
from tests.ui.conftest import serving
from tests.ui.test_browser import Watched, watched

MS = 1_000_000


@attrs.frozen
class Weather:
    uri: str
    answered: str  # OK, reviewed helpful
    tool_failed: str  # OK, but its tool span failed; reviewed not helpful
    timed_out: str  # ERROR: the model timed out
    turns: list[str]  # session "conv-1", in order; the second one's tool failed


def _agent(
    client: TracingClient,
    t0: int,
    city: str,
    *,
    session: str | None = None,
    tool_fails: bool = False,
    times_out: bool = False,
) -> str:
    root = client.start_trace(
        "weather_agent",
        span_type=SpanType.AGENT,
        inputs={"question": f"Weather in {city}?"},
        tags={"env": "prod"},
        start_time_ns=t0,
    )
    if session:
        client.set_trace_metadata(root.trace_id, session_id=session, user_id="alice")
    chat = client.start_span(
        "chat",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
        inputs={"question": city},
        start_time_ns=t0 + 5 * MS,
    )
    chat.set_token_usage(input_tokens=900, output_tokens=110)
    if times_out:
        chat.record_exception(TimeoutError("model timed out after 30 s"))
        chat.end(end_time_ns=t0 + 3005 * MS)
        client.end_trace(
            root.trace_id,
            status="ERROR",
            status_message="TimeoutError: model timed out after 30 s",
            end_time_ns=t0 + 3010 * MS,
        )
        return root.trace_id
    chat.end(outputs={"tool": "get_weather"}, end_time_ns=t0 + 1005 * MS)
    tool = client.start_span(
        "get_weather",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.TOOL,
        inputs={"city": city},
        start_time_ns=t0 + 1010 * MS,
    )
    if tool_fails:
        tool.record_exception(ConnectionError("weather API unreachable"))
        tool.end(end_time_ns=t0 + 2120 * MS)
        answer = "Sorry, I could not reach the weather service."
    else:
        tool.end(outputs={"temp_c": 14}, end_time_ns=t0 + 1100 * MS)
        answer = f"It is 14 °C in {city}."
    client.end_trace(root.trace_id, outputs={"answer": answer}, end_time_ns=t0 + 2125 * MS)
    return root.trace_id


def record_weather(uri: str) -> Weather:
    t0 = 1_764_000_000_000 * MS
    with TracingClient(uri) as client:
        answered = _agent(client, t0, "Paris")
        tool_failed = _agent(client, t0 + 60_000 * MS, "Oslo", tool_fails=True)
        timed_out = _agent(client, t0 + 120_000 * MS, "Lima", times_out=True)
        turns = [
            _agent(
                client,
                t0 + (180_000 + n * 1000) * MS,
                city,
                session="conv-1",
                tool_fails=city == "Bonn",
            )
            for n, city in enumerate(("Berlin", "Bonn", "Bremen"))
        ]
        assert client.flush(10)
        reviewer = {"type": "HUMAN", "id": "rev-1"}
        client.log_feedback(answered, "helpful", True, source=reviewer)
        client.log_feedback(
            tool_failed, "helpful", False, source=reviewer, rationale="only an apology"
        )
        client.log_feedback(turns[1], "helpful", False, source=reviewer)
    return Weather(uri, answered, tool_failed, timed_out, turns)


@pytest.fixture
def weather(tmp_path: Path) -> Weather:
    return record_weather(f"sqlite:///{tmp_path}/weather.db")


def _row(page: Any, trace_id: str) -> Any:
    return page.locator(f"tr:has(input[value='{trace_id}'])")


def _one_line(locator: Any) -> bool:
    """Whether the element's text sits on one line (its height is one line's)."""
    return bool(
        locator.evaluate(
            "el => el.getBoundingClientRect().height <= "
            "1.6 * parseFloat(getComputedStyle(el).fontSize)"
        )
    )


def test_each_row_says_what_failed_and_what_reviewers_said(browser: Any, weather: Weather) -> None:
    with serving(weather.uri) as url, watched(browser, url) as ui:
        page = ui.page
        failed = _row(page, weather.tool_failed)
        assert failed.locator(".ui-badge").inner_text() == "OK"
        assert failed.locator(".ui-failed").inner_text() == "⚠ 1 span failed"
        message = failed.locator(".ui-errmsg")
        assert message.inner_text() == "ConnectionError: weather API unreachable"
        verdict = failed.locator(".ui-fb")
        assert verdict.inner_text() == "✗ helpful"
        assert verdict.get_attribute("title") == ("helpful = false by HUMAN/rev-1: only an apology")
        assert _row(page, weather.answered).locator(".ui-fb-yes").inner_text() == "✓ helpful"
        timed_out = _row(page, weather.timed_out)
        assert timed_out.locator(".ui-errmsg").inner_text() == (
            "TimeoutError: model timed out after 30 s"
        )
        assert timed_out.locator("td.ui-preview").nth(1).inner_text() == "—"  # no response
        answered = _row(page, weather.answered)
        cells = answered.locator("td.ui-num").all_inner_texts()
        assert cells == ["2.13 s", "3", "1,010"]  # duration, spans, tokens
        when = answered.locator("td.ui-when time")
        assert when.get_attribute("title") == "2025-11-24 16:00:00 UTC"
        for part in (answered.locator(".ui-id"), when):
            assert _one_line(part)
        turn = _row(page, weather.turns[0]).locator("a.ui-session")
        assert turn.inner_text() == "session conv-1"
        assert _row(page, weather.answered).locator("a.ui-session").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        ui.shot("look-list")
        with page.expect_navigation():
            turn.click()
        ui.settle()
        assert page.locator(".ss-turn").count() == 3


def test_the_trace_page_links_to_the_other_pages_and_names_its_failure(
    browser: Any, weather: Weather
) -> None:
    with serving(weather.uri) as url, watched(browser, url) as ui:
        page = ui.page
        ui.goto(f"{url}/traces/{weather.tool_failed}")
        assert page.locator(".lt-failed").inner_text() == "⚠ 1 span failed"
        assert page.locator(".lt-errmsg").inner_text() == "ConnectionError: weather API unreachable"
        assert "1,010 tokens (900 in · 110 out)" in page.locator(".lt-head").inner_text()
        root_duration = page.locator(".lt-row .lt-dur").first
        assert root_duration.inner_text() == "2.13 s"
        assert _one_line(root_duration)
        nav = page.locator("nav.lt-nav a").all_inner_texts()
        assert nav[:3] == ["← Traces", "Dashboard", "Sessions"]
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        ui.shot("look-trace")
        ui.goto(f"{url}/traces/{weather.turns[1]}")
        with page.expect_navigation():
            page.click("nav.lt-nav a:has-text('Session conv-1')")
        ui.settle()
        assert page.locator(".ss-turn").count() == 3
        ui.goto(f"{url}/traces/{weather.answered}")
        assert page.locator(".lt-failed").count() == 0
        # The page's script writes durations as the list, the dashboard and the CLI do.
        durations = page.locator(".lt-row .lt-dur").all_inner_texts()
        assert durations == [duration_text(ms) for ms in (2125, 1000, 90)]
        with page.expect_navigation():
            page.click("nav.lt-nav a:has-text('Dashboard')")
        ui.settle()
        assert page.locator("h1").inner_text() == "Dashboard"


#: What a keyboard user must reach on each page, as CSS selectors of visible controls.
_CONTROLS = (
    "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, summary"
)

_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const box = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  return {
    key: el.outerHTML.slice(0, 120),
    visible: box.width > 0 && box.height > 0 && box.bottom > 0 && box.top < innerHeight,
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    focusVisible: el.matches(":focus-visible"),
  };
}"""


def _tab_through(ui: Watched) -> list[dict[str, Any]]:
    """Press Tab until focus comes back round; what was focused, in order."""
    seen: list[dict[str, Any]] = []
    for _ in range(200):
        ui.page.keyboard.press("Tab")
        focus = ui.page.evaluate(_FOCUS)
        if focus is None or (seen and focus["key"] == seen[0]["key"]):
            break
        seen.append(focus)
    return seen


@pytest.mark.parametrize(
    "path", ["/", "/dashboard", "/sessions", "/sessions/conv-1", "/traces/{answered}"]
)
def test_every_control_is_reached_by_tab_with_a_visible_focus(
    browser: Any, weather: Weather, path: str
) -> None:
    with serving(weather.uri) as url, watched(browser, url) as ui:
        ui.goto(url + path.format(answered=weather.answered))
        controls = ui.page.evaluate(  # with every <details> open: the filter help, feedback
            f"""() => {{
                document.querySelectorAll("details").forEach(d => {{ d.open = true; }});
                return [...document.querySelectorAll("{_CONTROLS}")]
                    .filter(el => el.checkVisibility()).length;
            }}"""
        )
        reached = _tab_through(ui)
        assert len(reached) >= controls > 3
        for focus in reached:
            assert focus["visible"], focus["key"]
            assert focus["focusVisible"] and focus["outline"], focus["key"]


def test_an_empty_store_says_what_to_do(browser: Any, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/empty.db"
    TracingClient(uri).close()
    with serving(uri) as url, watched(browser, url) as ui:
        page = ui.page
        empty = page.locator(".ui-empty").inner_text()
        assert empty.startswith("No traces in this store yet.") and "TracingClient" in empty
        ui.goto(url + "/?q=status+%3D+%27ERROR%27")
        assert page.locator(".ui-empty").inner_text() == (
            "No traces match this filter. Show all traces"
        )
        ui.goto(url + "/dashboard")
        assert page.locator(".ui-empty").inner_text().startswith("No traces in this store yet")
        ui.goto(url + "/dashboard?range=1h")
        assert page.locator(".ui-empty").inner_text().startswith("No traces in this range.")
        ui.goto(url + "/sessions")
        assert page.locator(".ui-empty").inner_text().startswith("No sessions yet")
        ui.shot("look-empty-sessions")


def test_latency_dots_stay_visible_when_p50_equals_p95(browser: Any, weather: Weather) -> None:
    with serving(weather.uri) as url, watched(browser, url) as ui:
        ui.goto(url + "/dashboard")
        p50 = ui.page.locator("svg.ch circle.ch-p50").first
        p95 = ui.page.locator("svg.ch circle.ch-p95").first
        # one trace per interval here: both percentiles are that trace's duration
        a, b = p50.bounding_box(), p95.bounding_box()
        assert a is not None and b is not None
        assert abs(a["x"] + a["width"] / 2 - (b["x"] + b["width"] / 2)) < 0.5  # same place
        assert a["width"] > b["width"] + 1  # p50 drawn first and larger: a ring around p95
        at_the_ring = ui.page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).getAttribute('class')",
            [a["x"] + 0.5, a["y"] + a["height"] / 2],
        )
        assert at_the_ring == "ch-p50"


def test_a_session_turn_says_what_failed_and_what_reviewers_said(
    browser: Any, weather: Weather
) -> None:
    with serving(weather.uri) as url, watched(browser, url) as ui:
        ui.goto(url + "/sessions/conv-1")
        turns = ui.page.locator(".ss-turn")
        assert turns.count() == 3
        second = turns.nth(1).locator(".ss-meta")
        assert second.locator(".ui-failed").inner_text() == "⚠ 1 span failed"
        assert second.locator(".ui-errmsg").inner_text() == (
            "ConnectionError: weather API unreachable"
        )
        assert second.locator(".ui-fb-no").inner_text() == "✗ helpful"
        assert "· 2.13 s ·" in second.inner_text()  # as the list and the trace page say it
        first = turns.nth(0).locator(".ss-meta")
        assert first.locator(".ui-failed, .ui-errmsg, .ui-fb").count() == 0
        assert ui.page.evaluate("document.documentElement.scrollWidth") <= 1280
        ui.shot("look-session")
