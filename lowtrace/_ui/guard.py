"""ASGI middleware in front of every UI response: Host check, origin check, headers.

The Host check stops DNS rebinding: a hostile page that points its own domain at
127.0.0.1 sends requests whose Host header names that domain, and they are refused.
Requests another site's page makes in the background (``Sec-Fetch-Site: cross-site``
without a top-level navigation) are refused too. The headers forbid inline and foreign
script and style, framing, MIME sniffing and caching of pages that show trace contents;
referrers leave only for this origin. An unexpected error becomes a plain, logged 500 that
still carries the headers. ``same_origin`` and ``read_body`` are the checks every form post
(delete, feedback) passes before its CSRF token is compared.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "Guard", "host_name", "read_body", "same_origin"]

_log = logging.getLogger("lowtrace.ui")

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" makes Chromium send Origin: null
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


_HOST: Final = re.compile(r"^(?:\[([0-9a-f:.]+)\]|([^\[\]:/@\s]+))(?::\d{1,5})?$")


def host_name(header: str) -> str:
    """The host part of a Host header, lower-cased (``[::1]:5800`` -> ``::1``); "" if malformed."""
    match = _HOST.match(header.strip().lower())
    if match is None:
        return ""
    return match.group(1) or match.group(2)


def _cross_site_subresource(headers: dict[bytes, bytes]) -> bool:
    """A request another site's page made without the user navigating here (an <img>, fetch).

    Such requests could make the server do work (a page, an export) for a page the user
    never meant to visit; browsers say so in ``Sec-Fetch-*``. Top-level navigations (a
    link followed, a bookmark) are allowed.
    """
    if headers.get(b"sec-fetch-site") != b"cross-site":
        return False
    navigating = headers.get(b"sec-fetch-mode") == b"navigate"
    return not (navigating and headers.get(b"sec-fetch-dest") == b"document")


class Guard:
    """Refuses requests for hosts not in ``allowed_hosts`` (None: any) and adds the headers."""

    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str] | None = None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.allowed is not None:
            host = headers.get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.allowed:
                await _plain(send, 421, f"requests for host {host!r} are not served here")
                return
        if _cross_site_subresource(headers):
            await _plain(send, 403, "requests from other sites' pages are not served")
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:  # noqa: BLE001 - any bug or failing store: a logged 500 with headers
            _log.exception("lowtrace ui: error serving %s", scope.get("path"))
            if not started:
                await _plain(send, 500, "internal error; the server log has the details")


async def _plain(send: Send, status: int, message: str) -> None:
    body = f"lowtrace ui: {message}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(request: Request, limit: int) -> bytes | None:
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


def same_origin(request: Request) -> bool:
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
