"""A finished trace cannot change, and no recorded value can make its delivery fail."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import attrs
import pytest

from lowtrace import SpanStatus, Trace, TracingClient
from lowtrace._frozen import FrozenDict
from lowtrace._records import SpanRecord, TokenUsage, TraceInfo, slot_setters

HUGE = 2**70
LONE = "a\ud800b"  # a lone surrogate: not encodable as UTF-8


def finished(client: TracingClient) -> Trace:
    root = client.start_trace(
        "agent", tags={"env": "prod"}, attributes={"nested": {"list": [1, {"deep": [2]}]}}
    )
    child = client.start_span(
        "tool", trace_id=root.trace_id, parent_id=root.span_id, attributes={"k": "v"}
    )
    child.add_event("chunk", {"items": [1, 2], "meta": {"a": 1}})
    child.set_token_usage(input_tokens=3, output_tokens=4)
    child.end(outputs={"answer": [1, 2]})
    trace = client.end_trace(root.trace_id, outputs="done")
    assert trace is not None
    return trace


def mutations(trace: Trace) -> list[Any]:
    root, child = trace.spans
    event = child.events[0]
    return [
        lambda: trace.info.tags.__setitem__("env", "dev"),
        lambda: trace.info.tags.update(x="y"),
        lambda: trace.info.tags.pop("env"),
        lambda: root.attributes.__setitem__("k", 1),
        root.attributes.clear,
        lambda: root.attributes["nested"].__setitem__("x", 1),
        lambda: root.attributes["nested"]["list"].append(3),
        lambda: root.attributes["nested"]["list"][1]["deep"].__setitem__(0, 9),
        lambda: child.attributes.setdefault("new", 1),
        lambda: event.attributes.__setitem__("x", 1),
        lambda: event.attributes["items"].extend([3]),
        event.attributes["meta"].popitem,
        lambda: trace.spans.__setitem__(0, child),  # type: ignore[attr-defined]
    ]


def test_a_finished_trace_cannot_be_changed_through_what_end_trace_returned() -> None:
    with TracingClient("memory://") as client:
        trace = finished(client)
        before = trace.to_json()
        for change in mutations(trace):
            with pytest.raises((TypeError, AttributeError)):
                change()
        assert trace.to_json() == before
        assert client.flush(5)
        stored = client.get_trace(trace.info.trace_id)
        assert stored == trace
        for change in mutations(stored):  # and what get_trace returns cannot change either
            with pytest.raises((TypeError, AttributeError)):
                change()


def test_calling_init_again_on_a_finished_traces_values_changes_nothing() -> None:
    with TracingClient("memory://") as client:
        trace = finished(client)
        root, child = trace.spans
        before = trace.to_json()
        trace.info.tags.__init__(env="dev")  # type: ignore[misc]  # dict.__init__ updates
        root.attributes["nested"]["list"].__init__([9])  # list.__init__ replaces the items
        child.events[0].attributes.__init__({"x": 1})  # type: ignore[misc]
        trace.info.metadata.__init__(key="value")  # type: ignore[misc]  # the shared empty one
        assert trace.to_json() == before
        assert client.flush(5)
        stored = client.get_trace(trace.info.trace_id)
        assert stored is not None and stored.to_json() == before


def test_frozen_values_still_read_compare_and_round_trip_like_json() -> None:
    with TracingClient("memory://") as client:
        trace = finished(client)
        root, child = trace.spans
        assert root.attributes == {"nested": {"list": [1, {"deep": [2]}]}}
        assert child.events[0].attributes["items"] == [1, 2]
        assert trace.info.tags == {"env": "prod"}
        assert Trace.from_json(trace.to_json()) == trace
        assert Trace.from_bytes(trace.to_bytes()) == trace
        assert pickle.loads(pickle.dumps(trace)) == trace
        assert copy.deepcopy(trace) == trace
        thawed = dict(root.attributes)  # a caller who wants to edit makes a copy
        thawed["k"] = 1
        assert "k" not in root.attributes


def test_a_finished_trace_hashes_by_content_like_any_frozen_value() -> None:
    with TracingClient("memory://") as client:
        trace = finished(client)
        again = Trace.from_json(trace.to_json())
        assert again is not trace
        assert hash(again) == hash(trace)
        assert len({trace, again, pickle.loads(pickle.dumps(trace))}) == 1
        assert {trace.spans[0]: "root"}[again.spans[0]] == "root"
        other = finished(client)
        assert len({trace, other}) == 2


def hostile_trace(client: TracingClient) -> str:
    root = client.start_trace(
        f"name {LONE}",
        tags={f"key{LONE}": f"value{LONE}", "big": HUGE},
        attributes={"huge": HUGE, "small": -(2**70), f"k{LONE}": LONE, "list": [HUGE, LONE]},
        inputs={"x": HUGE, LONE: LONE},
    )
    span = client.start_span(
        f"child{LONE}",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=f"custom{LONE}",
        attributes={"huge": HUGE},
    )
    span.set_attributes({"late": LONE, "n": HUGE})
    span.add_event(f"event{LONE}", {"n": HUGE, "s": LONE})
    span.record_exception(ValueError(LONE))
    span.end(outputs=[HUGE], status="ERROR", status_message=f"bad {LONE}")
    client.end_trace(root.trace_id, status_message=f"msg{LONE}", attributes={"end": HUGE})
    return root.trace_id


@pytest.mark.parametrize("uri", ["memory://", "sqlite:///{tmp}/t.db", "jsonl:///{tmp}/t.jsonl"])
def test_unencodable_values_are_recorded_readably_and_never_fail_a_batch(
    uri: str, tmp_path: Any
) -> None:
    with TracingClient(uri.format(tmp=tmp_path)) as client:
        ok = client.start_trace("neighbour")
        client.end_trace(ok.trace_id)
        trace_id = hostile_trace(client)
        assert client.flush(10) is True
        assert client.stats().lost_traces == 0
        assert client.get_trace(ok.trace_id) is not None
        stored = client.get_trace(trace_id)
    assert stored is not None
    root, child = stored.spans
    assert stored.info.name == "name a\ufffdb"
    assert stored.info.tags == {"key" + "a\ufffdb": "value" + "a\ufffdb", "big": str(HUGE)}
    assert stored.info.status_message == "msga\ufffdb"
    assert root.attributes["huge"] == str(HUGE)  # too big for JSON numbers: kept as text
    assert root.attributes["small"] == str(-(2**70))
    assert root.attributes["ka\ufffdb"] == "a\ufffdb"
    assert root.attributes["list"] == [str(HUGE), "a\ufffdb"]
    assert root.attributes["end"] == str(HUGE)
    assert root.inputs == {"x": str(HUGE), "a\ufffdb": "a\ufffdb"}
    assert child.name == "childa\ufffdb" and child.span_type == "customa\ufffdb"
    assert child.attributes["late"] == "a\ufffdb" and child.attributes["n"] == str(HUGE)
    assert [e.name for e in child.events] == ["eventa\ufffdb", "exception"]
    assert child.events[0].attributes == {"n": str(HUGE), "s": "a\ufffdb"}
    assert child.events[1].attributes["exception.message"] == "a\ufffdb"
    assert (child.status, child.status_message) == (SpanStatus.ERROR, "bad a\ufffdb")
    assert child.outputs == [str(HUGE)]


def test_a_tag_whose_str_raises_never_reaches_the_caller_in_lenient_mode() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    with TracingClient("memory://", strict=False) as client:
        root = client.start_trace("t", tags={"x": Hostile()})
        trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.info.tags["x"].startswith("<unprintable")


@pytest.mark.parametrize("uri", ["memory://", "sqlite:///{tmp}/t.db"])
def test_feedback_with_unencodable_text_is_stored_readably(uri: str, tmp_path: Any) -> None:
    with TracingClient(uri.format(tmp=tmp_path)) as client:
        root = client.start_trace("t")
        client.end_trace(root.trace_id)
        client.log_feedback(
            root.trace_id,
            f"name{LONE}",
            {"score": HUGE, LONE: LONE},
            source={"type": "HUMAN", f"id{LONE}": LONE},
            rationale=f"why{LONE}",
        )
        client.log_expectation(root.trace_id, f"expected{LONE}", [LONE])
        stored = client.get_trace(root.trace_id)
    assert stored is not None
    feedback, expectation = stored.info.assessments
    assert feedback.name == "namea\ufffdb" and feedback.rationale == "whya\ufffdb"
    assert feedback.value == {"score": str(HUGE), "a\ufffdb": "a\ufffdb"}
    assert feedback.source == {"type": "HUMAN", "ida\ufffdb": "a\ufffdb"}
    assert (expectation.name, expectation.value) == ("expecteda\ufffdb", ["a\ufffdb"])
    assert Trace.from_json(stored.to_json()) == stored


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no __str__")

    def __repr__(self) -> str:
        raise RuntimeError("no __repr__")


def test_arguments_whose_repr_raises_never_reach_the_caller_in_lenient_mode() -> None:
    with TracingClient("memory://", strict=False) as client:
        root = client.start_trace("t")
        client.end_trace(root.trace_id)
        tid = root.trace_id
        assert client.log_feedback(tid, Unprintable(), 1) is None  # type: ignore[arg-type]
        client.log_feedback(tid, "ok", 1, source={"id": Unprintable()})
        client.log_feedback(tid, "ok", 1, rationale=Unprintable())  # type: ignore[arg-type]
        client.set_trace_tags(tid, {Unprintable(): "v"})  # type: ignore[dict-item]
        assert sum(client.stats().violations.values()) == 3


def test_recording_calls_given_arguments_whose_repr_raises_count_a_violation() -> None:
    bad: Any = Unprintable()
    with TracingClient("memory://", strict=False) as client:
        root = client.start_trace("t")
        span = client.start_span("s", trace_id=root.trace_id, parent_id=root.span_id)
        calls = [
            lambda: client.start_trace(bad),
            lambda: client.start_trace("t", traceparent=bad),
            lambda: client.start_trace("t", span_type=bad),
            lambda: client.start_trace("t", start_time_ns=bad),
            lambda: client.start_span(bad, trace_id=root.trace_id, parent_id=root.span_id),
            lambda: client.start_span("s", trace_id=root.trace_id, parent_id=bad),
            lambda: client.end_span(root.trace_id, bad),
            lambda: client.end_trace(bad),
            lambda: span.add_event(bad),
            lambda: span.set_token_usage(input_tokens=bad),
            lambda: span.record_exception(bad),
        ]
        for call in calls:
            call()  # counted and logged, never raised
        client.end_trace(root.trace_id, status_message=bad, close_open_spans=True)
        assert sum(client.stats().violations.values()) == len(calls) + 1


def test_an_int_too_long_for_decimal_text_is_kept_as_hex_text_everywhere() -> None:
    """Python refuses str() of ints over 4300 digits: such a value must not raise into the
    caller, nor make the whole inputs mapping unreadable."""
    giant = 10**5000
    with TracingClient("memory://") as client:
        root = client.start_trace("t", attributes={"n": giant}, inputs={"x": giant, "ok": 1})
        span = client.start_span("s", trace_id=root.trace_id, parent_id=root.span_id)
        span.set_attributes({"late": giant})
        span.add_event("e", {"n": giant})
        span.end(outputs=[giant])
        client.end_trace(root.trace_id)
        assert client.flush(10) is True
        stored = client.get_trace(root.trace_id)
    assert stored is not None
    top, child = stored.spans
    assert top.attributes["n"] == hex(giant)
    assert top.inputs == {"x": hex(giant), "ok": 1}
    assert child.attributes["late"] == hex(giant)
    assert child.events[0].attributes["n"] == hex(giant)
    assert child.outputs == [hex(giant)]


def test_a_finished_trace_equals_one_built_through_the_constructors() -> None:
    # end_trace fills TraceInfo, Trace and the span records through their slots, without
    # the attrs __init__: the result must be what the constructors would have made.
    with TracingClient("none://") as client:
        root = client.start_trace(
            "agent", inputs={"q": "hi"}, tags={"env": "dev"}, metadata={"run": "7"}
        )
        step = client.start_span(
            "model",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            inputs=[{"role": "user"}],
            attributes={"n": 1, "nested": {"a": [1]}},
        )
        step.add_event("chunk", {"i": 1})
        step.set_token_usage(input_tokens=3, output_tokens=4)
        step.end(outputs="answer")
        trace = client.end_trace(root.trace_id, outputs={"a": 1})
    assert trace is not None

    def rebuilt(record: Any) -> dict[str, Any]:
        return {f.alias: getattr(record, f.name) for f in attrs.fields(type(record))}

    again = Trace(TraceInfo(**rebuilt(trace.info)), [SpanRecord(**rebuilt(s)) for s in trace.spans])
    assert again == trace
    assert trace.info.token_usage == TokenUsage(3, 4, 7)
    assert type(trace.info.tags) is FrozenDict and type(trace.spans[1].attributes) is FrozenDict
    assert trace.spans[1].inputs == [{"role": "user"}] and trace.spans[1].outputs == "answer"
    assert trace.spans[0].inputs_json == b'{"q":"hi"}'


def test_filling_records_through_their_slots_needs_every_field_in_order() -> None:
    with pytest.raises(RuntimeError, match="TraceInfo has fields"):
        slot_setters(TraceInfo, "trace_id name")
