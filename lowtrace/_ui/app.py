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
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qs

from lowtrace._dataset import golden_lines
from lowtrace._model import Trace, TraceInfo
from lowtrace._query.budget import time_limit
from lowtrace._query.filter import string_literal
from lowtrace._serde import chunked
from lowtrace._stores.base import TraceStore, iter_traces
from lowtrace._ui.compare import compare_traces
from lowtrace._ui.guard import Guard
from lowtrace._ui.pages import (
    MAX_TRAIL,
    ListQuery,
    Site,
    compare_page,
    confirm_delete_page,
    error_page,
    list_page,
    tag_filter,
    trace_nav,
)
from lowtrace._view.html import trace_document
from lowtrace.errors import FilterError, InvalidArgumentError, LowtraceError, QueryTimeoutError

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
_PAGE_SIZES: Final = range(1, 501)
#: The longest filter, order or tag accepted in a URL.
MAX_QUERY_CHARS: Final = 4096
#: How long one list search or count may run before it is stopped.
QUERY_TIMEOUT_S: Final = 10.0
#: The largest delete form accepted (500 ids and a token take about 20 KB).
MAX_FORM_BYTES: Final = 64 * 1024


def _query(request: Request) -> ListQuery:
    """The list state from the URL; a tag chip's ``tk``/``tv`` are ANDed onto the filter."""
    params = request.query_params
    q = params.get("q", "").strip()
    key, value = params.get("tk"), params.get("tv")
    condition = tag_filter(key, value) if key is not None and value is not None else None
    if condition is not None:
        q = f"({q}) AND {condition}" if q else condition
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


def _too_long(request: Request) -> str | None:
    """Why the query string is refused, if it is: bounded input keeps pages bounded."""
    params = request.query_params
    for name in ("q", "order", "tk", "tv"):
        if len(params.get(name, "")) > MAX_QUERY_CHARS:
            return f"{name} is longer than {MAX_QUERY_CHARS} characters"
    return None


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _ids(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


def _id_filter(ids: Sequence[str]) -> str:
    """``trace_id IN (...)`` in the filter language, each id a quoted literal."""
    return f"trace_id IN ({', '.join(map(string_literal, ids))})"


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
        self.site = Site(store.uri, read_only, secrets.token_urlsafe(32))

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
        return self._error("Read-only", "This UI was started read-only: nothing is deleted.", 403)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self._error("Not found", f"No page at {request.url.path}", 404)

    async def store_failed(self, request: Request, exc: Exception) -> Response:
        """A store that cannot be read or written (down, append-only): say so, no traceback."""
        return self._error("The store failed", f"{type(exc).__name__}: {exc}", 500)

    # Plain ``def`` handlers run in Starlette's thread pool: store calls may block.

    def traces(self, request: Request) -> Response:
        if (problem := _too_long(request)) is not None:
            return self._error("Query too long", problem, 400)
        query = _query(request)
        notice = None
        if "deleted" in request.query_params:
            count = request.query_params["deleted"]
            notice = f"Deleted {count} trace(s)." if count.isdigit() else None
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
        page = trace_document(
            trace,
            prices=self.prices,
            assets_url="/static/view",
            nav=trace_nav(trace.info.trace_id),
        )
        return HTMLResponse(page)

    def trace_json(self, request: Request) -> Response:
        trace = self._path_trace(request)
        if isinstance(trace, Response):
            return trace
        return Response(
            trace.to_json(),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="trace.json"'},
        )

    def _infos(self, ids: Sequence[str]) -> tuple[list[TraceInfo], list[str]]:
        """Summaries of the traces with these ids (read a page at a time), and the ids absent."""
        infos = [t.info for t in iter_traces(self.store, _id_filter(ids), page_size=100)]
        present = {info.trace_id for info in infos}
        return infos, [i for i in ids if i not in present]

    def compare(self, request: Request) -> Response:
        ids = _ids(request.query_params.getlist("id"))
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
        if (problem := _too_long(request)) is not None:
            return self._error("Query too long", problem, 400)
        params = request.query_params
        ids = _ids(params.getlist("id"))
        if len(ids) > MAX_SELECTED:
            return self._error("Too many traces", f"Select at most {MAX_SELECTED}.", 400)
        if "selected" in params and not ids:
            return self._error("Pick traces", "Select the traces to export first.", 400)
        if ids:
            filter: str | None = _id_filter(ids)
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
        ids = _ids(request.query_params.getlist("id"))
        if not ids or len(ids) > MAX_SELECTED:
            return self._error(
                "Pick traces", f"Select between 1 and {MAX_SELECTED} traces to delete.", 400
            )
        infos, missing = self._infos(ids)
        return HTMLResponse(confirm_delete_page(self.site, infos, missing))

    async def delete(self, request: Request) -> Response:
        if self.site.read_only:
            return self._read_only()
        if not _same_origin(request):
            return self._error("Refused", "Deleting is only allowed from this UI's own pages.", 403)
        if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            return self._error("Refused", "Expected a form submission.", 415)
        body = await _read_body(request, MAX_FORM_BYTES)
        if body is None:
            return self._error("Refused", "The form is too large.", 413)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        token = (form.get("csrf") or [""])[0]
        if not hmac.compare_digest(token.encode(), self.site.csrf_token.encode()):
            return self._error(
                "Refused", "The form is stale or did not come from this UI; reload it.", 403
            )
        ids = _ids(form.get("id", []))
        if not ids or len(ids) > MAX_SELECTED:
            return self._error("Pick traces", f"Between 1 and {MAX_SELECTED} traces.", 400)
        deleted = await run_in_threadpool(self.store.delete_traces, ids)
        return RedirectResponse(f"/?deleted={deleted}", status_code=303)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site or origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return origin.split("://", 1)[-1] == request.headers.get("host", "")


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
        Route("/traces/{trace_id}", ui.trace),
        Route("/traces/{trace_id}/json", ui.trace_json),
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
