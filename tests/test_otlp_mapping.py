"""The OTLP mapping (semantic conventions, values, flags), the encoders and the settings."""

from __future__ import annotations

import enum
import logging
from typing import Any

import orjson
import pytest

from lowtrace import SpanEvent, SpanRecord, SpanStatus, SpanType, TokenUsage, Trace, TraceInfo
from lowtrace._otlp.config import DEFAULT_ENDPOINT, parse_key_values, resolve_settings
from lowtrace._otlp.encode import encode_json, split_encode
from lowtrace._otlp.mapping import (
    FLAGS_LOCAL_PARENT,
    FLAGS_REMOTE_PARENT,
    KIND_CLIENT,
    KIND_INTERNAL,
    attr_value,
    span_attributes,
    span_flags,
    span_kind,
    status_code,
)
from lowtrace.errors import InvalidArgumentError

T = "0af7651916cd43dd8448eb211c80319c"
ROOT = "b7ad6b7169203331"
CHILD = "00f067aa0ba902b7"


def record(span_type: str = SpanType.UNKNOWN, **kwargs: Any) -> SpanRecord:
    fields: dict[str, Any] = {
        "trace_id": T,
        "span_id": CHILD,
        "parent_id": ROOT,
        "name": "step",
        "span_type": span_type,
        "start_time_ns": 1_700_000_000_000_000_001,
        "end_time_ns": 1_700_000_000_500_000_002,
    }
    fields.update(kwargs)
    return SpanRecord(**fields)


def trace_of(*spans: SpanRecord, tags: dict[str, str] | None = None) -> Trace:
    info = TraceInfo(
        trace_id=T,
        name=spans[0].name,
        status=SpanStatus.OK,
        status_message=None,
        start_time_ns=spans[0].start_time_ns,
        end_time_ns=spans[0].end_time_ns,
        tags=tags or {},
        span_count=len(spans),
    )
    return Trace(info, spans)


# -- kinds, statuses, flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span_type", "kind", "openinference", "operation"),
    [
        (SpanType.LLM, KIND_CLIENT, "LLM", "text_completion"),
        (SpanType.CHAT_MODEL, KIND_CLIENT, "LLM", "chat"),
        (SpanType.EMBEDDING, KIND_CLIENT, "EMBEDDING", "embeddings"),
        (SpanType.RETRIEVER, KIND_INTERNAL, "RETRIEVER", "retrieval"),
        (SpanType.TOOL, KIND_INTERNAL, "TOOL", "execute_tool"),
        (SpanType.AGENT, KIND_INTERNAL, "AGENT", "invoke_agent"),
        (SpanType.CHAIN, KIND_INTERNAL, "CHAIN", None),
        (SpanType.RERANKER, KIND_INTERNAL, "RERANKER", None),
        (SpanType.PARSER, KIND_INTERNAL, "CHAIN", None),
        (SpanType.GUARDRAIL, KIND_INTERNAL, "GUARDRAIL", None),
        (SpanType.EVALUATOR, KIND_INTERNAL, "EVALUATOR", None),
        (SpanType.UNKNOWN, KIND_INTERNAL, "UNKNOWN", None),
        ("MY_CUSTOM_TYPE", KIND_INTERNAL, "UNKNOWN", None),
    ],
)
def test_span_type_vocabularies(
    span_type: str, kind: int, openinference: str, operation: str | None
) -> None:
    span = record(span_type)
    attributes = span_attributes(span)
    assert span_kind(span.span_type) == kind
    assert attributes["openinference.span.kind"] == openinference
    assert attributes["mlflow.spanType"] == str(span_type)  # the exact type, for MLflow
    assert attributes.get("gen_ai.operation.name") == operation


def test_statuses() -> None:
    assert [status_code(s) for s in (SpanStatus.UNSET, SpanStatus.OK, SpanStatus.ERROR)] == [
        0,
        1,
        2,
    ]


def test_remote_parent_flag() -> None:
    assert span_flags(record(), {ROOT, CHILD}) == FLAGS_LOCAL_PARENT
    assert span_flags(record(parent_id=None), {CHILD}) == FLAGS_LOCAL_PARENT
    assert span_flags(record(), {CHILD}) == FLAGS_REMOTE_PARENT  # continued from elsewhere


# -- attributes -----------------------------------------------------------------------------------


def test_inputs_outputs_tokens_and_model() -> None:
    span = record(
        SpanType.CHAT_MODEL,
        inputs={"messages": [{"role": "user", "content": "hi"}]},
        outputs="hello there",
        attributes={"model": "gpt-4o-mini", "openai.response_model": "gpt-4o-mini-2024"},
        token_usage=TokenUsage(12, 7, 19),
    )
    a = span_attributes(span)
    assert orjson.loads(str(a["input.value"])) == {"messages": [{"role": "user", "content": "hi"}]}
    assert a["input.mime_type"] == "application/json"
    assert (a["output.value"], a["output.mime_type"]) == ("hello there", "text/plain")
    assert (a["llm.token_count.prompt"], a["llm.token_count.completion"]) == (12, 7)
    assert a["llm.token_count.total"] == 19
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 7)
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024"
    assert a["llm.model_name"] == "gpt-4o-mini-2024"
    assert a["gen_ai.provider.name"] == "openai"


