"""Conversations: the traces that share a ``session_id``, summarised one row per session.

SQL stores group the indexed ``session_id`` column (``sql_sessions``); any other store reads
the traces that have a session (``scan_sessions``), the reference the SQL must agree with.
Sessions come most recently active first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

from lowtrace._model import Trace
from lowtrace._query.filter import Expr, parse_filter
from lowtrace._query.sql import Dialect, Query

__all__ = ["MAX_SESSIONS", "SessionSummary", "scan_sessions", "sql_sessions"]

#: The most sessions one call returns.
MAX_SESSIONS: Final = 500


@attrs.frozen
class SessionSummary:
    """One conversation: how many turns (traces), when, how many failed, how many tokens."""

    session_id: str
    traces: int
    errors: int
    first_start_ns: int
    last_start_ns: int
    total_tokens: int
    user_id: str | None  # the session's user (the greatest id if its turns name several)
    #: The first turn's root inputs and the last turn's root outputs, as recorded (JSON);
    #: ``b""`` when that turn has no root span. Pages cut them short as the list does.
    first_request: bytes = b""
    last_response: bytes = b""


def _limit(max_results: int) -> int:
    return max(1, min(int(max_results), MAX_SESSIONS))


def _request(trace: Trace) -> bytes:
    root = trace.root
    return b"" if root is None else root.inputs_json


def _response(trace: Trace) -> bytes:
    root = trace.root
    return b"" if root is None else root.outputs_json


def _scope(filter: str | None) -> str:
    own = "session_id IS NOT NULL"
    return f"({filter}) AND {own}" if filter and filter.strip() else own


def scan_sessions(
    traces: Callable[[str], Iterable[Trace]], filter: str | None, max_results: int
) -> list[SessionSummary]:
    """Sessions by reading every matching trace that has a session id."""
    parse_filter(filter)
    rows: dict[str, list[Trace]] = {}
    for trace in traces(_scope(filter)):
        assert trace.info.session_id is not None
        rows.setdefault(trace.info.session_id, []).append(trace)
    found = []
    for session_id, group in rows.items():
        group.sort(key=lambda t: (t.info.start_time_ns, t.info.trace_id))
        users = [t.info.user_id for t in group if t.info.user_id is not None]
        found.append(
            SessionSummary(
                session_id,
                len(group),
                sum(str(t.info.status) == "ERROR" for t in group),
                group[0].info.start_time_ns,
                group[-1].info.start_time_ns,
                sum(t.info.token_usage.total_tokens for t in group if t.info.token_usage),
                max(users) if users else None,
                _request(group[0]),
                _response(group[-1]),
            )
        )
    found.sort(key=lambda s: (-s.last_start_ns, s.session_id))
    return found[: _limit(max_results)]


def sql_sessions(
    dialect: Dialect,
    fetch: Callable[[str, list[Any]], Sequence[Sequence[Any]]],
    filter: str | None,
    max_results: int,
) -> list[SessionSummary]:
    """Sessions with one GROUP BY over the traces table (``session_id`` is indexed), then
    the first and the last matching turn of each found session read by a second query."""
    parse_filter(filter)  # alone first: "a') OR ('b" must not parse once it is wrapped
    parsed = parse_filter(_scope(filter))
    query = Query(dialect)
    where = query.where(parsed)
    rows = fetch(
        "SELECT t.session_id, COUNT(*), SUM(CASE WHEN t.status = 'ERROR' THEN 1 ELSE 0 END), "
        "MIN(t.start_time_ns), MAX(t.start_time_ns), SUM(t.total_tokens), MAX(t.user_id) "
        f"FROM traces t WHERE {where} GROUP BY t.session_id "
        f"ORDER BY MAX(t.start_time_ns) DESC, t.session_id LIMIT {_limit(max_results)}",
        query.params,
    )
    ends = _ends(dialect, fetch, parsed, [row[0] for row in rows])
    return [
        SessionSummary(
            sid,
            int(n),
            int(err),
            int(first),
            int(last),
            int(tokens or 0),
            user,
            *ends.get(sid, (b"", b"")),
        )
        for sid, n, err, first, last, tokens, user in rows
    ]


def _ends(
    dialect: Dialect,
    fetch: Callable[[str, list[Any]], Sequence[Sequence[Any]]],
    parsed: Expr | None,
    session_ids: list[str],
) -> dict[str, tuple[bytes, bytes]]:
    """Each session's first request and last response: window functions pick the first and
    the last matching turn by id (no trace bodies sorted), then only those bodies are read."""
    if not session_ids:
        return {}
    query = Query(dialect)
    where = query.where(parsed)
    marks = ", ".join([dialect.placeholder] * len(session_ids))
    rows = fetch(
        "SELECT w.session_id, w.a, w.z, d.data FROM (SELECT t.session_id, t.trace_id, "
        "ROW_NUMBER() OVER (PARTITION BY t.session_id "
        "ORDER BY t.start_time_ns, t.trace_id) AS a, "
        "ROW_NUMBER() OVER (PARTITION BY t.session_id "
        "ORDER BY t.start_time_ns DESC, t.trace_id DESC) AS z "
        f"FROM traces t WHERE ({where}) AND t.session_id IN ({marks})) w "
        "JOIN traces d ON d.trace_id = w.trace_id WHERE w.a = 1 OR w.z = 1",
        [*query.params, *session_ids],
    )
    ends: dict[str, tuple[bytes, bytes]] = {}
    for sid, a, z, data in rows:
        trace = Trace.from_bytes(bytes(data))
        request, response = ends.get(sid, (b"", b""))
        if int(a) == 1:
            request = _request(trace)
        if int(z) == 1:
            response = _response(trace)
        ends[sid] = (request, response)
    return ends
