"""Reading a UI request: the list state and selected ids from the URL, bounds on its size,
and the small bits of URL and header text the handlers write back.

Everything here treats the request as untrusted input: lengths are bounded, numbers that do
not parse fall back to defaults, and ids go into filters only as quoted literals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from lowtrace._query.filter import parse_filter, string_literal
from lowtrace._ui.pages import MAX_TRAIL, ListQuery, tag_filter
from lowtrace.errors import FilterError

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "MAX_QUERY_CHARS",
    "attachment",
    "id_filter",
    "list_query",
    "selected_ids",
    "too_long",
    "trace_path",
]

_PAGE_SIZES: Final = range(1, 501)
#: The longest filter, order or tag accepted in a URL.
MAX_QUERY_CHARS: Final = 4096


def _parses(filter: str) -> bool:
    """Whether ``filter`` parses alone: ``a') OR ('b`` only parses once it is wrapped."""
    try:
        parse_filter(filter)
    except FilterError:
        return False
    return True


def list_query(request: Request) -> ListQuery:
    """The list state from the URL; a tag chip's ``tk``/``tv`` are ANDed onto the filter."""
    params = request.query_params
    q = params.get("q", "").strip()
    key, value = params.get("tk"), params.get("tv")
    condition = tag_filter(key, value) if key is not None and value is not None else None
    if condition is not None:  # a malformed q stays alone (its error shown), not wrapped
        q = f"({q}) AND {condition}" if q and _parses(q) else q or condition
    size = _int(params.get("n"), 50)
    page = params.get("page", "")
    trail = tuple(params.getlist("t"))[-MAX_TRAIL:]
    number = _int(params.get("pn"), len(trail) + 1) if page else 1
    return ListQuery(
        q=q,
        order=params.get("order", "").strip(),
        page=page,
        trail=trail,
        size=size if size in _PAGE_SIZES else 50,
        number=max(number, 1),
    )


def too_long(request: Request) -> str | None:
    """Why the query string is refused, if it is: bounded input keeps pages bounded."""
    params = request.query_params
    for name in ("q", "order", "tk", "tv"):
        if len(params.get(name, "")) > MAX_QUERY_CHARS:
            return f"{name} is longer than {MAX_QUERY_CHARS} characters"
    return None


def attachment(filename: str) -> str:
    """A Content-Disposition naming the download (only letters, digits, ``.-_`` kept)."""
    safe = re.sub(r"[^\w.-]", "_", filename, flags=re.ASCII)
    return f'attachment; filename="{safe}"'


def trace_path(trace_id: str) -> str:
    """The URL path of a trace's page (the id percent-encoded whole)."""
    return "/traces/" + quote(trace_id, safe="")


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def selected_ids(values: Sequence[str]) -> list[str]:
    """The ``id`` values a form or URL selected: stripped, blanks and repeats left out."""
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


def id_filter(ids: Sequence[str]) -> str:
    """``trace_id IN (...)`` in the filter language, each id a quoted literal."""
    return f"trace_id IN ({', '.join(map(string_literal, ids))})"
