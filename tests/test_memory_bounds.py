"""The export queue's byte bound and the memory store bound real memory, not JSON bytes."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator, Sequence

import pytest

from lowtrace import PipelineConfig, Trace, TracingClient


def one_trace(client: TracingClient, n: int) -> Trace | None:
    """A small agent trace: ~2.7 KB of JSON in four spans."""
    root = client.start_trace(
        "agent", inputs={"question": "q" * 200, "n": n}, attributes={"user": "u1", "n": n}
    )
    for i in range(3):
        span = client.start_span(
            "step",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            inputs={"i": i, "text": "t" * 100},
            attributes={"i": i},
        )
        client.end_span(root.trace_id, span.span_id, outputs={"out": "o" * 100})
    return client.end_trace(root.trace_id, outputs={"answer": "a" * 200})


@pytest.fixture
def traced_memory() -> Iterator[None]:
    tracemalloc.start()
    yield
    tracemalloc.stop()


class Stuck:
    """A destination that never answers (until the test ends)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def export(self, traces: Sequence[Trace]) -> None:
        self.entered.set()
        self.release.wait(60)


def test_a_stuck_exporter_cannot_grow_memory_far_past_the_byte_bound(traced_memory: None) -> None:
    bound = 8 * 1024 * 1024
    stuck = Stuck()
    config = PipelineConfig(max_queue_bytes=bound)
    client = TracingClient("none://", exporters=[stuck], pipeline=config)
    try:
        one_trace(client, -1)
        assert stuck.entered.wait(10)
        before, _ = tracemalloc.get_traced_memory()
        for n in range(6000):
            one_trace(client, n)
        grown = tracemalloc.get_traced_memory()[0] - before
        (stats,) = client.stats().exporters
        assert stats.dropped > 0  # the bound was reached...
        assert grown < 1.25 * bound  # ...and it bounded what the queue really holds
    finally:
        stuck.release.set()
        client.close(timeout=5)


def test_the_memory_store_holds_a_trace_in_a_few_times_its_json_size(
    traced_memory: None,
) -> None:
    with TracingClient("memory://") as client:
        sample = one_trace(client, -1)
        assert sample is not None and client.flush(10)
        json_size = len(sample.to_json())
        before, _ = tracemalloc.get_traced_memory()
        for n in range(2000):
            one_trace(client, n)
        assert client.flush(30)
        per_trace = (tracemalloc.get_traced_memory()[0] - before) / 2000
    assert per_trace < 4 * json_size
