"""A seeded SQLite store and the UI over it: in-process (TestClient) and as a live server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest

from lowtrace import Trace, TracingClient
from tests.samples import record_agent, record_hostile

pytest.importorskip("starlette", reason="the web UI tests need the 'ui' extra")

from starlette.testclient import TestClient

from lowtrace._stores.uri import open_store
from lowtrace._ui.app import create_app
from lowtrace._ui.server import LOOPBACK_NAMES


@attrs.frozen
class Seeded:
    """The store's URI and what went into it, oldest first."""

    uri: str
    agents: list[Trace]
    hostile: Trace

    @property
    def all(self) -> list[Trace]:
        return [*self.agents, self.hostile]


def seed(uri: str) -> Seeded:
    with TracingClient(uri) as client:
        agents = [
            record_agent(client, f"question {n}", "v1" if n % 2 == 0 else "v2", fail=n == 7)
            for n in range(12)
        ]
        hostile = record_hostile(client)
        assert client.flush(timeout=30)
    return Seeded(uri, agents, hostile)


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed(f"sqlite:///{tmp_path}/traces.db")


@contextmanager
def in_process(uri: str) -> Iterator[TestClient]:
    """The UI over ``uri`` in process, as a loopback server sees it."""
    store = open_store(uri, create=False)
    app = create_app(store, allowed_hosts=LOOPBACK_NAMES, prices={"small-model": (1.0, 4.0)})
    try:
        with TestClient(app, base_url="http://127.0.0.1:5800", follow_redirects=False) as client:
            yield client
    finally:
        store.shutdown()


@pytest.fixture
def http(seeded: Seeded) -> Iterator[TestClient]:
    with in_process(seeded.uri) as client:
        yield client


@contextmanager
def serving(uri: str, *, read_only: bool = False) -> Iterator[str]:
    """A real uvicorn server over ``uri`` on a free loopback port, in a thread; its base URL."""
    import uvicorn

    from lowtrace._ui.server import bind, uvicorn_config

    store = open_store(uri, create=False)
    app = create_app(
        store,
        read_only=read_only,
        allowed_hosts=LOOPBACK_NAMES,
        prices={"small-model": (1.0, 4.0)},
    )
    sock = bind("127.0.0.1", 0)  # listening now: requests wait in the backlog until uvicorn runs
    server = uvicorn.Server(uvicorn_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        store.shutdown()
    assert not thread.is_alive(), "the UI server did not stop"


@pytest.fixture
def live_ui(seeded: Seeded) -> Iterator[str]:
    with serving(seeded.uri) as url:
        yield url
