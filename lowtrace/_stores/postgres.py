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
import os
import select
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from lowtrace._model import Trace, merge_traces
from lowtrace._query.budget import remaining_s
from lowtrace._query.filter import parse_filter
from lowtrace._query.literals import storable_text
from lowtrace._query.sql import POSTGRES, Query, delete_statements, search_page
from lowtrace._stores.annotations import write_annotations
from lowtrace._stores.base import TraceList, TraceStore
from lowtrace._stores.overview import Overview
from lowtrace._stores.pgoverview import postgres_overview
from lowtrace._stores.pgschema import SCHEMA_VERSION, ensure_schema
from lowtrace._stores.redact import redact
from lowtrace._stores.sessions import SessionSummary, sql_sessions
from lowtrace._stores.sqlrows import merged_by_id, span_rows, summary_row, tag_rows
from lowtrace.errors import (
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


def _lock_traces(cur: psycopg.Cursor[Any], ids: Sequence[str]) -> None:
    """One writer per trace id at a time, locks taken in sorted order: no deadlocks."""
    cur.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(t, 0)) FROM unnest(%s::text[]) t ORDER BY t",
        (_pg_values(ids),),
    )


#: The tables an export fills with ``COPY``: the columns in row order, and their types
#: (binary ``COPY`` sends each value as the column's own type: half the client's CPU of
#: text, which spells out every number and doubles the trace's bytes as hex).
#: Last, the indexed text columns (see ``_cut``).
_TRACES: Final = (
    "traces (trace_id, name, status, status_message, start_time_ms, end_time_ms, "
    "start_time_ns, end_time_ns, duration_ms, span_count, input_tokens, output_tokens, "
    "total_tokens, data)",
    ("text",) * 4 + ("int8",) * 4 + ("float8", "int4", "int8", "int8", "int8", "bytea"),
    (1, 2),
)
_SPANS: Final = (
    "spans (trace_id, span_id, name, type, status, duration_ms, model, input_tokens, "
    "output_tokens, trace_start_ms)",
    ("text",) * 5 + ("float8", "text", "int8", "int8", "int8"),
    (2, 3, 4, 6),
)
_TAGS: Final = ("trace_tags (trace_id, key, value)", ("text",) * 3, (1, 2))

#: UTF-8 bytes of text kept in an indexed column when a batch's rows were refused as too
#: large for their index (PostgreSQL's limit is ~2.7 KB per entry, two text columns in
#: some): the whole value stays in the trace's data; searches see this start of it.
_INDEX_BYTES: Final = 1000


#: PostgreSQL text cannot hold NUL: in the index columns and in the values searched for it
#: is U+FFFD (the whole trace, kept as bytes, keeps it). Both sides map alike, so a NUL
#: is found where it was written; it also matches a U+FFFD written as such.
_NUL_AS: Final = "\ufffd"


def _pg_values(values: Iterable[Any]) -> list[Any]:
    """``values`` with NUL in each text replaced as PostgreSQL text requires."""
    return [v.replace("\x00", _NUL_AS) if isinstance(v, str) and "\x00" in v else v for v in values]


def _pg_many(cur: psycopg.Cursor[Any], cut: bool) -> Callable[[str, Any], object]:
    """The cursor's ``executemany``, its rows' text made storable (``_pg_values``), and
    with ``cut`` each text cut to fit an index (``_cut``)."""
    if cut:
        return lambda sql, rows: cur.executemany(
            sql, [_pg_values(_cut(row, range(len(row)))) for row in rows]
        )
    return lambda sql, rows: cur.executemany(sql, [_pg_values(row) for row in rows])


def _cut(row: Sequence[Any], columns: Iterable[int]) -> list[Any]:
    """``row`` with the text in ``columns`` cut to ``_INDEX_BYTES`` of UTF-8."""
    out = list(row)
    for i in columns:
        value = out[i]
        if isinstance(value, str) and len(value) > _INDEX_BYTES // 4:
            raw = value.encode("utf-8", "surrogatepass")
            if len(raw) > _INDEX_BYTES:
                out[i] = raw[:_INDEX_BYTES].decode("utf-8", "ignore")
    return out


