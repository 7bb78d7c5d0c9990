"""The frame every UI page shares: what the pages know of the site, the top bar, and the
small text helpers (counts with their noun, one-line previews of recorded values).

Everything taken from a trace or a request is escaped with ``html.escape`` (quotes
included) before it reaches markup.
"""

from __future__ import annotations

import html
from typing import Final

import attrs
import orjson

from lowtrace._controls import escape_controls
from lowtrace._stores.uri import redact

__all__ = ["Site", "layout", "plural", "preview"]

e = html.escape
#: Characters of a root input or output shown in the list.
_PREVIEW_CHARS: Final = 90


@attrs.frozen
class Site:
    """What every page shows or needs: the store, whether deleting is allowed, the CSRF token."""

    uri: str
    read_only: bool
    csrf_token: str


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 span``, ``2 spans``, ``1,000 traces``."""
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"


def preview(raw: bytes, limit: int = _PREVIEW_CHARS) -> str:
    """A recorded JSON value as one short line: a lone string field shows as its text."""
    if raw in (b"", b"null"):
        return ""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw.decode("utf-8", "replace")
    if isinstance(value, dict) and len(value) == 1:
        (only,) = value.values()
        value = only if isinstance(only, str) else value
    text = value if isinstance(value, str) else orjson.dumps(value).decode("utf-8", "replace")
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def layout(site: Site, title: str, body: str) -> str:
    """A complete page: the top bar (brand, page links, store, mode) around ``body``."""
    mode = '<span class="ui-mode">read-only</span>' if site.read_only else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(escape_controls(title))} · lowtrace</title>"
        '<link rel="icon" href="/favicon.ico">'
        '<link rel="stylesheet" href="/static/ui/ui.css">'
        '<script src="/static/ui/ui.js" defer></script></head><body>'
        '<header class="ui-top"><a class="ui-brand" href="/">lowtrace</a>'
        '<nav class="ui-nav" aria-label="Pages"><a href="/">Traces</a>'
        '<a href="/dashboard">Dashboard</a><a href="/sessions">Sessions</a></nav>'
        f'<span class="ui-store" title="store">{e(redact(site.uri))}</span>{mode}</header>'
        f"<main>{body}</main></body></html>"
    )
