"""The default client of the fluent API: the one global a user may replace.

``get_default_client()`` creates a ``TracingClient()`` on first use (so ``LOWTRACE_URI`` and
``LOWTRACE_ENABLED`` apply); ``set_default_client`` replaces it. Decorated functions look the
default up when they are called, not when they are decorated. ``lowtrace.search_traces``,
``get_trace``, ``flush`` and ``get_last_active_trace_id`` are its methods at module level
(as in MLflow); reads see every trace the default client ended before them.

When the default cannot be made (a typo in ``LOWTRACE_URI``, a missing extra), the fluent
API and the integrations ask ``client_for_tracing`` instead: their code runs untraced and
the reason is logged once per reason, never raised into the application.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import ClassVar

from lowtrace._client import TracingClient
from lowtrace._model import Trace
from lowtrace._stores.base import TraceList
from lowtrace.errors import InvalidArgumentError

__all__ = [
    "client_for_tracing",
    "flush",
    "get_default_client",
    "get_last_active_trace_id",
    "get_trace",
    "search_traces",
    "set_default_client",
]


log = logging.getLogger("lowtrace")


class _Default:
    lock = threading.Lock()
    client: TracingClient | None = None
    told: ClassVar[set[str]] = set()  # why the default could not be made, each reason logged once


def get_default_client() -> TracingClient:
    """The client the fluent API and integrations use when none is given."""
    client = _Default.client
    if client is None:
        with _Default.lock:
            client = _Default.client
            if client is None:
                client = _Default.client = TracingClient()
    return client


def client_for_tracing(where: str) -> TracingClient | None:
    """The default client for the fluent API and integrations; None (untraced) if it cannot
    be made, with the reason logged once, since an application must never break on it."""
    try:
        return get_default_client()
    except Exception as exc:  # noqa: BLE001 - tracing never breaks the application
        reason = f"{type(exc).__name__}: {exc}"
        with _Default.lock:
            new = reason not in _Default.told
            _Default.told.add(reason)
        if new:
            log.warning(
                "lowtrace: not traced (%s): the default client could not be made: %s. "
                "Fix LOWTRACE_URI or call lowtrace.set_default_client(...)",
                where,
                reason,
            )
        return None


def set_default_client(client: TracingClient | None) -> None:
    """Make ``client`` the default (None: create a fresh one from the environment on next use)."""
    if client is not None and not isinstance(client, TracingClient):
        raise InvalidArgumentError(f"set_default_client takes a TracingClient, got {client!r}")
    with _Default.lock:
        _Default.client = client
        _Default.told.clear()  # a new choice: a failure to make it is news again


def search_traces(
    filter: str | None = None,
    *,
    order_by: Sequence[str] | str | None = None,
    max_results: int = 100,
    page_token: str | None = None,
) -> TraceList:
    """``search_traces`` on the default client."""
    return get_default_client().search_traces(
        filter, order_by=order_by, max_results=max_results, page_token=page_token
    )


def get_trace(trace_id: str) -> Trace | None:
    """``get_trace`` on the default client."""
    return get_default_client().get_trace(trace_id)


def flush(timeout: float | None = None) -> bool:
    """``flush`` on the default client: True when every ended trace was delivered."""
    return get_default_client().flush(timeout)


def get_last_active_trace_id() -> str | None:
    """The id of the trace the default client ended last (e.g. by a ``@trace`` call)."""
    return get_default_client().get_last_active_trace_id()
