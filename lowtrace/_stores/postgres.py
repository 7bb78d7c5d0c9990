"""``postgresql://user@host:port/db``: a store shared by many processes on many hosts.

The same tables, search semantics and fragment merging as the SQLite store (the store test
suite runs against both), through psycopg 3 (the ``postgres`` extra). Text columns use the
``C`` collation so comparisons and sorting follow code points, exactly like the reference
evaluator. Each batch is one transaction; fragments of one trace written by several
processes at once are serialised with a per-trace advisory lock taken in sorted order (no
deadlocks). The schema version lives in ``lowtrace_schema``; migrations run under an
advisory lock so concurrent first starts are safe.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from lowtrace._model import Trace, merge_traces
from lowtrace._query.budget import remaining_s
from lowtrace._query.filter import parse_filter
from lowtrace._query.literals import storable_text
from lowtrace._query.sql import POSTGRES, Query, delete_statements, search_page
from lowtrace._stores.base import TraceList, TraceStore
from lowtrace._stores.overview import Overview
from lowtrace._stores.pgoverview import postgres_overview
from lowtrace._stores.pgrows import pg_values, write_rows
from lowtrace._stores.pgschema import SCHEMA_VERSION, ensure_schema
from lowtrace._stores.redact import redact
from lowtrace._stores.sessions import SessionSummary, sql_sessions
from lowtrace._stores.sqlrows import merged_by_id
from lowtrace.errors import (
    LowtraceError,
    MissingExtraError,
    QueryTimeoutError,
    StoreError,
    TraceNotFoundError,
)

try:
    import psycopg
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        "postgresql:// needs psycopg 3: pip install 'lowtrace[postgres]'"
    ) from _exc

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

#: Seconds to wait for a server to answer a new connection (libpq waits forever by
#: default); a ``connect_timeout`` in the URI wins.
CONNECT_TIMEOUT_S = 10
_IDLE: Final = psycopg.pq.TransactionStatus.IDLE


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _database_errors(
    *, retry: bool
) -> Callable[
    [Callable[Concatenate[PostgresStore, _P], _R]], Callable[Concatenate[PostgresStore, _P], _R]
]:
    """The driver's errors as a ``StoreError`` naming the store. With ``retry`` (reads only:
    running them twice changes nothing) a call whose connection the server dropped (a
    restart, an idle timeout, an administrator) runs once more, on a fresh connection."""

    def wrap(
        method: Callable[Concatenate[PostgresStore, _P], _R],
    ) -> Callable[Concatenate[PostgresStore, _P], _R]:
        @functools.wraps(method)
        def call(store: PostgresStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            again = retry
            while True:
                try:
                    return method(store, *args, **kwargs)
                except LowtraceError:
                    raise
                except psycopg.Error as exc:
                    if again and store._dropped():
                        again = False
                        continue
                    raise StoreError(f"{store.uri}: {exc}") from exc

        return call

    return wrap


def _lock_traces(cur: psycopg.Cursor[Any], ids: Sequence[str]) -> None:
    """One writer per trace id at a time, locks taken in sorted order: no deadlocks."""
    cur.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(t, 0)) FROM unnest(%s::text[]) t ORDER BY t",
        (pg_values(ids),),
    )


def _closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection has something to read: the server ended the session (a
    restart, a terminated backend) and sent its last message, or at least closed the socket.
    An idle session otherwise receives nothing; psycopg only notices on the next query."""
    try:
        if not hasattr(select, "poll"):  # Windows: select() takes any socket there
            return bool(select.select([conn.fileno()], [], [], 0)[0])
        poller = select.poll()  # not select(): it refuses descriptors past 1023
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):
        return True


