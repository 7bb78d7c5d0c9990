"""A burst at full speed into the default SQLite store loses nothing with default settings."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from lowtrace import TracingClient

THREADS = 8
BURST_S = 2.0


def test_eight_threads_for_two_seconds_lose_nothing_with_defaults(tmp_path: Path) -> None:
    sys.setswitchinterval(0.005)  # CPython's default: a burst at full speed, not interleaving
    client = TracingClient(f"sqlite:///{tmp_path}/burst.db")
    start = threading.Barrier(THREADS + 1, timeout=30)
    produced = [0] * THREADS

    def writer(slot: int) -> None:
        start.wait()
        stop_at = time.monotonic() + BURST_S
        count = 0
        while time.monotonic() < stop_at:
            root = client.start_trace("burst", attributes={"slot": slot, "n": count})
            child = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
            client.end_span(root.trace_id, child.span_id, outputs={"n": count})
            client.end_trace(root.trace_id)
            count += 1
        produced[slot] = count

    threads = [threading.Thread(target=writer, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(60)
    try:
        assert client.flush(120) is True
        (stats,) = client.stats().exporters
        assert stats.dropped == 0
        assert stats.lost == 0
        assert stats.exported == sum(produced) == client.count_traces()
    finally:
        client.close()