def _copy(
    cur: psycopg.Cursor[Any],
    table: tuple[str, Sequence[str], Sequence[int]],
    rows: Iterable[Sequence[Any]],
    clean: bool,
    cut: bool = False,
) -> None:
    """Rows into a table with one binary ``COPY``: the server parses one stream instead of
    a statement per row, and the whole batch is one round trip. psycopg sends every ~32 KB
    as it fills, so a lazy ``rows`` is built while the server inserts what came before.
    ``clean``: text made storable first (``_pg_values``); else text with NUL fails the
    ``COPY`` with ``psycopg.DataError``. ``cut``: the indexed text cut to fit (``_cut``)."""
    columns, types, indexed = table
    with cur.copy(f"COPY {columns} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(_pg_values(_cut(row, indexed) if cut else row) if clean else row)


def _write_rows(
    cur: psycopg.Cursor[Any],
    fresh: Mapping[str, Trace],
    stored: set[str],
    clean: bool,
    cut: bool = False,
) -> None:
    """Write whole traces (merged with what was stored: ``stored``) and their index rows.

    The stored traces' rows are deleted first, so every row is new and goes in by ``COPY``
    (which cannot update). The caller holds the traces' advisory locks: no other writer
    adds a row for these ids until this transaction ends.

    The client's biggest part is each trace's ``data`` (JSON and zstd); the server's are
    the span rows, then the trace rows. Half of the ``data`` is encoded while the server
    inserts the spans already sent, the other half while it inserts the traces, so that
    neither side waits through a whole table (benchmarks/README.md).
    """
    if stored:
        ids = sorted(stored)
        for table in ("traces", "trace_tags", "spans"):
            cur.execute(f"DELETE FROM {table} WHERE trace_id = ANY(%s)", (_pg_values(ids),))
    early: dict[str, tuple[Any, ...]] = {}

    def spans() -> Iterator[tuple[Any, ...]]:
        for n, (tid, trace) in enumerate(fresh.items()):
            yield from span_rows(tid, trace)
            if n % 2:
                early[tid] = summary_row(trace)

    def traces() -> Iterator[tuple[Any, ...]]:
        for tid, trace in fresh.items():
            yield early.pop(tid) if tid in early else summary_row(trace)

    _copy(cur, _SPANS, spans(), clean, cut)
    _copy(cur, _TRACES, traces(), clean, cut)
    _copy(cur, _TAGS, tag_rows(fresh), clean, cut)
    write_annotations(_pg_many(cur, cut), "%s", fresh, stored)


def _closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection has something to read: the server ended the session (a
    restart, a terminated backend) and sent its last message, or at least closed the socket.
    An idle session otherwise receives nothing; psycopg only notices on the next query."""
    try:
        return bool(select.select([conn.fileno()], [], [], 0)[0])
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
            if conn is not None and conn.closed:  # not kept until shutdown()
                with self._all_lock:
                    self._all = [e for e in self._all if e[2] is not conn]
            conn = self._adopt(key[0]) or self._connect()
            local.conn, local.key = conn, key
        return conn

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

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The driver's errors (a connection lost mid-request, a refused statement) as a
        StoreError naming the store, as every store reports them; lowtrace's pass through."""
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(f"{self.uri}: {type(exc).__name__}: {exc}") from exc

    def _ensure_schema(self, create: bool) -> None:
        with self._errors():
            conn = self._conn
            with conn.transaction(), conn.cursor() as cur:
                ensure_schema(cur, self.uri, create)

    def export(self, traces: Sequence[Trace]) -> None:
        # Text with NUL, which PostgreSQL text cannot hold, or too long for its index: the
        # server refused the COPY and the transaction rolled back. The batch again, its
        # text made storable, then cut. Rare, so not checked up front (~6 us of the
        # client's CPU per trace, value by value).
        clean = cut = False
        with self._errors():
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
            cur.execute("SELECT data FROM traces WHERE trace_id = ANY(%s)", (_pg_values(ids),))
            stored: set[str] = set()
            for (data,) in cur.fetchall():
                old = Trace.from_bytes(bytes(data))
                tid = old.info.trace_id  # as written, NUL and all (the column has U+FFFD)
                fresh[tid] = merge_traces([old, fresh[tid]])
                stored.add(tid)
            _write_rows(cur, fresh, stored, clean, cut)

    def update_trace(self, trace_id: str, change: Callable[[Trace], Trace]) -> Trace:
        with self._errors():
            try:
                return self._update(trace_id, change, cut=True)
            except psycopg.errors.ProgramLimitExceeded:  # text too long for its index
                return self._update(trace_id, change, cut=True)

    def _update(self, trace_id: str, change: Callable[[Trace], Trace], *, cut: bool) -> Trace:
        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            _lock_traces(cur, [trace_id])
            cur.execute("SELECT data FROM traces WHERE trace_id = %s", _pg_values([trace_id]))
            row = cur.fetchone()
            if row is None:
                raise TraceNotFoundError(f"no stored trace {trace_id} in {self.uri}")
            new = change(Trace.from_bytes(bytes(row[0])))
            _write_rows(cur, {trace_id: new}, {trace_id}, clean=True, cut=cut)
        return new

    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        statements = delete_statements(POSTGRES, trace_ids, older_than_ms)
        if not statements:
            return 0
        with self._errors():
            conn = self._conn
            with conn.transaction(), conn.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, _pg_values(params))
                return cur.rowcount

    def get_trace(self, trace_id: str) -> Trace | None:
        if not storable_text(trace_id):
            return None  # no stored trace can have this id
        with self._errors():
            with self._conn.cursor() as cur:
                cur.execute("SELECT data FROM traces WHERE trace_id = %s", _pg_values([trace_id]))
                row = cur.fetchone()
            return Trace.from_bytes(bytes(row[0])) if row else None

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
        with self._errors():
            left = remaining_s()
            conn = self._conn
            if left is None:
                with conn.cursor() as cur:
                    cur.execute(sql, _pg_values(params))
                    return cur.fetchall()
            try:  # the caller's time limit, as this transaction's statement_timeout
                with conn.transaction(), conn.cursor() as cur:
                    timeout = f"{max(1, int(left * 1000))}ms"
                    cur.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
                    cur.execute(sql, _pg_values(params))
                    return cur.fetchall()
            except psycopg.errors.QueryCanceled:
                raise QueryTimeoutError(
                    f"the search of {self.uri} took longer than its time limit"
                ) from None

    def count(self, filter: str | None = None) -> int:
        query = Query(POSTGRES)
        where = query.where(parse_filter(filter))
        rows = self._fetch(f"SELECT COUNT(*) FROM traces t WHERE {where}", query.params)
        return int(rows[0][0])

    def overview(
        self,
        filter: str | None = None,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        buckets: int = 30,
        top: int = 8,
    ) -> Overview:
        with self._errors():
            conn = self._conn
            with conn.transaction():
                # One statement sorting every trace in range by bucket (see pgoverview.py):
                # in memory, not spilled to disk as with the default 4 MB (1.5x at 100k).
                conn.execute("SET LOCAL work_mem = '64MB'")
                return postgres_overview(self._fetch, filter, start_ms, end_ms, buckets, top)

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
