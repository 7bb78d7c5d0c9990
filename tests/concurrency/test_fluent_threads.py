"""The fluent API under concurrency: every thread and every task builds its own correct tree."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

import lowtrace
from lowtrace import Trace, TracingClient, get_current_span, trace


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
