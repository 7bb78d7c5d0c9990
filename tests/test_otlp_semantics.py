"""What each receiver reads from our OTLP: typed MLflow values, OpenInference documents,
messages and invocation parameters, the trace's name and tags, and its W3C tracestate."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lowtrace import SpanType, TokenUsage, Trace, TracingClient

pb = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="opentelemetry-proto is missing: the OTLP tests need lowtrace[otlp]",
)

from lowtrace._otlp.encode import encode_json, encode_protobuf  # noqa: E402
from lowtrace._otlp.mapping import span_attributes  # noqa: E402
from lowtrace._otlp.openinference import (  # noqa: E402
    document_attributes,
    invocation_parameters,
    message_attributes,
)


def any_value(value: Any) -> Any:
    """An OTLP AnyValue decoded the way MLflow's and Phoenix's receivers decode it."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def decoded_spans(traces: list[Trace]) -> dict[str, Any]:
    request = pb.ExportTraceServiceRequest()
    request.ParseFromString(encode_protobuf(traces, {"service.name": "t"}))
    return {s.name: s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}


def attributes_of(span: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in span.attributes}


def one_trace(
    inputs: Any, outputs: Any, tags: dict[str, str] | None = None, tracestate: str | None = None
) -> Trace:
    with TracingClient("memory://") as client:
        root = client.start_trace(
            "agent",
            span_type=SpanType.AGENT,
            inputs=inputs,
            tags=tags,
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            if tracestate
            else None,
            tracestate=tracestate,
        )
        child = client.start_span(
            "parse", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.PARSER
        )
        child.end(outputs=outputs)
        trace = client.end_trace(root.trace_id, outputs=outputs)
    assert trace is not None
    return trace


@pytest.mark.parametrize("value", [7, 3.5, True, {}, [], "", "text", {"a": [1, None, {"b": "c"}]}])
def test_inputs_and_outputs_keep_their_json_types_for_mlflow(value: Any) -> None:
    spans = decoded_spans([one_trace(value, value)])
    for name in ("agent", "parse"):
        attributes = attributes_of(spans[name])
        assert attributes["mlflow.spanOutputs"] == value
        assert type(attributes["mlflow.spanOutputs"]) is type(value)
    assert attributes_of(spans["agent"])["mlflow.spanInputs"] == value


def test_the_same_types_in_otlp_json() -> None:
    trace = one_trace({"n": 7, "e": {}, "l": [], "s": "", "z": None}, 2**70)
    doc = orjson.loads(encode_json([trace], {}))
    root = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    values = {a["key"]: a["value"] for a in root["attributes"]}
    assert values["mlflow.spanInputs"] == {
        "kvlistValue": {
            "values": [
                {"key": "n", "value": {"intValue": "7"}},
                {"key": "e", "value": {"kvlistValue": {"values": []}}},
                {"key": "l", "value": {"arrayValue": {"values": []}}},
                {"key": "s", "value": {"stringValue": ""}},
                {"key": "z", "value": {}},
            ]
        }
    }
    assert values["mlflow.spanOutputs"] == {"stringValue": str(2**70)}  # beyond int64


def test_span_type_trace_name_and_tags_for_mlflow() -> None:
    spans = decoded_spans([one_trace("q", "a", tags={"env": "prod", "team": "search"})])
    root, child = attributes_of(spans["agent"]), attributes_of(spans["parse"])
    assert root["mlflow.spanType"] == "AGENT" and child["mlflow.spanType"] == "PARSER"
    assert child["openinference.span.kind"] == "CHAIN"  # OpenInference has no PARSER kind
    assert root["mlflow.traceTag.mlflow.traceName"] == "agent"
    assert (root["mlflow.traceTag.env"], root["mlflow.traceTag.team"]) == ("prod", "search")
    assert not any(key.startswith("mlflow.traceTag.") for key in child)
    assert not any(key.startswith("lowtrace.") for key in {**root, **child})


def test_tracestate_is_every_spans_trace_state_not_an_attribute() -> None:
    spans = decoded_spans([one_trace("q", "a", tracestate="congo=t61rcWkgMzE,rojo=1")])
    assert {s.trace_state for s in spans.values()} == {"congo=t61rcWkgMzE,rojo=1"}
    assert "lowtrace.tracestate" not in attributes_of(spans["agent"])
    assert {s.trace_state for s in decoded_spans([one_trace("q", "a")]).values()} == {""}
    doc = orjson.loads(encode_json([one_trace("q", "a", tracestate="a=1")], {}))
    assert {s["traceState"] for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]} == {"a=1"}


def test_retrieved_documents() -> None:
    outputs = [
        {"page_content": "Paris is in France", "metadata": {"source": "wiki"}, "id": "d1"},
        {"content": "Lyon too", "score": 0.5, "doc_id": 7},
        "a plain string",
        {"id": "1234", "status": "shipped"},
    ]
    a = document_attributes(outputs)
    assert a["retrieval.documents.0.document.content"] == "Paris is in France"
    assert a["retrieval.documents.0.document.id"] == "d1"
    assert orjson.loads(a["retrieval.documents.0.document.metadata"]) == {"source": "wiki"}
    assert a["retrieval.documents.1.document.score"] == 0.5
    assert a["retrieval.documents.1.document.id"] == "7"
    assert a["retrieval.documents.2.document.content"] == "a plain string"
    assert a["retrieval.documents.3.document.id"] == "1234"
    assert orjson.loads(a["retrieval.documents.3.document.content"]) == {"status": "shipped"}
    assert document_attributes({"documents": ["x"]}) == {
        "retrieval.documents.0.document.content": "x"
    }
    assert document_attributes("not documents") == {} and document_attributes([]) == {}


