"""The stored JSON form of traces: the written-out span and summary encoders match the
generic ones."""

from __future__ import annotations

import orjson
from hypothesis import given, settings

from lowtrace import SpanType, Trace, TracingClient
from lowtrace._serde import (
    _cattrs_unstructure_info,
    _cattrs_unstructure_span,
    _info_to_dict,
    _span_to_dict,
    _unstructure_info,
    _unstructure_span,
    trace_to_json,
)
from tests.strategies import traces


def test_the_fast_span_encoder_is_in_use() -> None:
    # If this fails, SpanRecord or SpanEvent changed fields: update
    # _span_to_dict and _SPAN_FIELDS in lowtrace/_serde.py (until then the slower generic
    # cattrs hook is used, which writes the same JSON).
    assert _unstructure_span is _span_to_dict
    assert _unstructure_info is _info_to_dict  # TraceInfo: _info_to_dict and _INFO_FIELDS


@settings(max_examples=200, deadline=None)
@given(traces())
def test_fast_span_json_is_the_generic_json(trace: Trace) -> None:
    for span in trace.spans:
        assert orjson.dumps(_span_to_dict(span)) == orjson.dumps(_cattrs_unstructure_span(span))
    info = trace.info
    assert orjson.dumps(_info_to_dict(info)) == orjson.dumps(_cattrs_unstructure_info(info))
    assert Trace.from_json(trace_to_json(trace)) == trace
    assert Trace.from_bytes(trace.to_bytes()) == trace


def test_a_recorded_trace_reads_back_equal_from_its_stored_form() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("agent", inputs={"q": "hi"}, tags={"user": "u1"})
        llm = client.start_span(
            "llm",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.CHAT_MODEL,
            inputs={"messages": [{"role": "user", "content": "hi"}]},
            attributes={"model": "m", "params": {"temperature": 0.2}},
        )
        llm.add_event("first token", attributes={"n": 1})
        llm.set_token_usage(input_tokens=3, output_tokens=2, cache_read_input_tokens=1)
        llm.record_exception(ValueError("late"))
        llm.end(outputs={"text": "hello"})
        trace = client.end_trace(root.trace_id, outputs="done")
    assert trace is not None
    again = Trace.from_bytes(trace.to_bytes())
    assert again == trace
    span = again.spans[1]
    assert span.events[0].name == "first token"
    assert span.token_usage is not None and span.token_usage.total_tokens == 5
    assert span.token_usage.cache_read_input_tokens == 1
    assert span.attributes["params"] == {"temperature": 0.2}
