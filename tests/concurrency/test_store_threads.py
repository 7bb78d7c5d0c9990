"""A store used from threads that come and go (a web server's worker threads) keeps a
bounded number of database connections."""

from __future__ import annotations

import threading
import time

import psycopg

from lowtrace._stores.uri import open_store


def _connections(uri: str) -> int:
    """Connections to the store's database, this counting one left out."""
    database = uri.rsplit("/", 1)[1]
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _connections_settle_to(uri: str, at_most: int) -> int:
    """The connection count once it is ``at_most`` or 10 s have passed: a backend leaves
    ``pg_stat_activity`` a moment after its client closed the connection."""
    deadline = time.monotonic() + 10
    while (count := _connections(uri)) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_postgres_closes_the_connection_of_a_thread_that_ended(postgres_uri: str) -> None:
    store = open_store(postgres_uri)
    try:
        for _ in range(12):  # one short-lived worker thread after another
            worker = threading.Thread(target=store.count)
            worker.start()
            worker.join(timeout=30)
            assert not worker.is_alive()
        store.count()  # this thread's connection; the ended threads' ones are gone
        assert _connections_settle_to(postgres_uri, 2) <= 2
    finally:
        store.shutdown()
    assert _connections_settle_to(postgres_uri, 0) == 0
