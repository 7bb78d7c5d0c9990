"""SQLite files: span and tag rows in rowid tables (fast appends); older layouts still work."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from lowtrace import SpanType, Trace, TracingClient
from lowtrace._stores.sqlite import SQLiteStore

#: The span and tag tables as files made before rowid tables had them.
_OLD_TABLES = {
    "spans": (
        """CREATE TABLE spans (
            trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
            name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        ) WITHOUT ROWID""",
        [
            "CREATE INDEX spans_name ON spans (name)",
            "CREATE INDEX spans_type ON spans (type)",
            "CREATE INDEX spans_status ON spans (status)",
        ],
    ),
    "trace_tags": (
        """CREATE TABLE trace_tags (
            trace_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (trace_id, key)
        ) WITHOUT ROWID""",
        ["CREATE INDEX trace_tags_kv ON trace_tags (key, value)"],
    ),
}


def record(client: TracingClient, name: str, kind: SpanType, user: str) -> Trace:
    root = client.start_trace("agent", tags={"user": user})
    span = client.start_span(name, trace_id=root.trace_id, parent_id=root.span_id, span_type=kind)
    span.end(outputs={"ok": True})
    trace = client.end_trace(root.trace_id)
    assert trace is not None
    return trace


def table_sql(path: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))


def test_new_files_keep_span_and_tag_rows_in_rowid_tables(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "t.db").shutdown()
    tables = table_sql(tmp_path / "t.db")
    assert "WITHOUT ROWID" not in tables["spans"].upper()
    assert "WITHOUT ROWID" not in tables["trace_tags"].upper()


def test_a_file_with_the_older_table_layout_is_read_and_written_as_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    uri = f"sqlite:///{path}"
    with TracingClient(uri) as client:
        first = record(client, "search", SpanType.RETRIEVER, "u1")
        assert client.flush(5)
    with contextlib.closing(sqlite3.connect(path)) as conn:  # back to the older layout
        for table, (create, indexes) in _OLD_TABLES.items():
            conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
            for index in indexes:
                conn.execute(f"DROP INDEX IF EXISTS {index.split()[2]}")
            conn.execute(create)
            for index in indexes:
                conn.execute(index)
            conn.execute(f"INSERT INTO {table} SELECT * FROM old_{table}")
            conn.execute(f"DROP TABLE old_{table}")
        conn.commit()
    assert "WITHOUT ROWID" in table_sql(path)["spans"].upper()

    with TracingClient(uri) as client:
        second = record(client, "calc", SpanType.TOOL, "u2")
        assert client.flush(5)
        assert client.search_traces("span.type = 'TOOL'") == [second]
        assert client.search_traces("span.name = 'search'") == [first]
        assert client.search_traces("tags.user = 'u1'") == [first]
        assert client.count_traces() == 2
        assert client.delete_traces([first.info.trace_id]) == 1
        assert client.search_traces("tags.user = 'u1'") == []
        assert client.search_traces() == [second]
