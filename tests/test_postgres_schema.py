"""The PostgreSQL store's schema: a database made by an older version is migrated in place,
and ends with exactly the indexes a new one has (schema 4: fewer index entries per trace)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from lowtrace import SpanType, TracingClient
from tests.postgres_server import postgres_server

psycopg = pytest.importorskip("psycopg")

#: What schema 3 had that schema 4 replaced, restored to make a version-3 database.
_VERSION_3 = (
    "DROP INDEX spans_trace",
    "ALTER TABLE spans ADD PRIMARY KEY (trace_id, span_id)",
    "CREATE INDEX spans_name ON spans (name)",
    "CREATE INDEX traces_start_ms ON traces (start_time_ms)",
    "DROP INDEX traces_session",
    "DROP INDEX traces_user",
    "DROP INDEX traces_tokens",
    "CREATE INDEX traces_session ON traces (session_id, start_time_ns)",
    "CREATE INDEX traces_user ON traces (user_id)",
    "CREATE INDEX traces_tokens ON traces (total_tokens)",
    "UPDATE lowtrace_schema SET version = 3",
)


def _indexes(uri: str) -> set[tuple[str, str]]:
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    return {(name, definition) for name, definition in rows}


def _record(client: TracingClient, name: str, **ids: Any) -> str:
    root = client.start_trace(name, tags={"env": "prod"})
    if ids:
        client.set_trace_metadata(root.trace_id, **ids)
    client.start_span(
        "search", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.TOOL
    ).end()
    client.end_trace(root.trace_id)
    return root.trace_id


def _found(client: TracingClient, filter: str) -> set[str]:
    return {t.info.trace_id for t in client.search_traces(filter)}


def test_a_version_3_postgres_store_is_migrated_to_the_new_indexes(postgres_uri: str) -> None:
    with TracingClient(postgres_uri) as client:
        old = _record(client, "old", session_id="s1")
        assert client.flush(10)
    fresh_indexes = _indexes(postgres_uri)
    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        for statement in _VERSION_3:
            conn.execute(statement)
    assert _indexes(postgres_uri) != fresh_indexes

    with TracingClient(postgres_uri) as client:
        new = _record(client, "new")
        assert client.flush(10)
        assert _found(client, "span.type = 'TOOL' AND span.name = 'search'") == {old, new}
        assert _found(client, "session_id = 's1'") == {old}
        assert _found(client, "session_id IS NULL") == {new}
        # A trace written again replaces its span rows (no key enforces one per span).
        client.set_trace_tags(old, {"env": "dev"})
        assert _found(client, "tags.env = 'dev' AND span.name = 'search'") == {old}

    assert _indexes(postgres_uri) == fresh_indexes
    with psycopg.connect(postgres_uri) as conn:
        assert conn.execute("SELECT version FROM lowtrace_schema").fetchone() == (4,)
        spans = conn.execute("SELECT COUNT(*) FROM spans WHERE trace_id = %s", (old,)).fetchone()
        assert spans == (2,)


def test_the_benchmark_server_runs_with_fsync_as_asked() -> None:
    # The store benchmark quotes "fsync on": the throwaway server once ignored the setting.
    try:
        server = postgres_server(fsync=True)
        dsn = server.__enter__()
    except (FileNotFoundError, OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("LOWTRACE_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL tests must run here but the server did not start: {exc}")
        pytest.skip(f"PostgreSQL tests did NOT run: no server could be started ({exc})")
    try:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
    finally:
        server.__exit__(None, None, None)
