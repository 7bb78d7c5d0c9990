"""Four processes appending to one Delta table at once, starting before the table exists:
Delta's optimistic concurrency (and lowtrace's retry of a lost race) keeps every trace,
exactly once."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from lowtrace import TracingClient
from lowtrace._stores.uri import open_store

WRITERS = 4
TRACES = 60  # per writer, in commits of 10


def _append(uri: str, worker: int, start: Any) -> None:
    with TracingClient(uri) as client:
        start.wait(60)  # everyone creates or appends to the table at the same moment
        for n in range(TRACES):
            root = client.start_trace(f"w{worker}", tags={"worker": worker, "n": n})
            client.end_trace(root.trace_id)
            if n % 10 == 9:
                assert client.flush(60)


def test_replicas_append_to_one_table_and_every_trace_lands_once(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    uri = f"delta://{path}?commit_delay_s=3600"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WRITERS)
    workers = [ctx.Process(target=_append, args=(uri, w, start)) for w in range(WRITERS)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(240)
        assert p.exitcode == 0
    rows = DeltaTable(str(path)).to_pyarrow_table(columns=["trace_id", "tags"]).to_pylist()
    assert len(rows) == WRITERS * TRACES
    assert max(Counter(r["trace_id"] for r in rows).values()) == 1
    per_worker = Counter(dict(r["tags"])["worker"] for r in rows)
    assert per_worker == {str(w): TRACES for w in range(WRITERS)}
    store = open_store(uri, create=False)
    assert store.count() == WRITERS * TRACES
    assert store.count("tags.worker = '3'") == TRACES
    assert DeltaTable(str(path)).version() >= WRITERS * TRACES // 10 - 1  # commits interleaved
