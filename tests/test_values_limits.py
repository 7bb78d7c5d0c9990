"""Values are snapshotted, anything is recorded readably, and limits never lose silently."""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import random
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings

import lowtrace
from lowtrace import (
    DroppedSpan,
    InvalidArgumentError,
    Limits,
    SpanType,
    TokenUsage,
    Trace,
    TracingClient,
)
from lowtrace._values import snapshot_sized
from tests.strategies import traces


def one_span(client: TracingClient, **start: Any) -> tuple[Any, Any]:
    root = client.start_trace("t")
    span = client.start_span("s", trace_id=root.trace_id, parent_id=root.span_id, **start)
    return root, span


def finish(client: TracingClient, root: Any) -> Trace:
    trace = client.end_trace(root.trace_id, close_open_spans=True)
    assert trace is not None
    return trace


def test_values_are_snapshotted_when_recorded(client: TracingClient) -> None:
    inputs = {"messages": [{"role": "user", "content": "hi"}]}
    attrs = {"tags": ["a"]}
    outputs = ["doc"]
    root, span = one_span(client, inputs=inputs, attributes=attrs)
    inputs["messages"].append({"role": "user", "content": "changed"})
    attrs["tags"].append("b")
    span.end(outputs=outputs)
    outputs.append("changed")
    trace = finish(client, root)
    record = trace.spans[1]
    assert record.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert record.attributes == {"tags": ["a"]}
    assert record.outputs == ["doc"]
    record.inputs["messages"].clear()  # a finished trace cannot be changed through reads
    assert trace.spans[1].inputs["messages"] != []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model:
    """Looks like a pydantic v2 model."""

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {"kind": "model", "mode": mode}


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_non_json_values_are_recorded_readably(client: TracingClient) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    deep: Any = []
    node = deep
    for _ in range(500):
        node.append([])
        node = node[0]
    values = {
        "set": {3, 1, 2},
        "bytes": b"\x00\x01",
        "exception": ValueError("bad"),
        "dataclass": Point(1, 2),
        "model": Model(),
        "opaque": Opaque(),
        "broken": BrokenRepr(),
        "cycle": cyclic,
        "huge_int": 2**100,
        "nan": float("nan"),
        "surrogate": "a\udc80b",
        "deep": deep,
        "tuple_key": {(1, 2): "v"},
    }
    root, span = one_span(client, inputs=values, attributes={"weird": Opaque()})
    span.end(outputs=BrokenRepr())
    record = finish(client, root).spans[1]
    got = record.inputs
    assert got["set"] == [1, 2, 3]
    assert got["exception"] == {"type": "ValueError", "message": "bad"}
    assert got["dataclass"] == {"x": 1, "y": 2}
    assert got["model"] == {"kind": "model", "mode": "json"}
    assert got["opaque"] == "<Opaque thing>"
    assert "BrokenRepr" in got["broken"]
    assert got["huge_int"] == str(2**100)
    assert "a" in got["surrogate"] and "b" in got["surrogate"]
    assert "<cycle>" in str(got["cycle"])
    assert record.attributes["weird"] == "<Opaque thing>"
    assert "BrokenRepr" in record.outputs


def test_big_values_are_truncated_with_a_marker(client: TracingClient) -> None:
    limits = Limits(max_value_bytes=1000)
    with TracingClient("memory://", limits=limits) as small:
        root, span = one_span(
            small, inputs={"text": "x" * 5000}, attributes={"long": "y" * 5000, "short": "ok"}
        )
        span.end(outputs=["z" * 3000])
        record = finish(small, root).spans[1]
    assert "truncated by lowtrace" in record.inputs
    assert len(record.inputs_json) <= 1000
    assert record.attributes["long"].startswith("yyy")
    assert "truncated by lowtrace" in record.attributes["long"]
    assert record.attributes["short"] == "ok"
    assert record.attributes["lowtrace.truncated_values"] == 3


def test_attribute_and_event_limits_drop_the_newest_and_count(client: TracingClient) -> None:
    limits = Limits(max_attributes_per_span=3, max_events_per_span=2)
    with TracingClient("memory://", limits=limits) as small:
        root, span = one_span(small, attributes={"a": 1, "b": 2})
        span.set_attributes({"c": 3, "d": 4, "e": 5})
        span.set_attributes({"a": 10})  # updating a recorded key is always allowed
        for n in range(5):
            span.add_event(f"chunk{n}")
        span.end()
        record = finish(small, root).spans[1]
    assert {k: v for k, v in record.attributes.items() if not k.startswith("lowtrace.")} == {
        "a": 10,
        "b": 2,
        "c": 3,
    }
    assert record.attributes["lowtrace.dropped_attributes"] == 2
    assert [e.name for e in record.events] == ["chunk0", "chunk1"]
    assert record.attributes["lowtrace.dropped_events"] == 3


