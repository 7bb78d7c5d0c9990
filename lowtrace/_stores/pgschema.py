"""The PostgreSQL store's schema: the migrations from an empty database to the current
version, run once per database under an advisory lock (concurrent first starts are safe).

A migration is never edited once released: a database made by any earlier version is
brought up to date by running the later ones in order. The version lives in
``lowtrace_schema``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from lowtrace._model import Trace
from lowtrace._stores.annotations import SQL_TABLES
from lowtrace._stores.overview import OVERVIEW_INDEXES
from lowtrace._stores.sqlrows import span_rows
from lowtrace.errors import StoreError, StoreNotFoundError

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "ensure_schema"]

_SCHEMA_LOCK: Final = 0x10F7_7ACE  # advisory lock id for migrations


def _migrate_to_1(cur: psycopg.Cursor[Any]) -> None:
    for statement in (
        """CREATE TABLE traces (
            trace_id TEXT COLLATE "C" PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            status_message TEXT COLLATE "C",
            start_time_ms BIGINT NOT NULL,
            end_time_ms BIGINT NOT NULL,
            start_time_ns BIGINT NOT NULL,
            end_time_ns BIGINT NOT NULL,
            duration_ms DOUBLE PRECISION NOT NULL,
            span_count INTEGER NOT NULL,
            input_tokens BIGINT,
            output_tokens BIGINT,
            total_tokens BIGINT,
            data BYTEA NOT NULL
        )""",
        "CREATE INDEX traces_start ON traces (start_time_ns, trace_id)",
        "CREATE INDEX traces_start_ms ON traces (start_time_ms)",
        "CREATE INDEX traces_status ON traces (status, start_time_ns)",
        "CREATE INDEX traces_duration ON traces (duration_ms)",
        "CREATE INDEX traces_name ON traces (name)",
        "CREATE INDEX traces_tokens ON traces (total_tokens)",
        """CREATE TABLE trace_tags (
            trace_id TEXT COLLATE "C" NOT NULL,
            key TEXT COLLATE "C" NOT NULL,
            value TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (trace_id, key)
        )""",
        "CREATE INDEX trace_tags_kv ON trace_tags (key, value)",
        """CREATE TABLE spans (
            trace_id TEXT COLLATE "C" NOT NULL,
            span_id TEXT COLLATE "C" NOT NULL,
            name TEXT COLLATE "C" NOT NULL,
            type TEXT COLLATE "C" NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        )""",
        "CREATE INDEX spans_name ON spans (name)",
        "CREATE INDEX spans_type ON spans (type)",
    ):
        cur.execute(statement)


def _migrate_to_2(cur: psycopg.Cursor[Any]) -> None:
    # Metadata, session and user ids, assessments (see annotations.py).
    for statement in SQL_TABLES:
        cur.execute(statement.format(text='TEXT COLLATE "C"', real="DOUBLE PRECISION", rowid=""))


def _migrate_to_3(cur: psycopg.Cursor[Any]) -> None:
    # What the dashboard sums per span (duration, model, counted token usage, the trace's
    # start), filled in for the traces already stored; covering indexes for its queries.
    cur.execute(
        "ALTER TABLE spans ADD COLUMN IF NOT EXISTS duration_ms DOUBLE PRECISION, "
        'ADD COLUMN IF NOT EXISTS model TEXT COLLATE "C", '
        "ADD COLUMN IF NOT EXISTS input_tokens BIGINT, "
        "ADD COLUMN IF NOT EXISTS output_tokens BIGINT, "
        "ADD COLUMN IF NOT EXISTS trace_start_ms BIGINT"
    )
    for statement in OVERVIEW_INDEXES:
        cur.execute(statement)
    last = ""
    while True:
        cur.execute(
            "SELECT trace_id, data FROM traces WHERE trace_id > %s ORDER BY trace_id LIMIT 500",
            (last,),
        )
        rows = cur.fetchall()
        if not rows:
            return
        last = rows[-1][0]
        cur.executemany(
            "UPDATE spans SET duration_ms = %s, model = %s, input_tokens = %s, "
            "output_tokens = %s, trace_start_ms = %s WHERE trace_id = %s AND span_id = %s",
            [
                (*row[5:], tid, row[1])
                for tid, data in rows
                for row in span_rows(tid, Trace.from_bytes(bytes(data)))
            ],
        )


#: Indexes of the nullable trace columns, without the traces that have no value.
_NULLABLE_INDEXES: Final = (
    "CREATE INDEX traces_session ON traces (session_id, start_time_ns) "
    "WHERE session_id IS NOT NULL",
    "CREATE INDEX traces_user ON traces (user_id) WHERE user_id IS NOT NULL",
    "CREATE INDEX traces_tokens ON traces (total_tokens) WHERE total_tokens IS NOT NULL",
)


def _migrate_to_4(cur: psycopg.Cursor[Any]) -> None:
    # Fewer index entries per trace written (34 -> 25 for 5 spans without session, user or
    # token usage), each one server CPU and WAL. The spans' key becomes an index by trace
    # that covers what ``span.*`` filters probe (SQLite's layout: no heap visit per trace;
    # a trace's rows are rewritten whole, so no key is needed). ``spans_name`` and
    # ``traces_start_ms`` were prefixes of the overview's covering indexes. The nullable
    # columns index only their values (every search on them tests ``IS NOT NULL``).
    # ``spans_type`` stays: without it a type few traces have scans every span row.
    for statement in (
        "ALTER TABLE spans DROP CONSTRAINT IF EXISTS spans_pkey",
        "DROP INDEX IF EXISTS spans_name",
        "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id, type, name, status)",
        "DROP INDEX IF EXISTS traces_start_ms",
        "DROP INDEX IF EXISTS traces_session",
        "DROP INDEX IF EXISTS traces_user",
        "DROP INDEX IF EXISTS traces_tokens",
        *_NULLABLE_INDEXES,
    ):
        cur.execute(statement)


#: ``_MIGRATIONS[i]`` upgrades a database from schema version i to i + 1.
_MIGRATIONS: Final[list[Callable[[psycopg.Cursor[Any]], None]]] = [
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
]
SCHEMA_VERSION: Final = len(_MIGRATIONS)


def ensure_schema(cur: psycopg.Cursor[Any], uri: str, create: bool) -> None:
    """Create or migrate the tables, in the caller's transaction (``uri``: for messages)."""
    cur.execute("SELECT to_regclass('lowtrace_schema') IS NOT NULL")
    exists = cur.fetchone()[0]  # type: ignore[index]
    if not exists and not create:
        raise StoreNotFoundError(f"{uri} has no lowtrace store")
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    cur.execute("CREATE TABLE IF NOT EXISTS lowtrace_schema (version INTEGER NOT NULL)")
    cur.execute("SELECT version FROM lowtrace_schema")
    row = cur.fetchone()
    version = row[0] if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{uri} has schema version {version}; this lowtrace reads up to "
            f"{SCHEMA_VERSION}: upgrade lowtrace"
        )
    for migrate in _MIGRATIONS[version:]:
        migrate(cur)
    cur.execute("DELETE FROM lowtrace_schema")
    cur.execute("INSERT INTO lowtrace_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
