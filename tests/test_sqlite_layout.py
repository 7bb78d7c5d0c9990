"""SQLite files: span rows in a rowid table (fast appends); the older layout still works."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from lowtrace import SpanType, Trace, TracingClient
from lowtrace._stores.sqlite import SQLiteStore

#: The span table of files made before it was a rowid table.
_OLD_SPANS = [
    """CREATE TABLE spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
        PRIMARY KEY (trace_id, span_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX spans_name ON spans (name)",
    "CREATE INDEX spans_type ON spans (type)",
    "CREATE INDEX spans_status ON spans (status)",
]


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


def test_new_files_keep_span_rows_in_a_rowid_table_with_one_probe_index(
    tmp_path: Path,
) -> None:
    SQLiteStore(tmp_path / "t.db").shutdown()
    assert "WITHOUT ROWID" not in table_sql(tmp_path / "t.db")["spans"].upper()
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT 1 FROM traces t WHERE EXISTS (SELECT 1 FROM spans s "
                "WHERE s.trace_id = t.trace_id AND s.type = 'TOOL')"
            )
        )
    assert "spans_trace (trace_id=? AND type=?)" in plan


def test_a_file_with_the_older_span_table_is_read_and_written_as_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    uri = f"sqlite:///{path}"
    with TracingClient(uri) as client:
        first = record(client, "search", SpanType.RETRIEVER, "u1")
        assert client.flush(5)
    with contextlib.closing(sqlite3.connect(path)) as conn:  # back to a version-3 file
        conn.execute("ALTER TABLE spans RENAME TO new_spans")  # of the older layout
        conn.execute("DROP INDEX spans_trace")
        for statement in _OLD_SPANS:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO spans SELECT trace_id, span_id, name, type, status FROM new_spans"
        )
        conn.execute("DROP TABLE new_spans")  # and the dashboard's indexes with it
        conn.execute("PRAGMA user_version = 3")
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
    assert "WITHOUT ROWID" in table_sql(path)["spans"].upper()  # upgraded in place, kept
