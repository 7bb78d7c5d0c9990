"""``close()`` racing ``close()``, ``flush()`` and ending traces from other threads: every
exporter is shut down once, nothing hangs, and every ended trace is delivered or counted."""

from __future__ import annotations

import collections
import functools
import os
import sys
import threading
from collections.abc import Callable, Sequence

import pytest

from lowtrace import Trace, TracingClient

TIMEOUT = 30


class Sink:
    """An exporter that counts its shutdown() calls; ``hold`` (if set) blocks export()."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.hold = hold
        self.exporting = threading.Event()
        self.traces: list[Trace] = []
        self.shutdowns = 0
        self._lock = threading.Lock()

    def export(self, traces: Sequence[Trace]) -> None:
        self.exporting.set()
        if self.hold is not None:
            self.hold.wait(TIMEOUT)
        with self._lock:
            self.traces.extend(traces)

    def shutdown(self) -> None:
        with self._lock:
            self.shutdowns += 1


def together(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in threads released together by a barrier; their results, in order."""
    barrier = threading.Barrier(len(calls), timeout=TIMEOUT)
    results: list[object] = [None] * len(calls)

    def run(slot: int, call: Callable[[], object]) -> None:
        barrier.wait()
        results[slot] = call()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a racing call hung"
    return results


def test_racing_closes_shut_every_exporter_down_exactly_once() -> None:
    for _ in range(200):
        sink = Sink()
        client = TracingClient("memory://", exporters=[sink])
        root = client.start_trace("agent")
        client.end_trace(root.trace_id)
        assert together(client.close, client.close, client.close) == [True] * 3
        assert sink.shutdowns == 1
        assert [t.info.trace_id for t in sink.traces] == [root.trace_id]


def test_a_close_racing_the_first_returns_only_once_the_first_has_delivered() -> None:
    hold = threading.Event()
    sink = Sink(hold)
    client = TracingClient("memory://", exporters=[sink])
    root = client.start_trace("agent")
    client.end_trace(root.trace_id)
    assert sink.exporting.wait(TIMEOUT)  # the worker is inside export(), held there
    first = threading.Thread(target=client.close, args=(TIMEOUT,))
    first.start()
    while "closed" not in repr(client):  # the first close() has begun
        first.join(0.001)
    seen_at_return: list[int] = []
    second = threading.Thread(target=lambda: (client.close(), seen_at_return.append(1)))
    # The second close may only come back once the first delivered the held trace.
    second.start()
    second.join(0.3)
    assert second.is_alive(), "the second close() returned while the first was delivering"
    hold.set()
    first.join(TIMEOUT)
    second.join(TIMEOUT)
    assert seen_at_return == [1]
    assert [t.info.trace_id for t in sink.traces] == [root.trace_id]
    assert sink.shutdowns == 1


class PausingQueue(collections.deque[tuple[Trace, int]]):
    """A lane queue whose first append waits until ``go`` is set (after ``arrived``)."""

    arrived = threading.Event()
    go = threading.Event()

    def append(self, item: tuple[Trace, int]) -> None:
        if not PausingQueue.go.is_set():
            PausingQueue.arrived.set()
            PausingQueue.go.wait(TIMEOUT)
        super().append(item)


def test_a_trace_ending_as_close_stops_its_lane_is_dropped_and_counted() -> None:
    """The trace passed the lane's "closing?" check, then close() ran to completion (the
    worker left an empty queue), then the trace was queued: it must not sit there forever,
    neither delivered nor counted."""
    sink = Sink()
    client = TracingClient("none://", exporters=[sink])
    (lane,) = client._pipeline.lanes
    client.end_trace(client.start_trace("warm-up").trace_id)
    assert client.flush(TIMEOUT)  # the worker runs, idle
    lane.queue = PausingQueue()
    PausingQueue.arrived.clear()
    PausingQueue.go.clear()
    root = client.start_trace("late")
    ending = threading.Thread(target=client.end_trace, args=(root.trace_id,))
    ending.start()
    assert PausingQueue.arrived.wait(TIMEOUT)  # end_trace is about to queue the trace
    assert client.close(TIMEOUT) is True
    PausingQueue.go.set()
    ending.join(TIMEOUT)
    (stats,) = client.stats().exporters
    assert (stats.queued, stats.dropped) == (0, 1)
    assert [t.info.name for t in sink.traces] == ["warm-up"]


def test_traces_ending_while_close_and_flush_race_are_all_delivered_or_counted() -> None:
    for _ in range(100):
        sink = Sink()
        client = TracingClient("none://", exporters=[sink], strict=False)
        ends = [
            functools.partial(client.end_trace, client.start_trace(f"t{n}").trace_id)
            for n in range(4)
        ]
        together(client.close, functools.partial(client.flush, TIMEOUT), *ends)
        (stats,) = client.stats().exporters
        assert stats.queued == 0
        assert len(sink.traces) == stats.exported
        # Each trace ended once, by end_trace or abandoned by close(): delivered or counted.
        assert stats.exported + stats.dropped == len(ends)
        assert sink.shutdowns == 1


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork is POSIX only")
def test_a_child_forked_while_the_parent_closes_does_not_wait_for_that_close() -> None:
    """The parent's close() goes on in the parent only; in the child the client is closed,
    so close() returns at once instead of waiting for a close that never ends there."""
    hold = threading.Event()
    sink = Sink(hold)
    client = TracingClient("none://", exporters=[sink])
    client.end_trace(client.start_trace("agent").trace_id)
    assert sink.exporting.wait(TIMEOUT)
    closing = threading.Thread(target=client.close, args=(TIMEOUT,))
    closing.start()
    while "closed" not in repr(client):
        closing.join(0.001)
    pid = os.fork()
    if pid == 0:  # the child: a bounded close, or exit 3 from the watchdog
        watchdog = threading.Timer(10, os._exit, args=(3,))
        watchdog.start()
        try:
            client.close(timeout=TIMEOUT)
        finally:
            os._exit(0)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        hold.set()
        closing.join(TIMEOUT)
    assert sink.shutdowns == 1
