"""The fluent API under concurrency: every thread and every task builds its own correct tree."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

import lowtrace
from lowtrace import Span, Trace, TracingClient, get_current_span, trace


@pytest.fixture
def default(client: TracingClient) -> Iterator[TracingClient]:
    lowtrace.set_default_client(client)
    yield client
    lowtrace.set_default_client(None)


@trace
def leaf(n: int) -> int:
    return n


@trace
def request(worker: int) -> int:
    assert get_current_span().name == "request"
    return sum(leaf(n) for n in range(5)) + worker


def check(trace_: Trace, root: str, children: int) -> None:
    (top,) = [s for s in trace_.spans if s.parent_id is None]
    assert top.name == root
    assert len(trace_.spans) == 1 + children
    assert all(s.parent_id == top.span_id for s in trace_.spans if s is not top)


def test_threads_build_separate_trees(default: TracingClient) -> None:
    barrier = threading.Barrier(8, timeout=30)
    results: list[int] = []

    def run(worker: int) -> None:
        barrier.wait()
        for _ in range(20):
            results.append(request(worker))

    threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 160
    assert default.flush(10)
    traces = default.search_traces(max_results=1000)
    assert len(traces) == 160
    for item in traces:
        check(item, "request", 5)


def test_many_concurrent_tasks_build_separate_trees(default: TracingClient) -> None:
    @trace
    async def step(n: int) -> int:
        await asyncio.sleep(0)
        return n

    @trace
    async def task(n: int) -> int:
        values = await asyncio.gather(step(1), step(2))
        await asyncio.sleep(0)
        return n + sum(values)

    async def main() -> list[int]:
        return await asyncio.gather(*[task(n) for n in range(50)])

    assert asyncio.run(main()) == [n + 3 for n in range(50)]
    assert default.flush(10)
    traces = default.search_traces(max_results=100)
    assert len(traces) == 50
    for item in traces:
        check(item, "test_many_concurrent_tasks_build_separate_trees.<locals>.task", 2)


def test_a_wall_clock_stepping_back_mid_call_still_ends_every_span(
    default: TracingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Span times come from the wall clock, which a VM or NTP may step back under load: an
    end read from the clock must not fall before the start and cost the trace (or a span)."""
    import lowtrace._client
    import lowtrace._ending
    import lowtrace._live

    clock = [10_000_000_000]

    def stepping_back() -> int:
        clock[0] -= 1_000_000  # every reading 1 ms before the previous one
        return clock[0]

    monkeypatch.setattr(lowtrace._client, "_time_ns", stepping_back)
    monkeypatch.setattr(lowtrace._live, "_time_ns", stepping_back)
    monkeypatch.setattr(lowtrace._ending, "_time_ns", stepping_back)

    assert request(7) == 17
    assert default.stats().violations == {}
    assert default.flush(10)
    (item,) = default.search_traces()
    check(item, "request", 5)
    assert all(s.end_time_ns >= s.start_time_ns for s in item.spans)
    assert all(s.status.value == "OK" for s in item.spans)


class Pause:
    """An awaitable that suspends its coroutine once (as waiting on I/O would)."""

    def __await__(self) -> Iterator[None]:
        yield


def test_a_coroutine_closed_elsewhere_leaves_that_context_alone(default: TracingClient) -> None:
    """A suspended traced coroutine closed by the garbage collector (in whatever context
    runs it) must not make its parent span current there."""
    import contextvars

    started: list[Coroutine[Any, Any, None]] = []

    @trace
    async def inner() -> None:
        await Pause()

    @trace
    async def outer() -> None:
        child = inner()
        started.append(child)
        contextvars.copy_context().run(child.send, None)  # a task started from here
        await Pause()

    parent = outer()
    contextvars.copy_context().run(parent.send, None)  # its own task, now suspended

    def collect() -> Span | None:
        parent.close()  # both collected here, in the collector's own context
        started[0].close()
        return get_current_span()

    assert contextvars.Context().run(collect) is None
