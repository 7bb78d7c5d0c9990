"""How the SQLite store writes a batch: every column of every row, whatever mix of traces
with and without the often-absent values (status message, token usage, session and user
ids) a batch carries, rows in trace-id order, and nothing held back on a failure."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import attrs
import pytest

from lowtrace import SpanType, Trace, TracingClient
from lowtrace._stores.sqlite import SQLiteStore
from lowtrace.errors import StoreError


def record(client: TracingClient, n: int) -> Trace:
    """Trace ``n``: every third has an error message, every fourth a model call with token
    usage, every other a session and a user (so a batch mixes every kind of row)."""
    root = client.start_trace(f"agent{n}", tags={"n": str(n)})
    if n % 2:
        client.set_trace_metadata(root.trace_id, session_id=f"s{n % 5}", user_id=f"u{n}")
    span = client.start_span(
        "llm", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.CHAT_MODEL
    )
    if n % 4 == 0:
        span.set_token_usage(input_tokens=n, output_tokens=1)
    span.end()
    failed = n % 3 == 0
    trace = client.end_trace(
        root.trace_id,
        status="ERROR" if failed else None,
        status_message=f"failed {n}" if failed else None,
    )
    assert trace is not None
    return trace


def test_a_mixed_batch_stores_every_column_in_trace_id_order(tmp_path: Path) -> None:
    with TracingClient("memory://") as client:
        traces = [record(client, n) for n in range(40)]
    store = SQLiteStore(tmp_path / "t.db")
    store.export(traces)
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        rows = conn.execute(
            "SELECT trace_id, name, status_message, total_tokens, session_id, user_id "
            "FROM traces ORDER BY rowid"
        ).fetchall()
        tags = conn.execute("SELECT trace_id, value FROM trace_tags ORDER BY trace_id").fetchall()
        spans = conn.execute("SELECT trace_id, input_tokens FROM spans ORDER BY rowid").fetchall()
    expected = sorted(
        (
            t.info.trace_id,
            t.info.name,
            t.info.status_message,
            t.info.token_usage.total_tokens if t.info.token_usage else None,
            t.info.session_id,
            t.info.user_id,
        )
        for t in traces
    )
    assert rows == expected
    assert tags == sorted((t.info.trace_id, t.info.tags["n"]) for t in traces)
    by_id = {t.info.trace_id: t for t in traces}
    assert [tid for tid, _ in spans] == sorted([*by_id, *by_id])  # two spans per trace
    assert sorted(n for _, n in spans if n is not None) == sorted(
        t.info.token_usage.input_tokens for t in traces if t.info.token_usage
    )
    assert store.count("session_id = 's1'") == sum(1 for t in traces if t.info.session_id == "s1")
    assert store.count("user_id = 'u7'") == 1
    store.shutdown()


def test_a_stored_trace_written_again_keeps_its_session(tmp_path: Path) -> None:
    with TracingClient("memory://") as client:
        trace = record(client, 1)
    store = SQLiteStore(tmp_path / "t.db")
    store.export([trace])
    store.export([trace])  # a retried batch
    store.update_trace(trace.info.trace_id, lambda t: t)  # what adding a tag does
    assert [s.session_id for s in store.sessions()] == ["s1"]
    assert store.count("user_id = 'u1'") == 1
    store.shutdown()


def test_a_failing_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """Rows are produced while they are inserted: a trace that cannot be encoded halfway
    through rolls the whole batch back."""
    with TracingClient("memory://") as client:
        traces = [record(client, n) for n in range(6)]
    store = SQLiteStore(tmp_path / "t.db")

    class Unwritable(Trace):
        def to_bytes(self) -> bytes:
            raise ValueError("cannot encode")

    last = max(traces, key=lambda t: t.info.trace_id)  # written last
    broken = Unwritable(last.info, last.spans)
    with pytest.raises((StoreError, ValueError)):
        store.export([*(t for t in traces if t is not last), broken])
    assert store.count() == 0
    store.export(traces)
    assert store.count() == 6
    store.shutdown()


def test_a_hand_built_token_count_past_64_bits_is_a_store_error(tmp_path: Path) -> None:
    # Recorded counts stop at 2**63 - 1, but TokenUsage is public: a record built (or
    # imported) with a larger count is refused as lowtrace's StoreError, nothing written.
    from lowtrace import TokenUsage

    with TracingClient("memory://") as client:
        fine, other = record(client, 1), record(client, 2)
    huge = Trace(attrs.evolve(fine.info, token_usage=TokenUsage(2**63, 0, 2**63)), fine.spans)
    store = SQLiteStore(tmp_path / "t.db")
    with pytest.raises(StoreError, match="too large"):
        store.export([huge, other])
    assert store.count() == 0
    store.shutdown()
