"""A time limit on searches: past it every store stops with a QueryTimeoutError, and the
web UI answers a clear 503 page instead of holding its threads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lowtrace import QueryTimeoutError, StoreError
from lowtrace._query.budget import time_limit
from lowtrace._stores.base import TraceStore
from tests.test_store_search import make_trace, open_kind

COSTLY = " OR ".join(f"name LIKE '%{c}%{c}%{c}%zz%'" for c in "abcdefghijklmnopqrstuvwxy")


@pytest.fixture(params=["memory", "sqlite", "jsonl", "postgres"])
def big(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    store = open_kind(request.param, request, tmp_path)
    names = ["abcdefghijklmnopqrstuvwxy" * 8 + str(n) for n in range(3000)]
    store.export([make_trace(n, name=name) for n, name in enumerate(names)])
    yield store
    store.shutdown()


def test_a_search_past_its_time_limit_stops(big: TraceStore) -> None:
    with time_limit(0), pytest.raises(QueryTimeoutError, match="time limit"):
        big.search_traces(COSTLY, max_results=10)
    with time_limit(0), pytest.raises(QueryTimeoutError):
        big.count(COSTLY)
    assert issubclass(QueryTimeoutError, StoreError)


def test_within_the_limit_or_without_one_it_answers(big: TraceStore) -> None:
    with time_limit(60):
        assert big.count(COSTLY) == 0
        assert len(big.search_traces("name LIKE 'abc%'", max_results=10)) == 10
    assert big.count("name LIKE '%1'") == 300  # no limit after the block


def test_the_ui_answers_a_slow_search_with_a_503_page(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from lowtrace._stores.uri import open_store
    from lowtrace._ui.app import create_app
    from lowtrace._ui.server import LOOPBACK_NAMES

    uri = f"sqlite:///{tmp_path}/t.db"
    open_store(uri).export([make_trace(n, name="x" * 300) for n in range(3000)])
    store = open_store(uri, create=False)
    for timeout, status in ((0, 503), (None, 200)):
        app = create_app(store, allowed_hosts=LOOPBACK_NAMES, query_timeout_s=timeout)
        with TestClient(app, base_url="http://127.0.0.1:5800") as http:
            page = http.get("/", params={"q": COSTLY})
            assert page.status_code == status
            assert ("Query too slow" in page.text) == (status == 503)
            assert http.get("/static/ui/ui.css").status_code == 200
    store.shutdown()
