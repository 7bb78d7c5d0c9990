"""A PostgreSQL server that accepts the connection but never answers (hung, or a proxy in
front of a dead one) makes the store fail with a StoreError in bounded time, not hang."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lowtrace import TracingClient
from lowtrace._stores import postgres
from lowtrace.errors import StoreError


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_is_a_store_error(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT_S", 2)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect"):
        TracingClient(f"postgresql://lowtrace@127.0.0.1:{silent_server}/traces")
    assert time.monotonic() - started < 30  # bounded by the connect timeout, not forever
