"""What one trace shows in a row of the list: how long it took, what failed and why, what
reviewers said, when it started and which conversation it belongs to, as short escaped markup.

A row has to tell an apology from an answer at a glance: the failure's message and the
reviewers' verdicts sit beside the status, as MLflow's and Phoenix's lists show them.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Final
from urllib.parse import quote

from lowtrace._controls import escape_controls, html_text
from lowtrace._model import Trace, TraceInfo
from lowtrace._textview import duration_text, tokens_text  # shared with the CLI

__all__ = [
    "duration_text",
    "failure_note",
    "feedback_marks",
    "preview_cell",
    "session_chip",
    "short_when",
    "tokens_text",
]

e = html.escape
t = html_text
#: Characters of an error message shown in a row (the title attribute holds more).
_MESSAGE_CHARS: Final = 60
_TITLE_CHARS: Final = 500
#: Verdicts shown per row; the rest are counted.
_MAX_MARKS: Final = 3


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_note(trace: Trace) -> str:
    """``⚠ 2 spans failed`` and the first failure's message; empty when nothing failed."""
    failed = [span for span in trace.spans if span.status == "ERROR"]
    if not failed:
        return ""
    noun = "span" if len(failed) == 1 else "spans"
    message = trace.info.status_message or next(
        (span.status_message for span in failed if span.status_message), None
    )
    mark = (
        '<span class="ui-failed" title="Spans that ended in ERROR">'
        f"⚠ {len(failed):,} {noun} failed</span>"
    )
    if not message:
        return mark
    whole = escape_controls(_cut(message, _TITLE_CHARS))
    return mark + (
        f'<span class="ui-errmsg" title="{e(whole)}">{t(_cut(message, _MESSAGE_CHARS))}</span>'
    )


def _verdict(value_json: bytes) -> tuple[str, str]:
    """(CSS kind, short text) of a feedback value: yes/no for booleans, else the value."""
    if value_json == b"true":
        return "ui-fb-yes", "✓"
    if value_json == b"false":
        return "ui-fb-no", "✗"
    return "ui-fb-value", _cut(value_json.decode("utf-8", "replace").strip('"'), 12)


def feedback_marks(trace: Trace) -> str:
    """Reviewers' feedback on the trace as small chips (``✓ helpful``, ``✗ correct``)."""
    feedback = [a for a in trace.info.assessments if a.kind == "feedback"]
    chips = []
    for a in feedback[:_MAX_MARKS]:
        kind, shown = _verdict(a.value_json)
        who = "/".join(v for v in ((a.source or {}).get("type"), (a.source or {}).get("id")) if v)
        title = f"{a.name} = {a.value_json.decode('utf-8', 'replace')}"
        title += f" by {who}" if who else ""
        title += f": {a.rationale}" if a.rationale else ""
        chips.append(
            f'<span class="ui-fb {kind}" title="{e(escape_controls(_cut(title, _TITLE_CHARS)))}">'
            f"{t(shown)} {t(_cut(a.name, 24))}</span>"
        )
    if len(feedback) > _MAX_MARKS:
        chips.append(f'<span class="ui-more">+{len(feedback) - _MAX_MARKS}</span>')
    return '<span class="ui-fbs">' + "".join(chips) + "</span>" if chips else ""


def short_when(time_ns: int) -> str:
    """The start in a list row: without the year in the current year, the full time on hover."""
    when = dt.datetime.fromtimestamp(time_ns / 1e9, dt.UTC)
    shown = (
        f"{when:%m-%d %H:%M:%S}"
        if when.year == dt.datetime.now(dt.UTC).year
        else f"{when:%Y-%m-%d %H:%M}"
    )
    full = f"{when:%Y-%m-%d %H:%M:%S} UTC"
    return f'<time datetime="{when:%Y-%m-%dT%H:%M:%SZ}" title="{full}">{shown}</time>'


def session_chip(info: TraceInfo) -> str:
    """A link to the trace's conversation, first among its chips (nothing outside one)."""
    if not info.session_id:
        return ""
    href = "/sessions/" + quote(info.session_id, safe="")
    whole = e(escape_controls(info.session_id[:500]))
    return (
        f'<a class="ui-tag ui-session" href="{e(href)}" title="Session {whole}">'
        f"session {t(info.session_id)}</a>"
    )


def preview_cell(text: str) -> str:
    """A request or response preview cell; a dash when the trace recorded none."""
    if not text:
        return '<td class="ui-preview ui-none">—</td>'
    return f'<td class="ui-preview" title="{e(escape_controls(text))}">{t(text)}</td>'
