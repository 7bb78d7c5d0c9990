"""The web UI as a Starlette application over one trace store.

Pages are read-only; the one action that changes the store, deleting, takes a confirmation
page and a POST carrying that page's CSRF token, and is refused from other origins and in
read-only mode. Every response carries a strict Content-Security-Policy (scripts and styles
from this server only, nothing inline), and requests must name an allowed host, so a web
page elsewhere cannot reach a loopback server through DNS rebinding.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qs

from lowtrace._annotate import with_info
from lowtrace._assessment import make_assessment
from lowtrace._dataset import golden_lines
from lowtrace._model import Trace, TraceInfo
from lowtrace._query.budget import time_limit
from lowtrace._query.filter import string_literal
from lowtrace._serde import chunked
from lowtrace._stores.base import TraceStore, iter_traces
from lowtrace._stores.uri import redact
from lowtrace._ui.compare import compare_traces
from lowtrace._ui.dashboard import RANGES, DashboardQuery, dashboard_page
from lowtrace._ui.guard import Guard, read_body, same_origin
from lowtrace._ui.pages import (
    Site,
    compare_page,
    confirm_delete_page,
    error_page,
    list_page,
    plural,
    trace_nav,
)
from lowtrace._ui.params import (
    attachment,
    id_filter,
    list_query,
    selected_ids,
    too_long,
    trace_path,
)
from lowtrace._ui.review import MAX_TURNS, feedback_value, review_panel, session_page, sessions_page
from lowtrace._view.html import trace_document
from lowtrace.errors import (
    FilterError,
    InvalidArgumentError,
    LowtraceError,
    QueryTimeoutError,
    TraceNotFoundError,
)

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as exc:  # pragma: no cover - exercised by the CLI message test
    from lowtrace.errors import MissingExtraError

    raise MissingExtraError("the web UI needs the 'ui' extra: pip install 'lowtrace[ui]'") from exc

__all__ = ["create_app"]

#: The most traces one export or delete request may name: a full page of the list.
MAX_SELECTED: Final = 500
#: How long one list search or count may run before it is stopped.
QUERY_TIMEOUT_S: Final = 10.0
#: Sessions listed on /sessions (most recently active first).
_SESSIONS: Final = 200
#: The largest delete form accepted (500 ids and a token take about 20 KB).
MAX_FORM_BYTES: Final = 64 * 1024


#: The tab icon: a waterfall of three bars, served as SVG (every current browser takes it).
_FAVICON: Final = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#1570ef"/>'
    b'<rect x="3" y="3.5" width="10" height="2" rx="1" fill="#fff"/>'
    b'<rect x="5" y="7" width="6" height="2" rx="1" fill="#fff"/>'
    b'<rect x="7" y="10.5" width="5" height="2" rx="1" fill="#fff"/></svg>'
)


class _UI:
    """The route handlers, holding the store and the page context."""

    def __init__(
        self,
        store: TraceStore,
        *,
        read_only: bool,
        prices: Mapping[str, Any] | None,
        query_timeout_s: float | None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.query_timeout_s = query_timeout_s
        # A store that keeps the base class's refusing update_trace (the JSONL and Delta
        # tables) can neither annotate nor delete: offer neither, as if started read-only.
        self.append_only = type(store).update_trace is TraceStore.update_trace
        self.site = Site(store.uri, read_only or self.append_only, secrets.token_urlsafe(32))

    def _error(self, title: str, message: str, status: int) -> HTMLResponse:
        return HTMLResponse(error_page(self.site, title, message), status_code=status)

    def _too_slow(self) -> HTMLResponse:
        return self._error(
            "Query too slow",
            f"The search took longer than {self.query_timeout_s:g} s and was stopped, so "
            "other pages stay responsive. Narrow the filter (a time range, an exact name) "
            "and try again.",
            503,
        )

    def _read_only(self) -> HTMLResponse:
        if self.append_only:
            why = f"{redact(self.site.uri)} is append-only: no deletes, no feedback."
            return self._error("Read-only", why, 403)
        return self._error("Read-only", "This UI was started read-only: nothing is deleted.", 403)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self._error("Not found", f"No page at {request.url.path}", 404)

    async def store_failed(self, request: Request, exc: Exception) -> Response:
        """A store that cannot be read or written (down, append-only): say so, no traceback."""
        return self._error("The store failed", f"{type(exc).__name__}: {exc}", 500)

    # Plain ``def`` handlers run in Starlette's thread pool: store calls may block.

    def traces(self, request: Request) -> Response:
        if (problem := too_long(request)) is not None:
            return self._error("Query too long", problem, 400)
        query = list_query(request)
        notice = None
        if "deleted" in request.query_params:
            count = request.query_params["deleted"]
            notice = f"Deleted {plural(int(count), 'trace')}." if count.isdigit() else None
        try:
            with time_limit(self.query_timeout_s):
                page = self.store.search_traces(
                    query.q or None,
                    order_by=query.order or None,
                    max_results=query.size,
                    page_token=query.page or None,
                )
                total = self.store.count(query.q or None)
        except QueryTimeoutError:
            return self._too_slow()
        except (FilterError, InvalidArgumentError) as exc:  # the user's query, not the store
            html = list_page(
                self.site, query, [], total=None, next_token=None, error=str(exc), notice=notice
            )
            return HTMLResponse(html, status_code=400)
        html = list_page(
            self.site, query, page, total=total, next_token=page.next_page_token, notice=notice
        )
        return HTMLResponse(html)

    def _path_trace(self, request: Request) -> Trace | Response:
        """The trace the URL path names, or the 404 page saying it is not in the store."""
        trace_id = request.path_params["trace_id"]
        trace = self.store.get_trace(trace_id)
        if trace is None:
            return self._error("Trace not found", f"No trace {trace_id!r} in this store.", 404)
        return trace

    def trace(self, request: Request) -> Response:
        trace = self._path_trace(request)
        if isinstance(trace, Response):
            return trace
        notice = "Feedback saved." if "saved" in request.query_params else None
        page = trace_document(
            trace,
            prices=self.prices,
            assets_url="/static/view",
            nav=trace_nav(trace),
            review=review_panel(self.site, trace, notice=notice),
        )
        return HTMLResponse(page)

    async def feedback(self, request: Request) -> Response:
        """A reviewer's feedback from the trace page's form, stored as a HUMAN assessment."""
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        trace_id = request.path_params["trace_id"]
        name = form.get("name", "").strip()
        verdict = form.get("verdict", "")
        if not name or verdict not in ("true", "false", "custom"):
            return self._error("Incomplete feedback", "Give a name and a value.", 400)
        if verdict == "custom" and not form.get("custom", "").strip():
            return self._error("Incomplete feedback", "Type a value, or use Yes or No.", 400)
        source = {"type": "HUMAN", "id": form.get("reviewer", "").strip() or "lowtrace-ui"}
        try:
            assessment = make_assessment(
                "feedback",
                name,
                feedback_value(verdict, form.get("custom", "")),
                source,
                form.get("rationale", "").strip() or None,
                None,
            )
        except InvalidArgumentError as exc:
            return self._error("Invalid feedback", str(exc), 400)

        def add(trace: Trace) -> Trace:
            return with_info(trace, assessments=(*trace.info.assessments, assessment))

        try:
            await run_in_threadpool(self.store.update_trace, trace_id, add)
        except TraceNotFoundError:
            return self._error("Trace not found", f"No trace {trace_id!r} in this store.", 404)
        return RedirectResponse(f"{trace_path(trace_id)}?saved=1", status_code=303)

    def sessions(self, request: Request) -> Response:
        try:
            with time_limit(self.query_timeout_s):
                found = self.store.sessions(max_results=_SESSIONS)
        except QueryTimeoutError:
            return self._too_slow()
        return HTMLResponse(sessions_page(self.site, found, limit=_SESSIONS))

    def session(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        turns = self.store.search_traces(
            f"session_id = {string_literal(session_id)}",
            order_by="start_time_ms ASC",
            max_results=MAX_TURNS,
        )
        if not turns:
            return self._error("Session not found", f"No traces in session {session_id!r}.", 404)
        more = turns.next_page_token is not None
        return HTMLResponse(session_page(self.site, session_id, turns, more=more))

    def trace_json(self, request: Request) -> Response:
        trace = self._path_trace(request)
        if isinstance(trace, Response):
            return trace
        return Response(
            trace.to_json(),
            media_type="application/json",
            headers={"Content-Disposition": attachment(f"{trace.info.trace_id}.json")},
        )

    def dashboard(self, request: Request) -> Response:
        if (problem := too_long(request)) is not None:
            return self._error("Query too long", problem, 400)
        params = request.query_params
        span = params.get("range", "all")
        query = DashboardQuery(span if span in RANGES else "all", params.get("q", "").strip())
        start_ms, end_ms = query.bounds(int(time.time() * 1000))
        try:
            with time_limit(self.query_timeout_s):
                overview = self.store.overview(query.q or None, start_ms=start_ms, end_ms=end_ms)
        except QueryTimeoutError:
            return self._too_slow()
        except (FilterError, InvalidArgumentError) as exc:
            html = dashboard_page(self.site, query, None, self.prices, error=str(exc))
            return HTMLResponse(html, status_code=400)
        return HTMLResponse(dashboard_page(self.site, query, overview, self.prices))

    async def favicon(self, request: Request) -> Response:
        return Response(
            _FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
        )

    def _infos(self, ids: Sequence[str]) -> tuple[list[TraceInfo], list[str]]:
        """Summaries of the traces with these ids (read a page at a time), and the ids absent."""
        infos = [t.info for t in iter_traces(self.store, id_filter(ids), page_size=100)]
        present = {info.trace_id for info in infos}
        return infos, [i for i in ids if i not in present]

    def compare(self, request: Request) -> Response:
        ids = selected_ids(request.query_params.getlist("id"))
        if len(ids) != 2:
            return self._error(
                "Pick two traces", f"Select exactly two traces to compare ({len(ids)} given).", 400
            )
        found = [self.store.get_trace(i) for i in ids]
        missing = [i for i, t in zip(ids, found, strict=True) if t is None]
        if missing:
            return self._error("Trace not found", f"Not in this store: {', '.join(missing)}", 404)
        present = [t for t in found if t is not None]
        a, b = sorted(present, key=lambda t: t.info.start_time_ns)  # A is the older
        return HTMLResponse(compare_page(self.site, a, b, compare_traces(a, b)))

    def export(self, request: Request) -> Response:
        """The selected traces (``selected=1`` and ``id``s), or all matching ``q``."""
        if (problem := too_long(request)) is not None:
            return self._error("Query too long", problem, 400)
        params = request.query_params
        ids = selected_ids(params.getlist("id"))
        if len(ids) > MAX_SELECTED:
            return self._error("Too many traces", f"Select at most {MAX_SELECTED}.", 400)
        if "selected" in params and not ids:
            return self._error("Pick traces", "Select the traces to export first.", 400)
        if ids:
            filter: str | None = id_filter(ids)
            order = None
            # A count first: only when some id is missing are traces read to name it.
            missing = [] if self.store.count(filter) == len(ids) else self._infos(ids)[1]
            if missing:
                return self._error(
                    "Trace not found", f"Not in this store: {', '.join(missing)}", 404
                )
        else:
            filter = params.get("q", "").strip() or None
            order = params.get("order", "").strip() or None
            try:  # a bad filter or order fails here, before the download starts
                with time_limit(self.query_timeout_s):
                    self.store.search_traces(filter, order_by=order, max_results=1)
            except QueryTimeoutError:
                return self._too_slow()
            except (FilterError, InvalidArgumentError) as exc:
                return self._error("Cannot export", str(exc), 400)
        # Streamed a page at a time: memory stays bounded however many traces match.
        lines = golden_lines(iter_traces(self.store, filter, order_by=order, page_size=100))
        return StreamingResponse(
            chunked(lines),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="lowtrace-dataset.jsonl"'},
        )

    def confirm_delete(self, request: Request) -> Response:
        if self.site.read_only:
            return self._read_only()
        ids = selected_ids(request.query_params.getlist("id"))
        if not ids or len(ids) > MAX_SELECTED:
            return self._error(
                "Pick traces", f"Select between 1 and {MAX_SELECTED} traces to delete.", 400
            )
        infos, missing = self._infos(ids)
        return HTMLResponse(confirm_delete_page(self.site, infos, missing))

    async def _posted(self, request: Request) -> dict[str, list[str]] | Response:
        """A form this UI's own page posted with its CSRF token, or the refusal page.

        Refused in read-only mode, from other origins, as anything but a urlencoded form,
        over ``MAX_FORM_BYTES``, and without the token.
        """
        if self.site.read_only:
            return self._read_only()
        if not same_origin(request):
            return self._error("Refused", "Changes are only allowed from this UI's own pages.", 403)
        if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            return self._error("Refused", "Expected a form submission.", 415)
        body = await read_body(request, MAX_FORM_BYTES)
        if body is None:
            return self._error("Refused", "The form is too large.", 413)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        token = (form.get("csrf") or [""])[0]
        if not hmac.compare_digest(token.encode(), self.site.csrf_token.encode()):
            return self._error(
                "Refused", "The form is stale or did not come from this UI; reload it.", 403
            )
        return form

    async def _form(self, request: Request) -> dict[str, str] | Response:
        """Like ``_posted``, each field's first value."""
        form = await self._posted(request)
        if isinstance(form, Response):
            return form
        return {key: values[0] for key, values in form.items() if values}

    async def delete(self, request: Request) -> Response:
        form = await self._posted(request)
        if isinstance(form, Response):
            return form
        ids = selected_ids(form.get("id", []))
        if not ids or len(ids) > MAX_SELECTED:
            return self._error("Pick traces", f"Between 1 and {MAX_SELECTED} traces.", 400)
        deleted = await run_in_threadpool(self.store.delete_traces, ids)
        return RedirectResponse(f"/?deleted={deleted}", status_code=303)