def test_nothing_recorded_means_no_value_attributes() -> None:
    a = span_attributes(record(SpanType.CHAIN, attributes={"model": "m"}))
    assert not {"input.value", "output.value", "llm.token_count.total"} & set(a)
    assert "llm.model_name" not in a  # a chain is no model call


def test_user_attributes_win_over_derived_ones() -> None:
    span = record(SpanType.TOOL, inputs={"x": 1}, attributes={"input.value": "mine", "n": None})
    a = span_attributes(span)
    assert a["input.value"] == "mine"
    assert a["gen_ai.tool.name"] == "step"
    assert "n" not in a  # OTLP has no null attribute


def test_tags_go_on_the_root() -> None:
    root = record(SpanType.AGENT, span_id=ROOT, parent_id=None, name="agent")
    tags = {"env": "prod", "session_id": "s-1", "user.id": "u-9"}
    a = span_attributes(root, trace_of(root, tags=tags).info)
    assert a["mlflow.traceTag.env"] == "prod"
    assert a["mlflow.traceTag.mlflow.traceName"] == "agent"
    assert orjson.loads(str(a["metadata"])) == tags
    assert (a["session.id"], a["user.id"]) == ("s-1", "u-9")
    assert a["gen_ai.agent.name"] == "agent"


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str, enum.Enum):  # noqa: UP042 - the pre-3.11 spelling on purpose
    ADA = "ada"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s", "s"),
        (True, True),
        (3, 3),
        (2.5, 2.5),
        (2**63, str(2**63)),  # beyond int64
        (-(2**63), -(2**63)),
        ([1, 2], [1, 2]),
        ((True, False), [True, False]),
        (["a", "b"], ["a", "b"]),
        ([1, 2.5], [1.0, 2.5]),  # numbers of mixed types: doubles
        ([], []),
        ([1, "a"], '[1,"a"]'),  # heterogeneous: JSON
        ([None], "[null]"),
        ([[1]], "[[1]]"),
        ({"a": {"b": 1}}, '{"a":{"b":1}}'),
        ({1: "x"}, '{"1":"x"}'),
        (None, None),
        (Level.HIGH, 3),
        (Name.ADA, "ada"),
    ],
)
def test_attribute_values(value: Any, expected: Any) -> None:
    converted = attr_value(value)
    assert converted == expected
    assert type(converted) is type(expected)


def test_unserialisable_values_become_text() -> None:
    assert attr_value(Color.RED) == "red"
    assert attr_value({1, 2}) == "{1, 2}"
    assert attr_value(object()) is not None


def test_events_dropped_counts_and_status_in_json() -> None:
    span = record(
        SpanType.TOOL,
        status=SpanStatus.ERROR,
        status_message="ValueError: bad",
        attributes={"lowtrace.dropped_attributes": 3, "lowtrace.dropped_events": 2},
        events=(
            SpanEvent(
                "exception",
                1_700_000_000_100_000_000,
                {"exception.type": "ValueError", "exception.message": "bad", "extra": {"k": 1}},
            ),
        ),
    )
    root = record(SpanType.AGENT, span_id=ROOT, parent_id=None, name="agent")
    doc = orjson.loads(encode_json([trace_of(root, span, tags={"k": "v"})], {"service.name": "s"}))
    [scope] = doc["resourceSpans"][0]["scopeSpans"]
    out_root, out = scope["spans"]
    assert out["status"] == {"code": 2, "message": "ValueError: bad"}
    assert (out["droppedAttributesCount"], out["droppedEventsCount"]) == (3, 2)
    [event] = out["events"]
    assert event["timeUnixNano"] == "1700000000100000000"
    event_attrs = {a["key"]: a["value"] for a in event["attributes"]}
    assert event_attrs["exception.type"] == {"stringValue": "ValueError"}
    assert event_attrs["extra"] == {"stringValue": '{"k":1}'}
    root_keys = {a["key"] for a in out_root["attributes"]}
    assert "mlflow.traceTag.k" in root_keys
    assert "mlflow.traceTag.k" not in {a["key"] for a in out["attributes"]}
    assert out_root["parentSpanId"] == "" and out_root["flags"] == FLAGS_LOCAL_PARENT


def test_non_finite_doubles_in_json() -> None:
    span = record(attributes={"nan": float("nan"), "inf": float("-inf")})
    doc = orjson.loads(encode_json([trace_of(span)], {}))
    values = {
        a["key"]: a["value"]
        for a in doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    }
    assert values["nan"] == {"doubleValue": "NaN"}
    assert values["inf"] == {"doubleValue": "-Infinity"}


