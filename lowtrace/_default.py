"""The default client of the fluent API: the one global a user may replace.

``get_default_client()`` creates a ``TracingClient()`` on first use (so ``LOWTRACE_URI`` and
``LOWTRACE_ENABLED`` apply); ``set_default_client`` replaces it. Decorated functions look the
default up when they are called, not when they are decorated.
"""

from __future__ import annotations

import threading

from lowtrace._client import TracingClient
from lowtrace.errors import InvalidArgumentError

__all__ = ["get_default_client", "set_default_client"]


class _Default:
    lock = threading.Lock()
    client: TracingClient | None = None


def get_default_client() -> TracingClient:
    """The client the fluent API and integrations use when none is given."""
    client = _Default.client
    if client is None:
        with _Default.lock:
            client = _Default.client
            if client is None:
                client = _Default.client = TracingClient()
    return client


def set_default_client(client: TracingClient | None) -> None:
    """Make ``client`` the default (None: create a fresh one from the environment on next use)."""
    if client is not None and not isinstance(client, TracingClient):
        raise InvalidArgumentError(f"set_default_client takes a TracingClient, got {client!r}")
    with _Default.lock:
        _Default.client = client