def create_app(
    store: TraceStore,
    *,
    read_only: bool = False,
    allowed_hosts: Collection[str] | None = None,
    prices: Mapping[str, Any] | None = None,
    query_timeout_s: float | None = QUERY_TIMEOUT_S,
) -> Starlette:
    """The UI for ``store``. ``allowed_hosts`` None accepts any Host header (remote use).

    A search running past ``query_timeout_s`` is stopped and answered with a 503 page, so
    one costly filter cannot hold the server's threads (None: no limit).
    """
    ui = _UI(store, read_only=read_only, prices=prices, query_timeout_s=query_timeout_s)
    routes = [
        Route("/", ui.traces),
        Route("/dashboard", ui.dashboard),
        Route("/favicon.ico", ui.favicon),
        Route("/traces/{trace_id}", ui.trace),
        Route("/traces/{trace_id}/json", ui.trace_json),
        Route("/traces/{trace_id}/feedback", ui.feedback, methods=["POST"]),
        Route("/sessions", ui.sessions),
        Route("/sessions/{session_id:path}", ui.session),
        Route("/compare", ui.compare),
        Route("/export", ui.export),
        Route("/delete", ui.confirm_delete, methods=["GET"]),
        Route("/delete", ui.delete, methods=["POST"]),
        Mount("/static/ui", StaticFiles(packages=[("lowtrace._ui", "assets")])),
        Mount("/static/view", StaticFiles(packages=[("lowtrace._view", "assets")])),
    ]
    middleware = [Middleware(Guard, allowed_hosts=allowed_hosts)]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={404: ui.not_found, LowtraceError: ui.store_failed},
    )
