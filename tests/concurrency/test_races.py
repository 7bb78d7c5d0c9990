"""Many threads on one client: trees stay correct and every race has exactly one winner.

Threads start together on a ``threading.Barrier`` so the racing calls really overlap; every
wait is bounded. Races are repeated many times in one test to make rare interleavings show.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lowtrace import (
    LowtraceError,
    OpenSpansError,
    SpanEndedError,
    SpanStatus,
    TraceEndedError,
    TracingClient,
)

TIMEOUT = 30


def race(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released together; results or exceptions."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return action(i)
        except LowtraceError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count), timeout=TIMEOUT))


def test_many_threads_build_one_tree(client: TracingClient) -> None:
    root = client.start_trace("fan-out")

    def worker(i: int) -> None:
        branch = client.start_span(f"branch{i}", trace_id=root.trace_id, parent_id=root.span_id)
        for n in range(200):
            leaf = client.start_span(
                f"leaf{i}.{n}",
                trace_id=root.trace_id,
                parent_id=branch.span_id,
                attributes={"n": n},
            )
            leaf.set_attributes({"thread": i})
            client.end_span(root.trace_id, leaf.span_id)
        branch.end()

    assert race(8, worker) == [None] * 8
    trace = client.end_trace(root.trace_id)
    assert trace is not None
    assert trace.info.span_count == len(trace.spans) == 1 + 8 * 201
    by_id = {s.span_id: s for s in trace.spans}
    for span in trace.spans[1:]:
        parent = by_id[span.parent_id]  # type: ignore[index]
        if span.name.startswith("leaf"):
            assert parent.name == "branch" + span.name[4:].split(".")[0]
            assert span.attributes["thread"] == int(parent.name[6:])
    assert all(s.status is SpanStatus.OK for s in trace.spans)


def test_many_threads_many_traces(client: TracingClient) -> None:
    def worker(i: int) -> list[str]:
        ids = []
        for n in range(50):
            root = client.start_trace(f"t{i}.{n}")
            child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)
            child.end()
            client.end_trace(root.trace_id)
            ids.append(root.trace_id)
        return ids

    results = race(8, worker)
    all_ids = [tid for ids in results for tid in ids]
    assert len(set(all_ids)) == 400
    assert client.flush(10)
    assert client.count_traces() == 400
    assert client.count_traces("span_count = 2") == 400


def test_span_started_in_one_thread_ended_in_another(client: TracingClient) -> None:
    root = client.start_trace("handoff")
    started = threading.Event()
    holder: dict[str, Any] = {}

    def producer() -> None:
        holder["span"] = client.start_span("work", trace_id=root.trace_id, parent_id=root.span_id)
        started.set()

    def consumer() -> None:
        assert started.wait(TIMEOUT)
        client.end_span(root.trace_id, holder["span"].span_id, outputs="done elsewhere")

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.spans[1].outputs == "done elsewhere"


def test_racing_double_ends_have_exactly_one_winner(client: TracingClient) -> None:
    for _ in range(100):
        root = client.start_trace("t")
        span = client.start_span("s", trace_id=root.trace_id, parent_id=root.span_id)
        results = race(
            4, lambda i, r=root, s=span: client.end_span(r.trace_id, s.span_id, outputs=i)
        )
        winners = [r for r in results if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, SpanEndedError) for r in results if r is not None)
        trace = client.end_trace(root.trace_id)
        assert trace is not None and trace.spans[1].outputs == results.index(None)


def test_end_trace_racing_start_span_never_leaves_a_half_state(client: TracingClient) -> None:
    outcomes = set()
    for _ in range(200):
        root = client.start_trace("t")

        def act(i: int, root: Any = root) -> Any:
            if i == 0:
                return client.end_trace(root.trace_id)
            return client.start_span("late", trace_id=root.trace_id, parent_id=root.span_id)

        ended, started = race(2, act)
        if isinstance(ended, OpenSpansError):
            # The child got in first: the trace is still live and the child is real.
            assert not isinstance(started, LowtraceError)
            started.end()
            trace = client.end_trace(root.trace_id)
            assert trace is not None and [s.name for s in trace.spans] == ["t", "late"]
            outcomes.add("child first")
        else:
            # end_trace got in first: the child was refused and is not in the trace.
            assert isinstance(started, TraceEndedError)
            assert [s.name for s in ended.spans] == ["t"]
            outcomes.add("end first")
    assert outcomes  # at least one interleaving; both are valid


def test_close_open_spans_racing_end_span(client: TracingClient) -> None:
    for _ in range(100):
        root = client.start_trace("t")
        child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)

        def act(i: int, root: Any = root, child: Any = child) -> Any:
            if i == 0:
                return client.end_trace(root.trace_id, close_open_spans=True)
            return client.end_span(root.trace_id, child.span_id, outputs="mine")

        trace, ended = race(2, act)
        record = trace.spans[1]
        if ended is None:  # the child ended first, normally
            assert (record.status, record.outputs) == (SpanStatus.OK, "mine")
        else:  # end_trace closed it first; the late end was refused
            assert isinstance(ended, TraceEndedError)
            assert record.status is SpanStatus.ERROR and record.outputs is None


def test_reaper_racing_the_user_has_one_winner() -> None:
    with TracingClient("memory://") as client:
        for _ in range(100):
            root = client.start_trace("t")
            live = client._registry.traces[root.trace_id]  # the reaper's own entry point

            def act(i: int, root: Any = root, live: Any = live) -> Any:
                if i == 0:
                    return client._abandon(live, "test")
                return client.end_trace(root.trace_id)

            abandoned, ended = race(2, act)
            assert abandoned is None  # abandon never raises
            assert client.flush(5)
            stored = client.get_trace(root.trace_id)
            assert stored is not None
            if isinstance(ended, TraceEndedError):
                assert stored.info.status is SpanStatus.ERROR
            else:
                assert stored.info.status is SpanStatus.OK
        assert client.stats().finished_traces == 100
