"""Sampled and unsampled traces from many threads at once: every one counted once, the
unsampled ones forgotten when they end, nothing recorded for them."""

from __future__ import annotations

import threading

import pytest

from lowtrace import TracingClient, UnsampledSpan
from lowtrace.testing import RecordingExporter

pytestmark = pytest.mark.timeout(60)

THREADS = 8
TRACES = 200


def test_threads_mixing_sampled_and_unsampled_traces() -> None:
    recorder = RecordingExporter()
    barrier = threading.Barrier(THREADS)
    kept = [0] * THREADS
    errors: list[BaseException] = []
    with TracingClient("memory://", exporters=[recorder], sample_ratio=0.5) as client:

        def work(index: int) -> None:
            try:
                run(index)
            except BaseException as exc:
                errors.append(exc)

        def run(index: int) -> None:
            barrier.wait()
            for _ in range(TRACES):
                root = client.start_trace("agent")
                child = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
                assert isinstance(child, UnsampledSpan) == isinstance(root, UnsampledSpan)
                grandchild = client.start_span(
                    "tool", trace_id=root.trace_id, parent_id=child.span_id
                )
                client.end_span(root.trace_id, grandchild.span_id)
                child.end()
                client.end_trace(root.trace_id)
                kept[index] += root.is_recording

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        assert client.flush(30)
        stats = client.stats()
    total = THREADS * TRACES
    assert errors == []
    assert stats.violations == {}
    assert stats.finished_traces == sum(kept) == len(recorder.traces)
    assert stats.unsampled_traces == total - sum(kept)
    assert 0 < sum(kept) < total