def test_span_limit_drops_new_spans_and_their_children(client: TracingClient) -> None:
    with TracingClient("memory://", limits=Limits(max_spans_per_trace=3)) as small:
        root = small.start_trace("t")
        kept = [
            small.start_span(f"s{n}", trace_id=root.trace_id, parent_id=root.span_id)
            for n in range(2)
        ]
        extra = small.start_span("extra", trace_id=root.trace_id, parent_id=root.span_id)
        assert isinstance(extra, DroppedSpan) and not extra.is_recording
        grandchild = small.start_span("gc", trace_id=root.trace_id, parent_id=extra.span_id)
        assert isinstance(grandchild, DroppedSpan)
        small.end_span(root.trace_id, grandchild.span_id)  # fine: nothing to end
        extra.set_attributes({"x": 1})
        extra.end()
        for span in kept:
            span.end()
        trace = small.end_trace(root.trace_id)
        assert trace is not None
        assert [s.name for s in trace.spans] == ["t", "s0", "s1"]
        assert trace.spans[0].attributes["lowtrace.dropped_spans"] == 2
        assert small.stats().dropped_spans == 2


def test_token_usage_counts_each_model_call_once(client: TracingClient) -> None:
    root = client.start_trace("agent")
    chat = client.start_span(
        "framework_chat",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
    )
    raw = client.start_span(
        "openai_call", trace_id=root.trace_id, parent_id=chat.span_id, span_type=SpanType.LLM
    )
    raw.set_token_usage(input_tokens=100, output_tokens=20)
    chat.set_token_usage(input_tokens=100, output_tokens=20)
    other = client.start_span("second_call", trace_id=root.trace_id, parent_id=root.span_id)
    other.set_token_usage(input_tokens=5, output_tokens=1, total_tokens=7)
    for span in (raw, chat, other):
        span.end()
    trace = finish(client, root)
    assert trace.info.token_usage == TokenUsage(105, 21, 127)
    assert trace.get_span(raw.span_id).token_usage == TokenUsage(100, 20, 120)  # type: ignore[union-attr]
    empty = client.start_trace("no model")
    assert finish(client, empty).info.token_usage is None


@settings(max_examples=60, deadline=None)
@given(trace=traces())
def test_json_and_binary_round_trips(trace: Trace) -> None:
    assert Trace.from_json(trace.to_json()) == trace
    assert Trace.from_bytes(trace.to_bytes()) == trace
    assert Trace.from_json(trace.to_json()).to_json() == trace.to_json()