def test_split_keeps_traces_whole() -> None:
    traces = [
        trace_of(record(trace_id=f"{i:032x}", span_id=f"{i + 1:016x}", inputs="z" * 500))
        for i in range(1, 9)
    ]
    parts = split_encode(traces, {}, "json", 2000)
    assert len(parts) > 1
    assert [t for group, _ in parts for t in group] == traces
    assert all(len(body) <= 2000 for _, body in parts)
    [(single, _)] = split_encode(traces[:1], {}, "json", 10)  # one trace is never cut
    assert single == traces[:1]


# -- settings -------------------------------------------------------------------------------------


def test_endpoint_resolution() -> None:
    assert resolve_settings(env={}).endpoint == DEFAULT_ENDPOINT
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318"}
    assert resolve_settings(env=base).endpoint == "https://collector:4318/v1/traces"
    base_path = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h/otlp/"}
    assert resolve_settings(env=base_path).endpoint == "http://h/otlp/v1/traces"
    both = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:1/custom"}
    assert resolve_settings(env=both).endpoint == "http://h:1/custom"  # used as is
    assert resolve_settings("http://arg/x", env=both).endpoint == "http://arg/x"
    with pytest.raises(InvalidArgumentError):
        resolve_settings("localhost:4318", env={})
    with pytest.raises(InvalidArgumentError):
        resolve_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://h:4317"})


def test_headers_compression_timeout_protocol_resource(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": "Api-Key=a%3Db%2Cc , x-one = 1,broken,=novalue",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-one=2",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-resource,deployment.environment=dev",
    }
    with caplog.at_level(logging.WARNING, logger="lowtrace"):
        settings = resolve_settings(headers={"X-Two": "3"}, env=env)
    assert settings.headers == {"api-key": "a=b,c", "x-one": "2", "x-two": "3"}
    assert "broken" in caplog.text
    assert (settings.compression, settings.timeout_s, settings.encoding) == ("gzip", 2.5, "json")
    assert settings.resource == {"service.name": "from-resource", "deployment.environment": "dev"}
    env["OTEL_SERVICE_NAME"] = "from-service-name"
    assert resolve_settings(env=env).resource["service.name"] == "from-service-name"
    assert resolve_settings(service_name="arg", env=env).resource["service.name"] == "arg"
    assert resolve_settings(env={}).resource == {"service.name": "lowtrace"}
    assert resolve_settings(compression="none", timeout=1, env=env).compression == "none"


def test_trace_specific_variables_beat_generic_ones() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "3000",
    }
    settings = resolve_settings(env=env)
    assert (settings.compression, settings.timeout_s) == ("none", 3.0)


def test_bad_settings(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InvalidArgumentError):
        resolve_settings(compression="brotli", env={})
    with pytest.raises(InvalidArgumentError):
        resolve_settings(timeout=0, env={})
    with pytest.raises(InvalidArgumentError):
        resolve_settings(encoding="grpc", env={})
    with pytest.raises(InvalidArgumentError):
        resolve_settings(headers={"a": "b\r\nc: d"}, env={})
    with caplog.at_level(logging.WARNING, logger="lowtrace"):
        settings = resolve_settings(
            env={
                "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            }
        )
    assert (settings.compression, settings.timeout_s, settings.encoding) == (
        "none",
        10.0,
        "protobuf",
    )
    assert caplog.text.count("lowtrace") >= 3


def test_parse_key_values() -> None:
    assert parse_key_values("a=1,b=%20x%20", "t") == {"a": "1", "b": " x "}
    assert parse_key_values("", "t") == {}
    assert parse_key_values(None, "t") == {}


def test_session_and_user_go_on_every_span_in_both_encodings() -> None:
    import attrs

    from lowtrace._otlp.encode import encode_protobuf

    root = record(SpanType.AGENT, span_id=ROOT, parent_id=None, name="agent")
    child = record(SpanType.TOOL, attributes={"session.id": "mine"})
    plain = trace_of(root, child)
    trace = Trace(attrs.evolve(plain.info, session_id="chat-7", user_id="alice"), plain.spans)
    doc = orjson.loads(encode_json([trace], {"service.name": "s"}))
    out_root, out_child = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    root_attrs = {a["key"]: a["value"] for a in out_root["attributes"]}
    child_attrs = {a["key"]: a["value"] for a in out_child["attributes"]}
    assert root_attrs["session.id"] == {"stringValue": "chat-7"}
    assert root_attrs["user.id"] == {"stringValue": "alice"}
    assert child_attrs["session.id"] == {"stringValue": "mine"}  # the span's own value wins
    assert child_attrs["user.id"] == {"stringValue": "alice"}
    untouched = orjson.loads(encode_json([plain], {"service.name": "s"}))
    keys = {
        a["key"]
        for s in untouched["resourceSpans"][0]["scopeSpans"][0]["spans"]
        for a in s["attributes"]
    }
    assert "user.id" not in keys
    encoded = encode_protobuf([trace], {"service.name": "s"})
    assert b"chat-7" in encoded and b"alice" in encoded