def test_chat_messages_in_and_out() -> None:
    inputs = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url"}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
    }
    outputs = {"choices": [{"message": {"role": "assistant", "content": "Sunny in Oslo."}}]}
    a = message_attributes(inputs, outputs)
    assert a["llm.input_messages.0.message.role"] == "system"
    assert a["llm.input_messages.0.message.content"] == "Be brief."
    assert a["llm.input_messages.1.message.contents.0.message_content.text"] == "Hi"
    assert a["llm.input_messages.1.message.contents.1.message_content.type"] == "image_url"
    call = "llm.input_messages.2.message.tool_calls.0.tool_call"
    assert (a[f"{call}.id"], a[f"{call}.function.name"]) == ("c1", "weather")
    assert a[f"{call}.function.arguments"] == '{"city":"Oslo"}'
    assert a["llm.input_messages.3.message.tool_call_id"] == "c1"
    assert a["llm.output_messages.0.message.role"] == "assistant"
    assert a["llm.output_messages.0.message.content"] == "Sunny in Oslo."
    plain = message_attributes([{"role": "user", "content": "q"}], "an answer")
    assert plain["llm.output_messages.0.message.content"] == "an answer"
    assert message_attributes("a prompt", {"content": "x"}) == {
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "x",
    }


def test_invocation_parameters() -> None:
    params = invocation_parameters({"model": "m", "temperature": 0.2, "stop": ["\n"], "x": 1})
    assert params is not None
    assert orjson.loads(params) == {"model": "m", "temperature": 0.2, "stop": ["\n"]}
    langchain = invocation_parameters({"invocation_params": {"temperature": 0, "model": "m"}})
    assert langchain is not None and orjson.loads(langchain) == {"temperature": 0, "model": "m"}
    assert invocation_parameters({"customer": "gold"}) is None


def test_a_chat_span_carries_messages_parameters_and_usage() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("agent")
        chat = client.start_span(
            "chat",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.CHAT_MODEL,
            inputs={"messages": [{"role": "user", "content": "Where is my order?"}]},
            attributes={"model": "gpt-4o-mini", "temperature": 0.2},
        )
        chat.set_token_usage(input_tokens=31, output_tokens=9)
        chat.end(outputs={"content": "It has shipped."})
        trace = client.end_trace(root.trace_id)
    assert trace is not None
    a = span_attributes(trace.spans[1])
    assert a["mlflow.spanType"] == "CHAT_MODEL" and a["openinference.span.kind"] == "LLM"
    assert a["llm.input_messages.0.message.content"] == "Where is my order?"
    assert a["llm.output_messages.0.message.content"] == "It has shipped."
    assert orjson.loads(str(a["llm.invocation_parameters"])) == {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
    }
    assert (a["llm.token_count.prompt"], a["llm.token_count.total"]) == (31, 40)
    usage = trace.spans[1].token_usage
    assert usage == TokenUsage(31, 9, 40)


@pytest.mark.parametrize(
    ("receiver", "typed", "text"),
    [("any", True, True), ("mlflow", True, False), ("openinference", False, True)],
)
def test_each_receiver_gets_one_copy_of_the_values_it_reads(
    receiver: str, typed: bool, text: bool
) -> None:
    trace = one_trace({"q": 1}, "a", tags={"env": "prod"})
    root = span_attributes(trace.spans[0], trace.info, receiver)
    assert ("mlflow.spanInputs" in root, "mlflow.spanOutputs" in root) == (typed, typed)
    assert ("input.value" in root, "output.value" in root) == (text, text)
    assert ("mlflow.traceTag.env" in root) == typed and ("metadata" in root) == text
    assert root["mlflow.spanType"] == "AGENT"  # the exact type, whatever the receiver


def test_the_exporter_picks_mlflow_when_it_sends_to_an_experiment() -> None:
    from lowtrace import InvalidArgumentError
    from lowtrace.exporters.otlp import OTLPExporter

    url = "http://127.0.0.1:9/v1/traces"
    assert OTLPExporter(url, headers={"X-MLflow-Experiment-Id": "3"}).receiver == "mlflow"
    assert OTLPExporter(url).receiver == "any"
    assert OTLPExporter(url, receiver="openinference").receiver == "openinference"
    with pytest.raises(InvalidArgumentError, match="receiver"):
        OTLPExporter(url, receiver="jaeger")


def test_prompt_cache_counts_for_openinference() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("agent")
        chat = client.start_span(
            "claude",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.CHAT_MODEL,
            attributes={
                "llm.usage.cache_read_input_tokens": 120,
                "llm.usage.cache_creation_input_tokens": 30,
            },
        )
        chat.set_token_usage(input_tokens=200, output_tokens=10)
        chat.end()
        trace = client.end_trace(root.trace_id)
    assert trace is not None
    a = span_attributes(trace.spans[1])
    assert a["llm.token_count.prompt_details.cache_read"] == 120
    assert a["llm.token_count.prompt_details.cache_write"] == 30
    assert "llm.token_count.prompt_details.cache_read" not in span_attributes(trace.spans[0])
