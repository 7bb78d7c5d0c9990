"""The server drops the store's connections (a restart, an idle timeout, an administrator):
reads carry on over a fresh connection, and what cannot is a StoreError, never a driver error."""

from __future__ import annotations

import os
import time

import psycopg

from lowtrace import TracingClient
from lowtrace._stores.uri import open_store


def _drop_every_connection(uri: str) -> None:
    database = uri.rsplit("/", 1)[1]
    with psycopg.connect(uri, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )


def test_reads_survive_the_server_dropping_the_connection(postgres_uri: str) -> None:
    with TracingClient(postgres_uri) as client:
        root = client.start_trace("agent", tags={"env": "prod"})
        client.end_trace(root.trace_id)
        assert client.flush(timeout=30)
        reads = [
            client.count_traces,
            lambda: client.search_traces("tags.env = 'prod'")[0].info.trace_id,
            lambda: client.get_trace(root.trace_id) is not None,
        ]
        before = [read() for read in reads]
        for read, expected in zip(reads, before, strict=True):
            _drop_every_connection(postgres_uri)
            assert read() == expected
        _drop_every_connection(postgres_uri)
        overview = client.store.overview("tags.env = 'prod'")  # type: ignore[union-attr]
        assert overview.traces == 1


def test_a_write_after_the_server_dropped_the_idle_connection_reconnects(
    postgres_uri: str,
) -> None:
    # The closed session is noticed before the write is sent (the server's last message
    # is waiting on the socket), so the write goes over a fresh connection. A connection
    # lost in the middle of a write is a StoreError, not retried (tests/concurrency/
    # test_store_threads.py).
    store = open_store(postgres_uri)
    try:
        store.count()
        _drop_every_connection(postgres_uri)
        _wait_until_gone(postgres_uri)
        assert store.delete_traces(["0" * 32]) == 0
    finally:
        store.shutdown()


def _wait_until_gone(uri: str) -> None:
    """Until the terminated sessions have ended (``pg_terminate_backend`` does not wait)."""
    database = uri.rsplit("/", 1)[1]
    deadline = time.monotonic() + 30
    with psycopg.connect(uri, autocommit=True) as admin:
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("the terminated sessions did not end")


def _sessions(uri: str) -> set[int]:
    """The server processes of the database's other sessions."""
    with psycopg.connect(uri, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return {pid for (pid,) in rows}


def test_a_healthy_connection_on_a_file_descriptor_past_1024_is_kept(postgres_uri: str) -> None:
    # A busy server process has many files open: the check that the server has not
    # closed the connection must work for any descriptor (select() stops at 1023), not
    # take every connection for closed and reconnect on each request.
    held = [open(os.devnull) for _ in range(1100)]  # noqa: SIM115 - closed below
    try:
        store = open_store(postgres_uri)
        try:
            store.count()
            first = _sessions(postgres_uri)
            for _ in range(3):
                store.count()
            assert _sessions(postgres_uri) == first
        finally:
            store.shutdown()
    finally:
        for file in held:
            file.close()
