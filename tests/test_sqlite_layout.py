"""SQLite files: span rows in a rowid table without a key (fast appends); files of the
older layouts are rebuilt in place and keep their spans."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from lowtrace import SpanType, Trace, TracingClient
from lowtrace._stores.overview import OVERVIEW_INDEXES
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


def test_a_file_with_the_oldest_span_table_is_rebuilt_and_keeps_its_spans(
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
    assert "WITHOUT ROWID" not in table_sql(path)["spans"].upper()  # rebuilt in place


#: The span table of schema version 4: a rowid table keyed by (trace_id, span_id).
_KEYED_SPANS = [
    """CREATE TABLE spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
        duration_ms REAL, model TEXT, input_tokens INTEGER, output_tokens INTEGER,
        trace_start_ms INTEGER,
        PRIMARY KEY (trace_id, span_id)
    )""",
    "CREATE INDEX spans_trace ON spans (trace_id, type, name, status)",
    *(s for s in OVERVIEW_INDEXES if " ON spans " in s),
]


def index_names(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {name for (name,) in rows}


def test_a_version_4_file_loses_the_span_key_and_keeps_its_rows_and_indexes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    uri = f"sqlite:///{path}"
    with TracingClient(uri) as client:
        first = record(client, "search", SpanType.RETRIEVER, "u1")
        assert client.flush(5)
    indexes = index_names(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:  # back to a version-4 file
        conn.execute("ALTER TABLE spans RENAME TO new_spans")
        for index in ("spans_trace", *(i for i in indexes if i.startswith("spans_"))):
            conn.execute(f"DROP INDEX IF EXISTS {index}")
        for statement in _KEYED_SPANS:
            conn.execute(statement)
        conn.execute("INSERT INTO spans SELECT * FROM new_spans")
        conn.execute("DROP TABLE new_spans")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    assert "PRIMARY KEY" in table_sql(path)["spans"].upper()

    store = SQLiteStore(path, create=False)
    assert store.search_traces("span.type = 'RETRIEVER'") == [first]
    assert sum(s.count for s in store.overview(top=100).slowest) == 2
    store.shutdown()
    assert "PRIMARY KEY" not in table_sql(path)["spans"].upper()
    assert index_names(path) == indexes  # the probe's and the dashboard's, none left behind


def test_a_trace_written_again_keeps_one_span_row_per_span(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    with TracingClient(store) as client:
        trace = record(client, "search", SpanType.RETRIEVER, "u1")
        assert client.flush(5)
    tid = trace.info.trace_id
    store.update_trace(tid, lambda t: t)  # what adding a tag or an assessment does
    store.export([trace])  # the same trace again (a retried batch)
    twice = Trace(trace.info, (*trace.spans, trace.spans[-1]))  # one span id twice
    store.export([twice])
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        rows = conn.execute("SELECT span_id FROM spans WHERE trace_id = ?", (tid,)).fetchall()
    assert sorted(span_id for (span_id,) in rows) == sorted(s.span_id for s in trace.spans)
    store.shutdown()


def test_new_files_get_large_pages_and_older_files_keep_theirs(tmp_path: Path) -> None:
    def pragmas(store: SQLiteStore) -> tuple[int, int]:
        conn = store._conn
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return page_size, page_size * conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]

    store = SQLiteStore(tmp_path / "new.db")
    assert pragmas(store) == (16384, 64 * 1024 * 1024)  # a checkpoint per 64 MiB of WAL
    store.shutdown()
    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("PRAGMA journal_mode = WAL")  # the size is fixed from here on
    store = SQLiteStore(tmp_path / "old.db")
    assert pragmas(store) == (4096, 64 * 1024 * 1024)
    with TracingClient(store) as client:
        trace = record(client, "search", SpanType.RETRIEVER, "u1")
        assert client.flush(5)
    assert store.get_trace(trace.info.trace_id) == trace
    store.shutdown()
