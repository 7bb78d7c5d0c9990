"""Sampled and unsampled traces from many threads at once: every one counted once, the
unsampled ones forgotten when they end, nothing recorded for them."""

from __future__ import annotations

import threading

import pytest

from lowtrace import TracingClient, UnsampledSpan
from lowtrace._sampling import UnsampledTraces
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


class _DiscardWhilePicking(dict):  # type: ignore[type-arg]
    """The live set, where another thread ends the oldest unsampled trace exactly while
    ``start`` (at capacity) is picking the oldest one to forget."""

    def __init__(self, traces: UnsampledTraces) -> None:
        super().__init__(traces._live)
        self.traces = traces
        self.armed = True

    def __iter__(self):  # type: ignore[no-untyped-def]
        inner = super().__iter__()
        if not self.armed:
            return inner
        self.armed = False
        oldest = next(iter(list(self)))
        ender = threading.Thread(target=self.traces.discard, args=(oldest,))

        class Interleaved:
            def __next__(self) -> str:
                ender.start()  # the other thread's root.end() lands here
                ender.join(10)
                return next(inner)

        return Interleaved()


@pytest.mark.parametrize("capacity", [1, 3])
def test_an_unsampled_trace_ending_while_the_oldest_is_evicted(capacity: int) -> None:
    traces = UnsampledTraces(capacity)
    for i in range(capacity):
        traces.start(f"{i:032x}", f"{i + 1:016x}", None, "old", None)
    traces._live = _DiscardWhilePicking(traces)

    root = traces.start(f"{99:032x}", f"{99:016x}", None, "new", None)  # at capacity: evicts

    assert root.trace_id in traces
    assert len(traces) <= capacity
    assert traces.started == capacity + 1


class _StartedMeanwhile(UnsampledTraces):
    """Live unsampled traces where another thread starts the named trace (a ``-00``
    caller) just after ``start_span`` first looked: the first lookup misses."""

    looked = False

    def __contains__(self, trace_id: object) -> bool:
        if not self.looked:
            self.looked = True
            return False
        return super().__contains__(trace_id)


def test_start_span_racing_the_start_of_the_unsampled_trace_it_names() -> None:
    with TracingClient("memory://", sample_ratio=0.0) as client:
        traces = _StartedMeanwhile(16)
        root = traces.start("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", None, "r", None)
        client._unsampled = traces

        child = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)

        assert isinstance(child, UnsampledSpan) and child.trace_id == root.trace_id
