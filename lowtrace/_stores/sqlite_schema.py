"""The SQLite store's schema: the migrations that make a new file or upgrade an older one.

``PRAGMA user_version`` records a file's version; ``MIGRATIONS[i]`` upgrades it from i to
i + 1, inside the write transaction ``SQLiteStore`` opens for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

from lowtrace._model import Trace
from lowtrace._stores.annotations import SQL_TABLES
from lowtrace._stores.overview import OVERVIEW_INDEXES, SPANS_TRACE_INDEX
from lowtrace._stores.sqlrows import span_rows

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SPAN_COLUMNS"]


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    for statement in (
        """CREATE TABLE traces (
            trace_id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            status_message TEXT,
            start_time_ms INTEGER NOT NULL,
            end_time_ms INTEGER NOT NULL,
            start_time_ns INTEGER NOT NULL,
            end_time_ns INTEGER NOT NULL,
            duration_ms REAL NOT NULL,
            span_count INTEGER NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            total_tokens INTEGER,
            data BLOB NOT NULL
        )""",
        "CREATE INDEX traces_start ON traces (start_time_ns, trace_id)",
        "CREATE INDEX traces_start_ms ON traces (start_time_ms)",
        "CREATE INDEX traces_status ON traces (status, start_time_ms)",
        "CREATE INDEX traces_duration ON traces (duration_ms)",
        "CREATE INDEX traces_name ON traces (name)",
        "CREATE INDEX traces_tokens ON traces (total_tokens)",
        """CREATE TABLE trace_tags (
            trace_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (trace_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX trace_tags_kv ON trace_tags (key, value)",
        # Span rows: a rowid table (rows append) with one covering index for the span.*
        # filters, which probe it per trace as EXISTS (trace_id = ? AND type = ?). Files
        # made before this have a WITHOUT ROWID table with spans_name / spans_type /
        # spans_status: the same columns and queries, but four indexes keyed on random
        # trace ids, so 2-3x slower span inserts at 100k traces (see benchmarks/README.md).
        # Version 5 rebuilds both without the primary key.
        """CREATE TABLE spans (
            trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
            name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        )""",
        "CREATE INDEX spans_trace ON spans (trace_id, type, name, status)",
    ):
        conn.execute(statement)


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    # Newest-first pages of one status read the index in order instead of sorting every
    # trace of that status (25 ms -> 3 ms for 10,000 ERROR traces in 100,000); as in PostgreSQL.
    conn.execute("DROP INDEX traces_status")
    conn.execute("CREATE INDEX traces_status ON traces (status, start_time_ns)")


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    # Metadata, session and user ids, assessments (see annotations.py). Stored traces of
    # version 2 have none of them: the new columns and tables start empty.
    for statement in SQL_TABLES:
        conn.execute(statement.format(text="TEXT", real="REAL", rowid=" WITHOUT ROWID"))


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    # What the dashboard sums per span (duration, model, counted token usage, the trace's
    # start), filled in for the traces already stored; covering indexes for its queries.
    for column in (
        "duration_ms REAL",
        "model TEXT",
        "input_tokens INTEGER",
        "output_tokens INTEGER",
        "trace_start_ms INTEGER",
    ):
        conn.execute(f"ALTER TABLE spans ADD COLUMN {column}")
    for statement in OVERVIEW_INDEXES:
        conn.execute(statement)
    last = -1
    while True:
        rows = conn.execute(
            "SELECT rowid, trace_id, data FROM traces WHERE rowid > ? ORDER BY rowid LIMIT 500",
            (last,),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        conn.executemany(
            "UPDATE spans SET duration_ms = ?, model = ?, input_tokens = ?, output_tokens = ?, "
            "trace_start_ms = ? WHERE trace_id = ? AND span_id = ?",
            [
                (*row[5:], tid, row[1])
                for _, tid, data in rows
                for row in span_rows(tid, Trace.from_bytes(data))
            ],
        )


#: The columns of a ``spans`` row, in table order (versions 4 and later).
SPAN_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "name",
    "type",
    "status",
    "duration_ms",
    "model",
    "input_tokens",
    "output_tokens",
    "trace_start_ms",
)


def _migrate_to_5(conn: sqlite3.Connection) -> None:
    # Span rows without a primary key: its (trace_id, span_id) index put every span on one
    # more random B-tree page, the most expensive part of an export (see
    # benchmarks/README.md). Writers delete a stored trace's span rows before they write
    # its new ones instead. Also rebuilds the WITHOUT ROWID table of files older than that.
    conn.execute("ALTER TABLE spans RENAME TO spans_before_5")  # its indexes go with it
    conn.execute(
        """CREATE TABLE spans (
            trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
            name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
            duration_ms REAL, model TEXT, input_tokens INTEGER, output_tokens INTEGER,
            trace_start_ms INTEGER
        )"""
    )
    columns = ", ".join(SPAN_COLUMNS)
    conn.execute(
        f"INSERT INTO spans ({columns}) SELECT {columns} FROM spans_before_5 "
        "ORDER BY trace_id, span_id"
    )
    conn.execute("DROP TABLE spans_before_5")
    # Also covers the dashboard's span ranking under a filter (see SPANS_TRACE_INDEX).
    conn.execute(SPANS_TRACE_INDEX)
    for statement in OVERVIEW_INDEXES:
        conn.execute(statement)


#: ``MIGRATIONS[i]`` upgrades a file from schema version i to i + 1.
MIGRATIONS: Final[list[Callable[[sqlite3.Connection], None]]] = [
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
    _migrate_to_5,
]
SCHEMA_VERSION: Final = len(MIGRATIONS)