def _gone(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server closed this idle connection (then closed here too): a thread's
    first request after a server restart must not fail on it. Never inside a transaction,
    which must keep its connection."""
    if conn.info.transaction_status != _IDLE or not _closed_by_server(conn):
        return False
    with contextlib.suppress(psycopg.Error):
        conn.close()
    return True


class PostgresStore(TraceStore):
    """Traces in a PostgreSQL database; any thread, process or host may use it at once."""

    def __init__(self, dsn: str, *, create: bool = True) -> None:
        self.dsn = dsn
        self.uri = redact(dsn)
        self._local = threading.local()
        self._all_lock = threading.Lock()  # guards _all and _generation
        #: Every connection made: (process, thread that uses it, connection).
        self._all: list[tuple[int, threading.Thread, psycopg.Connection[Any]]] = []
        self._generation = 0
        _stores.add(self)
        self._ensure_schema(create)

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> PostgresStore:
        return cls(uri, create=create)

    @property
    def _conn(self) -> psycopg.Connection[Any]:
        local = self._local
        conn: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        key = (os.getpid(), self._generation)  # a forked child needs its own connections
        if conn is None or local.key != key or conn.closed or _gone(conn):
            if conn is not None and conn.closed:  # the server dropped it: forget it
                with self._all_lock:
                    self._all = [e for e in self._all if e[2] is not conn]
            conn = self._adopt(key[0]) or self._connect()
            local.conn, local.key = conn, key
        return conn

    def _dropped(self) -> bool:
        """Whether this thread's connection was closed (by the server, or by a failure)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        return conn is not None and bool(conn.closed)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            dsn = self.dsn
            if "connect_timeout" not in psycopg.conninfo.conninfo_to_dict(dsn):
                dsn = psycopg.conninfo.make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT_S)
            conn = psycopg.connect(dsn, autocommit=True)
        except (psycopg.Error, ValueError) as exc:  # down, or a malformed URI
            raise StoreError(f"cannot connect to {self.uri}: {exc}") from None
        with self._all_lock:
            self._all.append((os.getpid(), threading.current_thread(), conn))
        return conn

    def _adopt(self, pid: int) -> psycopg.Connection[Any] | None:
        """The idle connection of an ended thread of this process, now this thread's: a web
        server's worker threads come and go, and each new one would otherwise open one more
        connection until the server refuses new ones. Broken or busy ones are closed."""
        this = threading.current_thread()
        adopted, broken = None, []
        with self._all_lock:
            for index, (owner, thread, conn) in enumerate(self._all):
                if owner != pid or thread.is_alive():
                    continue
                if conn.closed or conn.info.transaction_status != _IDLE or _closed_by_server(conn):
                    broken.append(conn)
                elif adopted is None:
                    self._all[index] = (pid, this, conn)
                    adopted = conn
            self._all = [e for e in self._all if e[2] not in broken]
        for conn in broken:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        return adopted

    @_database_errors(retry=False)
    def _ensure_schema(self, create: bool) -> None:
        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            ensure_schema(cur, self.uri, create)

    @_database_errors(retry=False)
    def export(self, traces: Sequence[Trace]) -> None:
        # Text with NUL, which PostgreSQL text cannot hold, or too long for its index: the
        # server refused the COPY and the transaction rolled back. The batch again, its
        # text made storable, then cut. Rare, so not checked up front (~6 us of the
        # client's CPU per trace, value by value).
        clean = cut = False
        while True:
            try:
                self._export(traces, clean=clean, cut=cut)
                return
            except psycopg.DataError:
                if clean:
                    raise
                clean = True
            except psycopg.errors.ProgramLimitExceeded:
                if cut:
                    raise
                clean = cut = True

    def _export(self, traces: Sequence[Trace], *, clean: bool, cut: bool) -> None:
        fresh = merged_by_id(traces)  # sorted ids: advisory locks in one order
        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            ids = list(fresh)
            _lock_traces(cur, ids)
            cur.execute("SELECT data FROM traces WHERE trace_id = ANY(%s)", (pg_values(ids),))
            stored: set[str] = set()
            for (data,) in cur.fetchall():
                old = Trace.from_bytes(bytes(data))
                tid = old.info.trace_id  # as written, NUL and all (the column has U+FFFD)
                fresh[tid] = merge_traces([old, fresh[tid]])
                stored.add(tid)
            write_rows(cur, fresh, stored, clean, cut)

    @_database_errors(retry=False)
    def update_trace(self, trace_id: str, change: Callable[[Trace], Trace]) -> Trace:
        try:
            return self._update(trace_id, change, cut=False)
        except psycopg.errors.ProgramLimitExceeded:  # text too long for its index
            return self._update(trace_id, change, cut=True)

    def _update(self, trace_id: str, change: Callable[[Trace], Trace], *, cut: bool) -> Trace:
        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            _lock_traces(cur, [trace_id])
            cur.execute("SELECT data FROM traces WHERE trace_id = %s", pg_values([trace_id]))
            row = cur.fetchone()
            if row is None:
                raise TraceNotFoundError(f"no stored trace {trace_id} in {self.uri}")
            new = change(Trace.from_bytes(bytes(row[0])))
            write_rows(cur, {trace_id: new}, {trace_id}, clean=True, cut=cut)
        return new

    @_database_errors(retry=False)
    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        statements = delete_statements(POSTGRES, trace_ids, older_than_ms)
        if not statements:
            return 0
        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, pg_values(params))
            return cur.rowcount

    @_database_errors(retry=True)
    def get_trace(self, trace_id: str) -> Trace | None:
        if not storable_text(trace_id):
            return None  # no stored trace can have this id
        with self._conn.cursor() as cur:
            cur.execute("SELECT data FROM traces WHERE trace_id = %s", pg_values([trace_id]))
            row = cur.fetchone()
        return Trace.from_bytes(bytes(row[0])) if row else None

    @_database_errors(retry=True)
    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        return search_page(POSTGRES, self._fetch, filter, order_by, max_results, page_token)

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        left = remaining_s()
        conn = self._conn
        if left is None:
            with conn.cursor() as cur:
                cur.execute(sql, pg_values(params))
                return cur.fetchall()
        try:  # the caller's time limit, as this transaction's statement_timeout
            with conn.transaction(), conn.cursor() as cur:
                timeout = f"{max(1, int(left * 1000))}ms"
                cur.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
                cur.execute(sql, pg_values(params))
                return cur.fetchall()
        except psycopg.errors.QueryCanceled:
            raise QueryTimeoutError(
                f"the search of {self.uri} took longer than its time limit"
            ) from None

    @_database_errors(retry=True)
    def count(self, filter: str | None = None) -> int:
        query = Query(POSTGRES)
        where = query.where(parse_filter(filter))
        rows = self._fetch(f"SELECT COUNT(*) FROM traces t WHERE {where}", query.params)
        return int(rows[0][0])

    @_database_errors(retry=True)
    def overview(
        self,
        filter: str | None = None,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        buckets: int = 30,
        top: int = 8,
    ) -> Overview:
        conn = self._conn
        with conn.transaction():
            # One statement sorting every trace in range by bucket (see pgoverview.py): in
            # memory, not spilled to disk as with the default 4 MB (1.5x the time at 100k).
            conn.execute("SET LOCAL work_mem = '64MB'")
            return postgres_overview(self._fetch, filter, start_ms, end_ms, buckets, top)

    @_database_errors(retry=True)
    def sessions(
        self, filter: str | None = None, *, max_results: int = 100
    ) -> list[SessionSummary]:
        return sql_sessions(POSTGRES, self._fetch, filter, max_results)

    def shutdown(self) -> None:
        """Close every connection of this process; the store reconnects if it is used again.

        A forked child's copies of its parent's connections are let go, not closed: closing
        one would end the parent's session on the server (they share its socket).
        """
        with self._all_lock:
            connections, self._all = self._all, []
            self._generation += 1
        pid = os.getpid()
        for owner, _, conn in connections:
            if owner == pid:
                conn.close()


#: Every store of this process, for ``_after_fork_in_child``.
_stores: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A fork copies ``_all_lock`` as held if another thread was making a connection: the
    child's first use would wait forever. The child has no such thread, so a new lock."""
    for store in list(_stores):
        store._all_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
