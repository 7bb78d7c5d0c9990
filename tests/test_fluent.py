"""The fluent API: ``@trace``, ``start_span``, the current span and the default client."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import lowtrace
from lowtrace import (
    SpanStatus,
    SpanType,
    Trace,
    TracingClient,
    TracingThreadPoolExecutor,
    get_current_span,
    start_span,
    trace,
    update_current_trace,
    wrap,
)


@pytest.fixture
def default(client: TracingClient) -> Iterator[TracingClient]:
    lowtrace.set_default_client(client)
    yield client
    lowtrace.set_default_client(None)


def traces(client: TracingClient) -> list[Trace]:
    assert client.flush(10)
    return sorted(client.search_traces(max_results=1000), key=lambda t: t.info.start_time_ns)


def shape(trace: Trace) -> list[tuple[int, str]]:
    return [(depth, span.name) for depth, span in trace.walk()]


@trace
def add(a: int, b: int = 2) -> int:
    """Adds."""
    return a + b


@trace(name="lookup", span_type=SpanType.TOOL, attributes={"tool.version": 3})
def lookup(key: str) -> dict[str, str]:
    return {"key": key}


class Agent:
    @trace
    def run(self, question: str) -> str:
        return self.helper(question)

    @trace
    def helper(self, question: str) -> str:
        return question.upper()

    @trace
    @classmethod
    def build(cls, name: str) -> str:
        return name

    @trace
    @staticmethod
    def static(x: int) -> int:
        return x + 1


def test_a_traced_function_is_indistinguishable(default: TracingClient) -> None:
    assert add.__name__ == "add" and add.__doc__ == "Adds."
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)  # type: ignore[attr-defined]
    assert add(1) == 3
    (only,) = traces(default)
    (span,) = only.spans
    assert (span.name, span.inputs, span.outputs) == ("add", {"a": 1, "b": 2}, 3)


def test_nested_calls_make_nested_spans(default: TracingClient) -> None:
    @trace
    def outer() -> int:
        return add(1) + lookup("k")["key"].count("k")

    assert outer() == 4
    (only,) = traces(default)
    assert shape(only) == [
        (0, "test_nested_calls_make_nested_spans.<locals>.outer"),
        (1, "add"),
        (1, "lookup"),
    ]
    tool = only.spans[2]
    assert tool.span_type is SpanType.TOOL and tool.attributes == {"tool.version": 3}


def test_methods_leave_self_out(default: TracingClient) -> None:
    agent = Agent()
    assert agent.run("hi") == "HI"
    assert Agent.build("x") == "x" and Agent.static(1) == 2
    run, build, static = traces(default)
    assert shape(run) == [(0, "Agent.run"), (1, "Agent.helper")]
    assert run.spans[0].inputs == {"question": "hi"}
    assert build.spans[0].inputs == {"name": "x"}
    assert static.spans[0].inputs == {"x": 1}


def test_the_same_exception_object_is_reraised_and_recorded(default: TracingClient) -> None:
    error = LookupError("nope")

    @trace
    def fail() -> None:
        raise error

    with pytest.raises(LookupError) as raised:
        fail()
    assert raised.value is error
    (only,) = traces(default)
    assert only.info.status is SpanStatus.ERROR
    assert only.spans[0].events[0].attributes["exception.type"] == "LookupError"


def test_async_functions_and_gather_siblings(default: TracingClient) -> None:
    @trace
    async def step(n: int) -> int:
        await asyncio.sleep(0)
        return n * 10

    @trace
    async def pipeline() -> list[int]:
        return await asyncio.gather(step(1), step(2), step(3))

    assert inspect.iscoroutinefunction(step)
    assert asyncio.run(pipeline()) == [10, 20, 30]
    (only,) = traces(default)
    assert [d for d, _ in shape(only)] == [0, 1, 1, 1]
    assert sorted(s.outputs for s in only.spans[1:]) == [10, 20, 30]


def test_start_span_block_and_async_block(default: TracingClient) -> None:
    with start_span("outer", span_type=SpanType.CHAIN, inputs={"q": 1}) as outer:
        assert get_current_span() is outer
        with start_span("inner") as inner:
            inner.set_outputs("inner result")
        with pytest.raises(ValueError, match="inside"), start_span("failing"):
            raise ValueError("inside")

    async def main() -> None:
        async with start_span("async block") as span:
            span.set_attributes({"k": "v"})

    asyncio.run(main())
    assert get_current_span() is None
    first, second = traces(default)
    assert shape(first) == [(0, "outer"), (1, "inner"), (1, "failing")]
    assert first.spans[1].outputs == "inner result"
    assert first.spans[2].status is SpanStatus.ERROR
    assert second.spans[0].attributes == {"k": "v"}


def test_outside_any_span_the_trace_helpers_are_harmless(default: TracingClient) -> None:
    assert get_current_span() is None
    update_current_trace(tags={"ignored": "yes"})
    assert traces(default) == []


def test_update_current_trace_tags_the_trace(default: TracingClient) -> None:
    @trace
    def handler() -> None:
        update_current_trace(tags={"user": "alice", "turn": 3})

    handler()
    (only,) = traces(default)
    assert only.info.tags == {"user": "alice", "turn": "3"}


def test_fan_out_to_threads_stays_in_one_trace(default: TracingClient) -> None:
    @trace
    def work(n: int) -> int:
        return n * n

    @trace
    def parent() -> list[int]:
        with TracingThreadPoolExecutor(4) as pool:
            squares = list(pool.map(work, range(6)))
        with ThreadPoolExecutor(2) as plain:
            squares.append(plain.submit(wrap(work), 7).result())
        return squares

    assert parent() == [0, 1, 4, 9, 16, 25, 49]
    (only,) = traces(default)
    assert len(only.spans) == 8
    assert all(depth == 1 for depth, _ in shape(only)[1:])


def test_default_client_is_looked_up_at_call_time() -> None:
    @trace
    def late() -> str:
        return "x"

    with TracingClient("memory://") as first, TracingClient("memory://") as second:
        lowtrace.set_default_client(first)
        late()
        lowtrace.set_default_client(second)
        late()
        late()
        lowtrace.set_default_client(None)
        assert len(traces(first)) == 1 and len(traces(second)) == 2


def test_tracing_failures_never_break_the_function(
    default: TracingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    @trace
    def work() -> str:
        calls.append(1)
        return "result"

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracing backend exploded")

    monkeypatch.setattr(default, "start_trace", broken)
    assert work() == "result"
    assert calls == [1]  # called exactly once
    assert default.stats().violations == {"lowtrace.trace: RuntimeError": 1}


def test_ending_in_another_thread_never_raises(default: TracingClient) -> None:
    block = start_span("handed over")
    # Entered in a copy of this context: the span stays current there, not in later tests.
    span = contextvars.copy_context().run(block.__enter__)
    finished = threading.Event()

    def finish() -> None:
        block.__exit__(None, None, None)
        finished.set()

    threading.Thread(target=finish).start()
    assert finished.wait(10)
    (only,) = traces(default)
    assert only.spans[0].name == "handed over" and span.ended


def test_disabled_tracing_runs_code_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWTRACE_ENABLED", "false")
    with TracingClient() as disabled:
        lowtrace.set_default_client(disabled)
        try:
            assert add(5) == 7
            with start_span("x") as span:
                assert not span.is_recording
        finally:
            lowtrace.set_default_client(None)


# -- generators --------------------------------------------------------------------------------


@trace
def countdown(n: int) -> Iterator[int]:
    while n > 0:
        received = yield n
        n = received if received is not None else n - 1
    return "liftoff"


def test_generator_protocol_is_kept(default: TracingClient) -> None:
    assert inspect.isgeneratorfunction(countdown)
    gen = countdown(5)
    assert next(gen) == 5
    assert gen.send(2) == 2
    assert next(gen) == 1
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "liftoff"

    def delegating() -> Iterator[int]:
        result = yield from countdown(2)
        assert result == "liftoff"

    assert list(delegating()) == [2, 1]
    first, _ = traces(default)
    assert first.spans[0].outputs == [5, 2, 1]
    assert first.spans[0].attributes["lowtrace.yielded_items"] == 3


def test_generator_throw_reaches_the_generator(default: TracingClient) -> None:
    @trace
    def resilient() -> Iterator[str]:
        try:
            yield "first"
        except KeyError:
            yield "recovered"

    gen = resilient()
    assert next(gen) == "first"
    assert gen.throw(KeyError("x")) == "recovered"
    gen.close()
    (only,) = traces(default)
    assert only.spans[0].outputs == ["first", "recovered"]


def test_abandoned_generators_still_end_their_span(default: TracingClient) -> None:
    for value in countdown(10):
        if value == 8:
            break
    dropped = countdown(3)
    next(dropped)
    del dropped
    gc.collect()
    first, second = traces(default)
    for item in (first, second):
        span = item.spans[0]
        assert span.status is SpanStatus.OK
        assert span.attributes["lowtrace.generator_closed_early"] is True


def test_generator_context_never_leaks_to_the_consumer(default: TracingClient) -> None:
    seen_inside = []

    @trace
    def producer() -> Iterator[int]:
        for n in range(3):
            seen_inside.append(get_current_span().name)
            yield n

    with start_span("consumer") as consumer:
        for _ in producer():
            assert get_current_span() is consumer
    assert (
        seen_inside == ["test_generator_context_never_leaks_to_the_consumer.<locals>.producer"] * 3
    )
    (only,) = traces(default)
    assert shape(only)[1][0] == 1


def test_async_generators(default: TracingClient) -> None:
    @trace
    async def tokens() -> AsyncIterator[str]:
        for word in ("a", "b", "c"):
            await asyncio.sleep(0)
            yield word

    async def main() -> list[str]:
        early = tokens()
        assert await early.__anext__() == "a"
        await early.aclose()
        return [t async for t in tokens()]

    assert inspect.isasyncgenfunction(tokens)
    assert asyncio.run(main()) == ["a", "b", "c"]
    closed, full = traces(default)
    assert closed.spans[0].attributes["lowtrace.generator_closed_early"] is True
    assert full.spans[0].outputs == ["a", "b", "c"]
