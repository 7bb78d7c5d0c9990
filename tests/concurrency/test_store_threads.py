"""A store used from threads that come and go (a web server's worker threads) keeps a
bounded number of database connections."""

from __future__ import annotations

import threading

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


def test_postgres_closes_the_connection_of_a_thread_that_ended(postgres_uri: str) -> None:
    store = open_store(postgres_uri)
    try:
        for _ in range(12):  # one short-lived worker thread after another
            worker = threading.Thread(target=store.count)
            worker.start()
            worker.join(timeout=30)
            assert not worker.is_alive()
        store.count()  # this thread's connection; the ended threads' ones are gone
        assert _connections(postgres_uri) <= 2
    finally:
        store.shutdown()
    assert _connections(postgres_uri) == 0
