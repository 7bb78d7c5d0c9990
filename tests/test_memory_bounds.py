"""The export queue's byte bound and the memory store bound real memory, not JSON bytes."""

from __future__ import annotations

import enum
import gc
import threading
import tracemalloc
import types
from collections.abc import Iterator, Sequence

import pytest

from lowtrace import Limits, PipelineConfig, Trace, TracingClient
from lowtrace._frozen import EMPTY
from lowtrace._live import LiveTrace
from lowtrace._model import NULL_BLOB
from lowtrace._spandata import ATTRIBUTES, EVENTS, INPUTS, OUTPUTS
from lowtrace._values import (
    ENTRY_BYTES,
    EVENT_BYTES,
    SPAN_BYTES,
    TRACE_BYTES,
    attribute_bytes,
    value_bytes,
)


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


def walked_size(live: LiveTrace) -> int:
    """What the queue's byte bound counts for a trace, walked from its spans at the end."""
    size = TRACE_BYTES + SPAN_BYTES * len(live.spans)
    fields = live.fields
    for base in live.spans.values():
        size += sum(len(raw) for raw in (fields[base + INPUTS], fields[base + OUTPUTS]) if raw)
        attributes = fields[base + ATTRIBUTES]
        size += ENTRY_BYTES * len(attributes)
        size += sum(attribute_bytes(value) for value in attributes.values())
        for event in fields[base + EVENTS] or ():
            size += EVENT_BYTES + value_bytes(event.attributes)
    return size


def test_the_queued_size_of_a_trace_follows_every_change_to_its_values() -> None:
    sizes: list[tuple[int, int]] = []
    with TracingClient("none://", limits=Limits(max_attributes_per_span=4)) as client:
        original = LiveTrace.payload_bytes

        def checked(live: LiveTrace) -> int:
            sizes.append((original(live), walked_size(live)))
            return original(live)

        LiveTrace.payload_bytes = checked  # type: ignore[method-assign]
        try:
            root = client.start_trace("agent", inputs="q" * 50, attributes={"a": "x" * 30})
            span = client.start_span(
                "step",
                trace_id=root.trace_id,
                parent_id=root.span_id,
                attributes={"k": "v" * 10, "n": None, "f": 1.5, "nested": {"x": [1, 2]}},
            )
            span.set_attributes({"k": "short", "new": "y" * 40})  # replace one, one too many
            span.add_event("chunk", {"text": "z" * 25})
            span.record_exception(ValueError("boom"))
            span.set_inputs({"late": "i" * 33})  # reported late, then replaced
            span.set_inputs("j" * 5)
            span.set_outputs("o" * 21)  # replaced again by end(outputs=...) below
            late = client.start_span("late", trace_id=root.trace_id, parent_id=root.span_id)
            late.set_inputs("p" * 12)
            late.set_inputs(None)
            late.set_outputs(["r" * 9])
            late.end(outputs="s" * 3)
            span.end(outputs={"final": "t" * 17})
            crowded = client.start_span(
                "crowded",
                trace_id=root.trace_id,
                parent_id=root.span_id,
                attributes={f"k{i}": "w" * i for i in range(8)},  # past the limit: cut to 4
            )
            client.end_span(root.trace_id, crowded.span_id, outputs=[1, 2, 3])
            client.start_span("left open", trace_id=root.trace_id, parent_id=root.span_id)
            client.end_trace(
                root.trace_id,
                outputs={"answer": "a" * 20},
                attributes={"a": "s"},
                close_open_spans=True,
            )
        finally:
            LiveTrace.payload_bytes = original  # type: ignore[method-assign]
    ((counted, walked),) = sizes
    assert counted == walked


def test_a_trace_dropping_spans_forever_keeps_bounded_memory(traced_memory: None) -> None:
    """Past ``max_spans_per_trace`` a trace remembers at most that many dropped ids (so late
    children of a dropped span are refused quietly); beyond, any unknown id counts as one."""
    with TracingClient("none://", limits=Limits(max_spans_per_trace=10)) as client:
        root = client.start_trace("long-running agent")

        def drop_many(count: int) -> list[str]:
            ids = []
            for _ in range(count):
                span = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
                ids.append(span.span_id)
                span.end()
            return ids

        first = drop_many(20)  # 9 kept, then dropped ones: the first 10 ids are remembered
        before, _ = tracemalloc.get_traced_memory()
        drop_many(50_000)
        after, _ = tracemalloc.get_traced_memory()
        assert after - before < 200_000  # 50,000 ids remembered would hold ~5 MB
        # Late children of dropped spans, remembered or not, are still dropped quietly.
        for parent in (first[-1], first[9]):
            late = client.start_span("late", trace_id=root.trace_id, parent_id=parent)
            assert not late.is_recording
            client.end_span(root.trace_id, late.span_id)
        trace = client.end_trace(root.trace_id)
        assert trace is not None
        assert len(trace.spans) == 10
        assert trace.spans[0].attributes["lowtrace.dropped_spans"] == 50_013


def test_a_finished_trace_is_a_few_objects_for_the_garbage_collector() -> None:
    # A finished trace waits in the export queue for up to export_delay_s, and every young
    # and old collection scans what it holds: its spans travel as one tuple of their
    # fields, not as one object per span (nor the live trace that recorded them).
    with TracingClient("none://", pipeline=PipelineConfig(export_delay_s=60)) as client:
        root = client.start_trace("agent", attributes={"n": 1})
        for i in range(10):
            step = client.start_span(
                "step", trace_id=root.trace_id, parent_id=root.span_id, attributes={"i": i}
            )
            step.end()
        trace = client.end_trace(root.trace_id)
        assert trace is not None
        tracked = tracked_objects_of(trace)
        assert len(trace.spans) == 11  # and the records, built on first read, are all there
    assert sorted(type(o).__name__ for o in tracked) == ["SpanList", "Trace", "TraceInfo", "tuple"]


_SHARED = (type, enum.Enum, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)


def tracked_objects_of(root: object) -> list[object]:
    """The objects the collector tracks that ``root`` alone holds (shared ones left out)."""
    seen: set[int] = set()
    found: list[object] = []
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, _SHARED):
            continue
        seen.add(id(obj))
        if obj is NULL_BLOB or obj is EMPTY or not gc.is_tracked(obj):
            continue
        found.append(obj)
        todo.extend(gc.get_referents(obj))
    return found
