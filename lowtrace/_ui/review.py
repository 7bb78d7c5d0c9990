"""Sessions (a conversation's traces turn by turn) and feedback on a trace.

``/sessions`` lists conversations, ``/sessions/<id>`` shows each turn's request and
response in order. On a trace page, under the assessments the trace view lists, the
feedback form posts with the page's CSRF token (not offered read-only).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

from lowtrace._controls import html_text
from lowtrace._model import Trace
from lowtrace._stores.sessions import SessionSummary
from lowtrace._ui.cells import (
    duration_text,
    failure_note,
    feedback_marks,
    preview_cell,
    short_when,
)
from lowtrace._ui.frame import Site, layout, plural, preview

__all__ = ["MAX_TURNS", "feedback_value", "review_panel", "session_page", "sessions_page"]

e = html.escape
t = html_text  # text shown to a reader: control characters visibly escaped
#: The most turns one session page shows (the oldest first).
MAX_TURNS: Final = 500
_TURN_CHARS: Final = 2000


def _when(time_ns: int) -> str:
    return f"{dt.datetime.fromtimestamp(time_ns / 1e9, dt.UTC):%Y-%m-%d %H:%M:%S}"


def _session_href(session_id: str) -> str:
    return "/sessions/" + quote(session_id, safe="")


def _trace_href(trace_id: str) -> str:
    return "/traces/" + quote(trace_id, safe="")


def sessions_page(site: Site, sessions: Sequence[SessionSummary], *, limit: int) -> str:
    """Conversations, most recently active first."""
    rows = "".join(
        f'<tr><td class="ui-name"><a href="{e(_session_href(s.session_id))}">'
        f"{t(s.session_id)}</a></td><td>{t(s.user_id or '')}</td>"
        + preview_cell(preview(s.first_request))
        + preview_cell(preview(s.last_response))
        + f'<td class="ui-num">{s.traces:,}</td>'
        f'<td class="ui-num">{s.errors:,}</td><td class="ui-when">{short_when(s.first_start_ns)}'
        f'</td><td class="ui-when">{short_when(s.last_start_ns)}</td>'
        f'<td class="ui-num">{s.total_tokens:,}</td></tr>'
        for s in sessions
    )
    if not rows:
        rows = (
            '<tr><td colspan="9" class="ui-empty">No sessions yet: traces join one through '
            "<code>session_id</code> (<code>update_current_trace(session_id=...)</code> or "
            "<code>set_trace_metadata</code>).</td></tr>"
        )
    more = (
        f'<p class="ui-notice">Showing the {limit:,} most recent sessions.</p>'
        if len(sessions) >= limit
        else ""
    )
    body = (
        f'<h1>Sessions</h1><p class="ui-count">{plural(len(sessions), "session")}</p>{more}'
        '<table class="ui-traces"><thead><tr><th>Session</th><th>User</th>'
        "<th>First request</th><th>Last response</th><th>Turns</th><th>Errors</th>"
        "<th>First turn (UTC)</th><th>Last turn (UTC)</th><th>Tokens</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    return layout(site, "Sessions", body)


def _turn_text(raw: bytes) -> str:
    return preview(raw, _TURN_CHARS)


def session_page(site: Site, session_id: str, turns: Sequence[Trace], *, more: bool) -> str:
    """One conversation, turn by turn: the request, then the response, oldest first."""
    items = []
    for number, trace in enumerate(turns, 1):
        info = trace.info
        root = trace.root
        status = (
            '<span class="ui-badge ui-err">ERROR</span>'
            if str(info.status) == "ERROR"
            else '<span class="ui-badge ui-ok">OK</span>'
        )
        usage = f" · {info.token_usage.total_tokens:,} tokens" if info.token_usage else ""
        request = _turn_text(root.inputs_json) if root else ""
        response = _turn_text(root.outputs_json) if root else ""
        items.append(
            f'<li class="ss-turn"><div class="ss-meta"><span class="ss-n">Turn {number}</span>'
            f'<a href="{e(_trace_href(info.trace_id))}">{t(info.name)}</a>{status}'
            f"<span>{_when(info.start_time_ns)} UTC · {duration_text(info.duration_ms)}"
            f"{usage}</span>"
            f"{failure_note(trace)}{feedback_marks(trace)}</div>"
            f'<div class="ss-msg ss-in"><span class="ss-who">Request</span>{t(request)}</div>'
            f'<div class="ss-msg ss-out"><span class="ss-who">Response</span>{t(response)}</div>'
            "</li>"
        )
    if not items:
        listing = f'<p class="ui-empty">No traces in session {t(session_id)}.</p>'
    else:
        listing = '<ol class="ss-turns">' + "".join(items) + "</ol>"
    note = f'<p class="ui-notice">Showing the first {MAX_TURNS:,} turns.</p>' if more else ""
    users = sorted({t.info.user_id for t in turns if t.info.user_id})
    who = f" · user {t(', '.join(users))}" if users else ""
    body = (
        '<p><a href="/sessions">← Sessions</a></p>'
        f"<h1>Session <code>{t(session_id)}</code></h1>"
        f'<p class="ui-count">{plural(len(turns), "turn")}{who}</p>{note}{listing}'
    )
    return layout(site, f"Session {session_id}", body)


def feedback_value(verdict: str, custom: str) -> Any:
    """What a feedback form means: Yes/No, or the typed value (a number if it is one)."""
    if verdict in ("true", "false"):
        return verdict == "true"
    text = custom.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def review_panel(site: Site, trace: Trace, *, notice: str | None = None) -> str:
    """The feedback form under the trace's assessments (which the view lists); none read-only."""
    if site.read_only:
        return ""
    action = _trace_href(trace.info.trace_id) + "/feedback"
    saved = f'<p class="ui-notice" role="status">{e(notice)}</p>' if notice else ""
    return (
        f'<details class="lt-review"{" open" if notice else ""}><summary>Leave feedback'
        f"</summary>{saved}"
        f'<form class="lt-feedback-form" method="post" action="{e(action)}">'
        f'<input type="hidden" name="csrf" value="{e(site.csrf_token)}">'
        '<label>Name <input name="name" value="correct" required maxlength="200"></label>'
        '<label>Reviewer <input name="reviewer" value="" maxlength="200" '
        'placeholder="your name"></label>'
        '<label class="lt-wide">Rationale <input name="rationale" maxlength="4000" '
        'placeholder="why (optional)"></label>'
        '<button type="submit" name="verdict" value="true">Yes</button>'
        '<button type="submit" name="verdict" value="false">No</button>'
        '<label>or a value <input name="custom" maxlength="4000" placeholder="0.8, great…">'
        '</label><button type="submit" name="verdict" value="custom">Save value</button>'
        "</form></details>"
    )