def test_ids_are_not_affected_by_the_global_random_seed() -> None:
    random.seed(0)
    with TracingClient("memory://") as a:
        first = a.start_trace("t")
    random.seed(0)
    with TracingClient("memory://") as b:
        second = b.start_trace("t")
    assert first.trace_id != second.trace_id and first.span_id != second.span_id
    assert len(first.trace_id) == 32 and int(first.trace_id, 16) > 0


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork is POSIX only")
def test_a_forked_child_never_repeats_the_ids_its_parent_makes_next(
    client: TracingClient,
) -> None:
    root = client.start_trace("parent")  # ids are made in batches: the parent has one now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the next trace and span ids it makes
        try:
            child = client.start_trace("child")
            os.write(write, f"{child.trace_id} {child.span_id}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_trace_id, child_span_id = os.read(read, 100).decode().split()
    os.close(read)
    span = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
    other = client.start_trace("parent again")
    assert child_span_id != span.span_id
    assert child_trace_id != other.trace_id
    client.end_span(root.trace_id, span.span_id)
    client.end_trace(root.trace_id)
    client.end_trace(other.trace_id)


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork is POSIX only")
def test_a_forked_child_gets_its_own_ids_and_pipeline(client: TracingClient) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: trace and flush to its own store, report ids through the pipe
        try:
            root = client.start_trace("child")
            client.end_trace(root.trace_id)
            ok = client.flush(5)
            os.write(write, f"{root.trace_id} {ok}".encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_id, child_ok = os.read(read, 100).decode().split()
    os.close(read)
    parent = client.start_trace("parent")
    assert status == 0 and child_ok == "True"
    assert child_id != parent.trace_id
    client.end_trace(parent.trace_id)
    assert client.flush(5)
    assert client.get_trace(child_id) is None  # the child's memory store is its own


def test_the_attribute_limit_holds_for_attributes_given_when_a_trace_starts() -> None:
    limits = Limits(max_attributes_per_span=2)
    given = {"a": 1, "b": 2, "c": 3, "d": 4}
    with TracingClient("memory://", limits=limits) as small:
        plain = small.start_trace("t", attributes=given)
        remote = small.start_trace(
            "t",
            attributes=given,
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            tracestate="vendor=value",
        )
        first = small.end_trace(plain.trace_id)
        second = small.end_trace(remote.trace_id)
    assert first is not None and second is not None
    attributes = first.spans[0].attributes
    assert {k: v for k, v in attributes.items() if not k.startswith("lowtrace.")} == {
        "a": 1,
        "b": 2,
    }
    assert attributes["lowtrace.dropped_attributes"] == 2
    attributes = second.spans[0].attributes
    assert attributes["lowtrace.tracestate"] == "vendor=value"  # lowtrace's own: kept
    assert len([k for k in attributes if not k.startswith("lowtrace.")]) <= 2


class UnreadableMapping(collections.abc.Mapping[str, Any]):
    """A mapping whose every read raises (a lazy view over a closed resource, say)."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("the session is closed")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("the session is closed")

    def __len__(self) -> int:
        return 1

    def items(self) -> Any:
        raise RuntimeError("the session is closed")


class UnreadableDict(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("the session is closed")


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("mapping", [UnreadableMapping, UnreadableDict])
def test_attributes_whose_items_raise_are_recorded_as_text(
    strict: bool, mapping: type[Mapping[str, Any]]
) -> None:
    with TracingClient("memory://", strict=strict) as client:
        root = client.start_trace("t", attributes=mapping())
        span = client.start_span(
            "s",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            attributes=mapping(),
            inputs={"context": mapping()},
        )
        span.set_attributes(mapping())
        span.add_event("chunk", mapping())
        span.end(attributes=mapping())
        trace = client.end_trace(root.trace_id, attributes={"ok": 1})
        assert trace is not None
        assert client.stats().violations == {}
    for record in trace.spans:
        text = record.attributes["lowtrace.unreadable_mapping"]
        assert text == f"<unreadable {mapping.__qualname__}: RuntimeError('the session is closed')>"
    assert trace.spans[0].attributes["ok"] == 1
    # As a value it is recorded readably (a dict subclass by its own entries, read natively).
    context = trace.spans[1].inputs["context"]
    assert context == ({} if mapping is UnreadableDict else str(context))
    assert mapping is UnreadableDict or "UnreadableMapping object" in context
    assert trace.spans[1].events[0].attributes == {
        "lowtrace.unreadable_mapping": trace.spans[1].attributes["lowtrace.unreadable_mapping"]
    }


def test_fluent_attributes_whose_items_raise_are_recorded_as_text(client: TracingClient) -> None:
    lowtrace.set_default_client(client)
    try:
        with lowtrace.start_span("step", attributes=UnreadableMapping()) as span:
            span.set_attributes(UnreadableMapping())
    finally:
        lowtrace.set_default_client(None)
    assert client.flush(10)
    (trace,) = client.search_traces()
    assert "lowtrace.unreadable_mapping" in trace.spans[0].attributes


@pytest.mark.parametrize("field", ["tags", "metadata"])
def test_tags_whose_items_raise_are_a_bad_argument_never_a_foreign_error(field: str) -> None:
    with TracingClient("none://") as strict:
        with pytest.raises(InvalidArgumentError, match="could not be read"):
            strict.start_trace("t", **{field: UnreadableMapping()})
    with TracingClient("none://", strict=False) as lenient:
        root = lenient.start_trace("t", **{field: UnreadableMapping()})
        assert not root.is_recording
        assert lenient.stats().violations == {"InvalidArgumentError": 1}


class _Key(str):
    """A str subclass: recorded as a plain str."""


@pytest.mark.parametrize(
    "attributes",
    [
        {"n": 1, "f": 1.5, "b": True, "none": None, "s": "text", "edge": 2**64 - 1},
        {"n": 1, "big": 2**64},
        {"n": 1, "small": -(2**63) - 1},
        {"n": 1, "nan": float("nan")},
        {"n": 1, "inf": float("inf")},
        {"n": 1, "é": "key not ASCII"},
        {"n": 1, "v": "välue"},
        {"n": 1, "lone": "\ud800"},
        {"n": 1, _Key("sub"): "v"},
        {"n": 1, "sub": _Key("value")},
        {"n": 1, "long": "x" * 5_000},
        {"n": 1, "nested": {"a": [1, 2]}},
        {"n": 1, "t": (1, 2)},
    ],
)
def test_start_span_records_attributes_as_the_snapshot_does(attributes: dict[str, Any]) -> None:
    # start_span copies plain attributes on its own fast path; the result must be exactly
    # what the general snapshot makes of the same values, and plain str keys and values.
    limits = Limits(max_value_bytes=8_000)
    expected, _, size = snapshot_sized(attributes, limits.max_value_bytes, "attributes")
    with TracingClient("none://", limits=limits) as client:
        root, step = one_span(client, attributes=attributes)
        assert client._traces[root.trace_id].payload == size  # the root has no attributes
        step.end()
        span = finish(client, root).spans[1]
    assert dict(span.attributes) == expected
    assert [type(k) for k in span.attributes] == [str] * len(attributes)
    for key, value in span.attributes.items():
        if isinstance(value, str):
            assert type(value) is str, key
