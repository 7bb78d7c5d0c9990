"""A store used from threads that come and go (a web server's worker threads) keeps a
bounded number of database connections."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from lowtrace._stores.uri import open_store


def _one_short_lived_thread_after_another(work: Callable[[], object], threads: int = 12) -> None:
    for _ in range(threads):
        worker = threading.Thread(target=work)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive()


def _open_files(path: Path) -> int:
    """This process's file descriptors open on ``path``."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
def test_sqlite_hands_an_ended_threads_connection_to_the_next_thread(tmp_path: Path) -> None:
    # Each new worker thread takes over the connection (and warm page cache) of one that
    # ended, instead of opening one more file handle that is never closed.
    path = tmp_path / "traces.db"
    store = open_store(f"sqlite:///{path}")
    try:
        store.count()  # this thread's connection
        _one_short_lived_thread_after_another(store.count)
        assert _open_files(path) == 2  # this thread's, and the one every worker took over
        # Two threads alive at once need two connections, and no more after they end.
        both = threading.Barrier(2, timeout=30)
        pair = [threading.Thread(target=lambda: (store.count(), both.wait())) for _ in range(2)]
        for worker in pair:
            worker.start()
        for worker in pair:
            worker.join(timeout=30)
        _one_short_lived_thread_after_another(store.count)
        assert _open_files(path) == 3
    finally:
        store.shutdown()
    assert _open_files(path) == 0


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


def test_postgres_reuses_the_connection_of_a_thread_that_ended(postgres_uri: str) -> None:
    store = open_store(postgres_uri)
    try:
        _one_short_lived_thread_after_another(store.count)
        store.count()
        # This thread's connection, and the one every worker took over from the last.
        assert _connections_settle_to(postgres_uri, 2) == 2
    finally:
        store.shutdown()
    assert _connections_settle_to(postgres_uri, 0) == 0


def test_postgres_does_not_hand_over_a_connection_the_server_closed(
    postgres_uri: str, postgres_dsn: str
) -> None:
    # A server restart (here: its sessions terminated) closes the idle connection an ended
    # thread left behind; the next thread must get a working connection, not that one.
    store = open_store(postgres_uri)
    try:
        _one_short_lived_thread_after_another(store.count, threads=1)
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (postgres_uri.rsplit("/", 1)[1],),
            )
        assert _connections_settle_to(postgres_uri, 0) == 0  # the sessions have ended
        counted: list[object] = []
        _one_short_lived_thread_after_another(lambda: counted.append(store.count()), threads=1)
        assert counted == [0]
    finally:
        store.shutdown()


def test_postgres_reconnects_when_the_server_closed_this_threads_idle_connection(
    postgres_uri: str, postgres_dsn: str
) -> None:
    # After a server restart the first request of a thread that already had a connection
    # works too: the closed session is noticed before the request, not by its failure.
    store = open_store(postgres_uri)
    try:
        assert store.count() == 0
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (postgres_uri.rsplit("/", 1)[1],),
            )
        assert _connections_settle_to(postgres_uri, 0) == 0
        assert store.count() == 0
        assert store.get_trace("0" * 32) is None
    finally:
        store.shutdown()


def test_postgres_connection_lost_in_the_middle_of_a_request_is_a_store_error(
    postgres_uri: str,
) -> None:
    # The export waits for a trace's lock, held by another session; its own session is
    # ended meanwhile (as a server restart would): the caller gets lowtrace's StoreError,
    # not the driver's exception, and the next request works again.
    from lowtrace import StoreError, TracingClient

    store = open_store(postgres_uri)
    with TracingClient("memory://") as client:
        trace = client.end_trace(client.start_trace("t").trace_id)
    assert trace is not None
    failed: list[BaseException] = []

    def export() -> None:
        try:
            store.export([trace])
        except BaseException as exc:  # the test inspects it
            failed.append(exc)

    try:
        with psycopg.connect(postgres_uri, autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (trace.info.trace_id,)
            )
            worker = threading.Thread(target=export)
            worker.start()
            deadline = time.monotonic() + 30
            waiting = None
            while waiting is None and time.monotonic() < deadline:
                holder.execute("SELECT pg_stat_clear_snapshot()")  # fresh each time
                waiting = holder.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert waiting is not None
            holder.execute("SELECT pg_terminate_backend(%s)", waiting)
            worker.join(30)
            holder.execute("ROLLBACK")
        assert [type(exc) for exc in failed] == [StoreError]
        assert store.count() == 0
        store.export([trace])
        assert store.get_trace(trace.info.trace_id) == trace
    finally:
        store.shutdown()
