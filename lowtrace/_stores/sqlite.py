"""``sqlite:///path.db``: the embedded default store, searchable, safe for many writers.

One row per trace (summary columns that filters and sorting use, plus the whole trace as
zstd-compressed JSON), a row per tag and per span for ``tags.*`` and ``span.*`` filters,
all indexed (span rows have no key: a stored trace's are deleted before it is written
again). WAL mode; one ``BEGIN IMMEDIATE`` transaction per exported batch, retried when
another process holds the write lock; each thread uses its own connection (a forked child
opens new ones). A trace continued in another process (W3C ``traceparent``) arrives as a
second fragment with the same id and is merged into the stored tree in the same
transaction. ``PRAGMA user_version`` records the schema version; ``MIGRATIONS`` upgrades
older files step by step (see sqlite_schema.py).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import orjson
import zstandard
from cattrs.errors import BaseValidationError

from lowtrace._model import Trace, merge_traces
from lowtrace._query.budget import remaining_s, timed_out
from lowtrace._query.evaluate import like_match, rlike_match
from lowtrace._query.filter import parse_filter
from lowtrace._query.literals import storable_text
from lowtrace._query.sql import SQLITE, Query, delete_statements, search_page
from lowtrace._stores.annotations import write_annotations
from lowtrace._stores.base import TraceList, TraceStore
from lowtrace._stores.forkgate import ForkGate, fork_gate
from lowtrace._stores.overview import Overview, staged_overview
from lowtrace._stores.sessions import SessionSummary, sql_sessions
from lowtrace._stores.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, SPAN_COLUMNS
from lowtrace._stores.sqlrows import merged_by_id, span_rows, summary_row
from lowtrace.errors import (
    LowtraceError,
    QueryTimeoutError,
    StoreError,
    StoreNotFoundError,
    TraceNotFoundError,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]


_LOCK_RETRIES: Final = 20
_PAGE_SIZE: Final = 16384  # of new files
_WAL_BYTES: Final = 64 * 1024 * 1024  # WAL size that triggers a checkpoint


def _retry_locked(conn: sqlite3.Connection, sql: str, uri: str) -> None:
    """Run ``sql``, retried with backoff while another process holds the database lock."""
    for attempt in range(_LOCK_RETRIES):
        try:
            conn.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(min(0.01 * 2**attempt, 0.5))
    raise StoreError(f"{uri} stayed locked by another writer")


#: Connections a forked child inherited: kept, never used or closed (see _after_fork_in_child).
_ABANDONED: Final[list[sqlite3.Connection]] = []


_TRACE_COLUMNS: Final = (
    "trace_id",
    "name",
    "status",
    "status_message",
    "start_time_ms",
    "end_time_ms",
    "start_time_ns",
    "end_time_ns",
    "duration_ms",
    "span_count",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "data",
    "session_id",
    "user_id",
)


def _trace_row(trace: Trace) -> tuple[Any, ...]:
    """A ``traces`` row with the session and user ids (written here, not by a later UPDATE)."""
    info = trace.info
    return (*summary_row(trace), info.session_id, info.user_id)


def _insert_many(
    conn: sqlite3.Connection,
    insert: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    nullable: Sequence[int],
) -> None:
    """``executemany`` of ``insert`` (``INSERT ... INTO table``) for these rows; rows whose
    ``nullable`` columns are all NULL go without them (the columns default to NULL).

    The sqlite3 module binds every None through its adapter lookup, a failed attribute
    lookup that formats an error message: with 4 to 8 NULLs a trace, that was about a tenth
    of an export's instructions. ``rows`` is consumed lazily, one row at a time: a batch's
    rows (and blobs) are never all held at once, which also spares the garbage collector.
    """
    assert len(nullable) > 1  # itemgetter of one index returns the item, not a tuple
    kept = [i for i in range(len(columns)) if i not in nullable]
    nulls, keep, none = itemgetter(*nullable), itemgetter(*kept), (None,) * len(nullable)
    sql = {
        short: f"{insert} ({', '.join(names)}) VALUES ({','.join('?' * len(names))})"
        for short, names in ((False, columns), (True, [columns[i] for i in kept]))
    }
    source = iter(rows)
    # Consecutive rows of one kind per executemany: the rows keep their order (rowids),
    # which reads that do not sort fully (ties) give back. ``after`` is the first row of
    # the next run, read by the run before it.
    after: list[tuple[Any, ...]] = []

    def run(first: tuple[Any, ...], short: bool) -> Iterator[tuple[Any, ...]]:
        row: tuple[Any, ...] | None = first
        while row is not None:
            if (nulls(row) == none) is not short:
                after.append(row)
                return
            yield keep(row) if short else row
            row = next(source, None)

    row = next(source, None)
    while row is not None:
        conn.executemany(sql[nulls(row) == none], run(row, nulls(row) == none))
        row = after.pop() if after else None


def _lt_like(value: str | None, pattern: str | None, insensitive: int, negate: int) -> int:
    if value is None:
        return 0  # a missing value matches nothing, also under NOT LIKE
    matched = like_match(value, pattern, insensitive)
    return int(not matched if negate else matched)


def _lt_rlike(value: str | None, pattern: str | None, negate: int) -> int:
    if value is None or pattern is None:
        return 0
    matched = rlike_match(value, pattern)
    return int(not matched if negate else matched)


@contextmanager
def _as_store_error(path: Path) -> Iterator[None]:
    """SQLite's and decoding's own errors (not a database, corrupted, a damaged row) as a
    StoreError naming the file; lowtrace's own errors pass through."""
    try:
        yield
    except LowtraceError:
        raise
    except (sqlite3.Error, zstandard.ZstdError, orjson.JSONDecodeError) as exc:
        raise StoreError(f"{path}: {exc}") from exc
    except OverflowError as exc:  # an int past SQLite's 64 bits (a record built by hand)
        raise StoreError(f"{path}: a number is too large to store: {exc}") from exc
    except (BaseValidationError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: a stored trace is damaged: {exc!r}") from exc


def _absolute_hint(path: Path) -> str:
    """A missing relative store that exists as an absolute path: the URI lost a slash."""
    absolute = Path("/", path)
    if path.is_absolute() or not absolute.exists():
        return ""
    return (
        f" (did you mean sqlite:///{absolute}? an absolute path takes four slashes in a "
        "sqlite URI: sqlite:///relative.db, sqlite:////absolute/path.db)"
    )


class SQLiteStore(TraceStore):
    """Traces in one SQLite file; every method may be called from any thread or process."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self.uri = f"sqlite:///{self.path}"
        if not self.path.exists():
            if not create:
                raise StoreNotFoundError(
                    f"no lowtrace store at {self.path.resolve()}{_absolute_hint(self.path)}"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all_lock = threading.Lock()  # guards _all
        # Each connection with the thread that holds it (a thread-local reference too).
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._generation = 0  # bumped by shutdown() and in a forked child: later use reconnects
        # Every use of SQLite runs inside the gate, so a fork never copies a connection
        # in the middle of a statement or transaction.
        self._gate = ForkGate(self._after_fork_in_child)
        with _as_store_error(self.path):
            self._ensure_schema(create)

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> SQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``."""
        rest = uri.split("://", 1)[1]
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise StoreError(f"sqlite URI needs a file path: {uri!r} (e.g. sqlite:///traces.db)")
        return cls(path, create=create)

    # -- connections ------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """Fresh locks and connections in a forked child; the parent's are never touched.

        Closing a copied connection could roll back or checkpoint the parent's database
        state, so the copies are kept (unused) for the child's lifetime instead.
        """
        self._all_lock = threading.Lock()
        _ABANDONED.extend(conn for _, conn in self._all)
        self._all = []
        self._generation += 1
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        # A new file gets 16 KiB pages (before WAL mode fixes its size; an existing file
        # keeps its own). Random trace ids dirty a page of each index per trace, and a
        # commit writes every dirty page to the WAL, one frame at a time: fewer, larger
        # pages made commits ~35% cheaper at 100k traces (see benchmarks/README.md).
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        # Switching a new file to WAL can be refused at once while another process does the
        # same (SQLite does not always wait out the busy timeout there): retried like writes.
        _retry_locked(conn, "PRAGMA journal_mode = WAL", self.uri)
        conn.execute("PRAGMA synchronous = NORMAL")
        # Random trace ids spread index writes over the whole file: keep more of it cached.
        conn.execute("PRAGMA cache_size = -65536")
        # Fewer, larger checkpoints: one per 64 MiB of WAL, whatever the file's page size.
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_BYTES // page_size}")
        conn.create_function("lt_like", 4, _lt_like, deterministic=True)
        conn.create_function("lt_rlike", 3, _lt_rlike, deterministic=True)
        with self._all_lock:
            self._all.append((threading.current_thread(), conn))
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        key = (os.getpid(), self._generation)  # a forked child needs its own connections
        if conn is None or local.key != key:
            conn = local.conn = self._adopt() or self._connect()
            local.key = key
        return conn

    def _adopt(self) -> sqlite3.Connection | None:
        """The connection of a thread that has ended, now this thread's: a web server's
        worker threads come and go, and each new one would otherwise open (and leak) a
        connection of its own, with a cold page cache (up to 64 MiB each)."""
        this = threading.current_thread()
        with self._all_lock:
            for index, (thread, conn) in enumerate(self._all):
                if not thread.is_alive() and not conn.in_transaction:
                    self._all[index] = (this, conn)
                    return conn
        return None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, retried while another writer holds the lock."""
        with fork_gate(self._gate), _as_store_error(self.path), self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        _retry_locked(conn, "BEGIN IMMEDIATE", self.uri)
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one read, inside the fork gate and the caller's time limit."""
        with fork_gate(self._gate), _as_store_error(self.path):
            conn = self._conn
            if remaining_s() is None:
                return conn.execute(sql, params).fetchall()
            # Interrupts the statement (every 1,000 VM steps it asks) once time is up.
            conn.set_progress_handler(timed_out, 1000)
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if timed_out() and "interrupt" in str(exc):
                    raise QueryTimeoutError(
                        f"the search of {self.path} took longer than its time limit"
                    ) from None
                raise
            finally:
                conn.set_progress_handler(None, 0)

    def _ensure_schema(self, create: bool) -> None:
        version = self._fetch("PRAGMA user_version")[0][0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}; this lowtrace reads up to "
                f"{SCHEMA_VERSION}: upgrade lowtrace"
            )
        if version == 0 and not create:
            raise StoreNotFoundError(f"{self.path} is not a lowtrace store")
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process?
            for migrate in MIGRATIONS[version:]:
                migrate(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- writing ----------------------------------------------------------------------------

    def export(self, traces: Sequence[Trace]) -> None:
        fresh = merged_by_id(traces)
        with self._write() as conn:
            ids = list(fresh)
            stored: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for tid, data in conn.execute(
                    f"SELECT trace_id, data FROM traces WHERE trace_id IN ({marks})", chunk
                ):
                    # Another fragment of this trace is stored: merge them into one tree.
                    fresh[tid] = merge_traces([Trace.from_bytes(data), fresh[tid]])
                    stored.add(tid)
            self._write_rows(conn, fresh, stored)

    def update_trace(self, trace_id: str, change: Callable[[Trace], Trace]) -> Trace:
        with self._write() as conn:
            row = conn.execute("SELECT data FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
            if row is None:
                raise TraceNotFoundError(f"no stored trace {trace_id} in {self.uri}")
            new = change(Trace.from_bytes(row[0]))
            conn.execute("DELETE FROM trace_tags WHERE trace_id = ?", (trace_id,))
            self._write_rows(conn, {trace_id: new}, {trace_id})
        return new

    def _write_rows(
        self, conn: sqlite3.Connection, fresh: Mapping[str, Trace], stored: set[str]
    ) -> None:
        """Write whole traces (merged with what was stored: ``stored``) and their index rows."""
        _insert_many(
            conn,
            "INSERT OR REPLACE INTO traces",
            _TRACE_COLUMNS,
            map(_trace_row, fresh.values()),
            # status_message, token usage, session and user ids: often absent
            nullable=(3, 10, 11, 12, 14, 15),
        )
        conn.executemany(
            "INSERT OR REPLACE INTO trace_tags (trace_id, key, value) VALUES (?, ?, ?)",
            ((tid, k, v) for tid, t in fresh.items() for k, v in t.info.tags.items()),
        )
        # Span rows have no key (see _migrate_to_5): a stored trace's old ones go first.
        conn.executemany("DELETE FROM spans WHERE trace_id = ?", [(tid,) for tid in stored])
        _insert_many(
            conn,
            "INSERT INTO spans",
            SPAN_COLUMNS,
            (row for tid, t in fresh.items() for row in span_rows(tid, t)),
            nullable=(6, 7, 8),  # model and token usage: on model calls only
        )
        write_annotations(conn.executemany, "?", fresh, stored, ids_written=True)

    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        statements = delete_statements(SQLITE, trace_ids, older_than_ms)
        if not statements:
            return 0
        with self._write() as conn:
            for sql, params in statements:
                cursor = conn.execute(sql, params)
            return cursor.rowcount

    # -- reading ----------------------------------------------------------------------------

    def get_trace(self, trace_id: str) -> Trace | None:
        if not storable_text(trace_id):
            return None  # no stored trace can have this id
        rows = self._fetch("SELECT data FROM traces WHERE trace_id = ?", (trace_id,))
        if not rows:
            return None
        with _as_store_error(self.path):
            return Trace.from_bytes(rows[0][0])

    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        with _as_store_error(self.path):  # a damaged row
            return search_page(SQLITE, self._fetch, filter, order_by, max_results, page_token)

    def count(self, filter: str | None = None) -> int:
        query = Query(SQLITE)
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
        # The filter once, into a temporary table of this thread's own connection.
        return staged_overview(SQLITE, self._fetch, filter, start_ms, end_ms, buckets, top)

    def sessions(
        self, filter: str | None = None, *, max_results: int = 100
    ) -> list[SessionSummary]:
        return sql_sessions(SQLITE, self._fetch, filter, max_results)

    def shutdown(self) -> None:
        """Close every connection; the store reconnects if it is used again."""
        with fork_gate(self._gate):
            with self._all_lock:
                connections, self._all = self._all, []
                self._generation += 1
            for _, conn in connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
