"""A minimal HTTP/1.1 POST client on ``http.client`` with one persistent connection.

No third-party HTTP library: the exporter sends one request at a time from one worker
thread. A kept-alive connection the server closed while idle is reopened once, silently;
every other failure raises. ``abort()`` may be called from another thread to cut an
in-flight request short (shutdown must never wait on a slow receiver).
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Final

import attrs

__all__ = ["HttpResponse", "HttpTransport", "parse_retry_after"]

_MAX_BODY: Final = 1 << 20  # bytes of a response body read at most
_STALE: Final = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


@attrs.frozen
class HttpResponse:
    """Status, headers (lower-case names) and at most 1 MiB of the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²" or other Unicode digits
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class HttpTransport:
    """POSTs bodies to one URL over a reused connection."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.ssl_context = ssl_context
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # guards _conn against abort() from another thread

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            context = self.ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def post(self, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        """Send one POST and read the answer within ``timeout`` seconds in all;
        OSError/HTTPException on transport failures (TimeoutError past the deadline).

        A socket timeout alone bounds each read, not the answer: a receiver trickling a
        byte at a time would hold the exporter for ever. A watchdog cuts the socket at the
        deadline; a 2xx whose body was cut short still counts (the status said it all).
        """
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the OTLP request timed out")
            with self._lock:
                conn = self._conn
                reused = conn is not None
                if conn is None:
                    conn = self._conn = self._connect(remaining)
            conn.timeout = remaining
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
            expired = threading.Event()
            watchdog = threading.Timer(remaining, _cut, (conn, expired))
            watchdog.daemon = True
            watchdog.start()
            try:
                conn.request("POST", self.path, body, dict(headers))
                response = conn.getresponse()
                data = response.read(_MAX_BODY)
                complete = response.isclosed()
            except _STALE:
                self.close()
                if expired.is_set():
                    raise TimeoutError("the OTLP receiver did not answer in time") from None
                if reused and attempt == 1:
                    continue  # the server closed the idle kept-alive connection
                raise
            except BaseException as exc:
                self.close()
                if expired.is_set() and isinstance(exc, Exception):
                    raise TimeoutError("the OTLP receiver did not answer in time") from exc
                raise
            finally:
                watchdog.cancel()
            if response.will_close or not complete or expired.is_set():
                self.close()
            names = {k.lower(): v for k, v in response.getheaders()}
            return HttpResponse(response.status, names, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the connection; the next ``post`` opens a new one."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        """Cut an in-flight request short from another thread, then close."""
        with self._lock:
            conn = self._conn
        sock = conn.sock if conn is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.close()


def _cut(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The watchdog: the deadline passed, so the socket is shut (the blocked read ends)."""
    expired.set()
    sock = conn.sock
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
