"""lowtrace spans in OpenTelemetry terms: span kind, status, flags and attributes.

Every span carries its values under both vocabularies receivers understand:
OpenInference (Phoenix, Arize: ``openinference.span.kind``, ``input.value``,
``llm.token_count.*``, ``llm.model_name``) and the OpenTelemetry GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.usage.*``, ``gen_ai.request.model``), plus
``lowtrace.span_type``. Attributes the user set explicitly are sent as they are and win
over derived ones with the same key. Values become OTLP-compatible: scalars stay, lists of
one scalar type become arrays, anything else (dicts, mixed lists) becomes a JSON string.
This module needs no protobuf; ``encode`` turns its output into OTLP messages or JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import orjson

from lowtrace._model import SpanRecord, TraceInfo
from lowtrace._types import SpanStatus, SpanType

__all__ = [
    "FLAGS_LOCAL_PARENT",
    "FLAGS_REMOTE_PARENT",
    "KIND_CLIENT",
    "KIND_INTERNAL",
    "AttrValue",
    "attr_value",
    "event_attributes",
    "span_attributes",
    "span_flags",
    "span_kind",
    "status_code",
    "trace_attributes",
]

Scalar: TypeAlias = str | bool | int | float
AttrValue: TypeAlias = Scalar | list[str] | list[bool] | list[int] | list[float]

KIND_INTERNAL: Final = 1
KIND_CLIENT: Final = 3
# Span.flags: the W3C trace flags (sampled) in bits 0-7, then "has is_remote" and "is_remote".
FLAGS_LOCAL_PARENT: Final = 0x01 | 0x100
FLAGS_REMOTE_PARENT: Final = 0x01 | 0x100 | 0x200
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

# Model calls go to another service: CLIENT, as the GenAI conventions ask; the rest runs here.
_CLIENT_TYPES: Final = frozenset({SpanType.LLM, SpanType.CHAT_MODEL, SpanType.EMBEDDING})
_MODEL_TYPES: Final = _CLIENT_TYPES | {SpanType.RERANKER}
_OPENINFERENCE_KIND: Final[Mapping[str, str]] = {
    SpanType.CHAIN: "CHAIN",
    SpanType.AGENT: "AGENT",
    SpanType.TOOL: "TOOL",
    SpanType.LLM: "LLM",
    SpanType.CHAT_MODEL: "LLM",
    SpanType.RETRIEVER: "RETRIEVER",
    SpanType.EMBEDDING: "EMBEDDING",
    SpanType.RERANKER: "RERANKER",
    SpanType.PARSER: "CHAIN",
    SpanType.MEMORY: "CHAIN",
    SpanType.GUARDRAIL: "GUARDRAIL",
    SpanType.EVALUATOR: "EVALUATOR",
    SpanType.UNKNOWN: "UNKNOWN",
}
_GENAI_OPERATION: Final[Mapping[str, str]] = {
    SpanType.LLM: "text_completion",
    SpanType.CHAT_MODEL: "chat",
    SpanType.EMBEDDING: "embeddings",
    SpanType.RETRIEVER: "retrieval",
    SpanType.TOOL: "execute_tool",
    SpanType.AGENT: "invoke_agent",
}
_STATUS: Final[Mapping[str, int]] = {SpanStatus.UNSET: 0, SpanStatus.OK: 1, SpanStatus.ERROR: 2}
# Where integrations and users put the model name, most specific first.
_REQUEST_MODEL_KEYS: Final = (
    "gen_ai.request.model",
    "llm.model_name",
    "model",
    "model_name",
    "ls_model_name",
)
_RESPONSE_MODEL_KEYS: Final = ("gen_ai.response.model", "openai.response_model")
_SESSION_TAGS: Final = ("session.id", "session_id", "mlflow.trace.session")
_USER_TAGS: Final = ("user.id", "user_id", "mlflow.trace.user")


def span_kind(span_type: str) -> int:
    """The OTLP ``SpanKind``: CLIENT for model calls, INTERNAL for everything else."""
    return KIND_CLIENT if span_type in _CLIENT_TYPES else KIND_INTERNAL


def status_code(status: str) -> int:
    """The OTLP ``Status.StatusCode`` of a lowtrace status."""
    return _STATUS.get(status, 0)


def span_flags(span: SpanRecord, local_ids: set[str] | frozenset[str]) -> int:
    """Span flags: sampled, and whether the parent lives in another process."""
    parent = span.parent_id
    if parent is not None and parent not in local_ids:
        return FLAGS_REMOTE_PARENT
    return FLAGS_LOCAL_PARENT


def _scalar(value: Any) -> Scalar | None:
    kind = type(value)
    if kind is str or kind is bool or kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    return None


def attr_value(value: Any) -> AttrValue | None:
    """An OTLP-compatible attribute value; None for None (OTLP has no null attribute)."""
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if value is None:
        return None
    if isinstance(value, bool):  # subclasses of the scalar types: enums, numpy scalars
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return _scalar(int(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list | tuple):
        if not value:
            return []
        items = [_scalar(v) for v in value]
        kinds = {type(v) for v in items}
        if len(kinds) == 1 and type(None) not in kinds:
            return items  # type: ignore[return-value]
        if kinds == {int, float}:
            return [float(v) for v in items]  # type: ignore[arg-type]
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return str(value)
    return orjson.loads(text) if text[:1] == b'"' else text.decode()


def event_attributes(attributes: Mapping[str, Any]) -> dict[str, AttrValue]:
    """An event's attributes as OTLP-compatible values (None values dropped)."""
    out: dict[str, AttrValue] = {}
    for key, value in attributes.items():
        converted = attr_value(value)
        if converted is not None:
            out[str(key)] = converted
    return out


def _json_value(raw: bytes) -> tuple[str, str] | None:
    """(value, mime type) of a recorded input or output; None when nothing was recorded."""
    if raw == b"null":
        return None
    if raw[:1] == b'"':
        return orjson.loads(raw), "text/plain"
    return raw.decode("utf-8", "replace"), "application/json"


def _first(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def trace_attributes(info: TraceInfo) -> dict[str, AttrValue]:
    """What every span of a trace carries: its ``session.id`` and ``user.id``."""
    out: dict[str, AttrValue] = {}
    if info.session_id:
        out["session.id"] = info.session_id
    if info.user_id:
        out["user.id"] = info.user_id
    return out


def span_attributes(
    span: SpanRecord,
    tags: Mapping[str, str] | None = None,
    shared: Mapping[str, AttrValue] | None = None,
) -> dict[str, AttrValue]:
    """All OTLP attributes of a span; ``tags`` (the trace's) are given for the root only,
    ``shared`` (``trace_attributes``) for every span."""
    user = span.attributes
    out: dict[str, AttrValue] = {}
    for key, value in user.items():
        converted = attr_value(value)
        if converted is not None:
            out[key] = converted
    setdefault = out.setdefault
    if shared:
        for key, shared_value in shared.items():
            setdefault(key, shared_value)
    span_type = str(span.span_type)
    setdefault("lowtrace.span_type", span_type)
    setdefault("openinference.span.kind", _OPENINFERENCE_KIND.get(span_type, "UNKNOWN"))
    operation = _GENAI_OPERATION.get(span_type)
    if operation is not None:
        setdefault("gen_ai.operation.name", operation)
        if span_type == SpanType.TOOL:
            setdefault("gen_ai.tool.name", span.name)
            setdefault("tool.name", span.name)
        elif span_type == SpanType.AGENT:
            setdefault("gen_ai.agent.name", span.name)
    for prefix, raw in (("input", span.inputs_json), ("output", span.outputs_json)):
        found = _json_value(raw)
        if found is not None:
            setdefault(f"{prefix}.value", found[0])
            setdefault(f"{prefix}.mime_type", found[1])
    request_model = response_model = None
    if span_type in _MODEL_TYPES:
        request_model = _first(user, _REQUEST_MODEL_KEYS)
        response_model = _first(user, _RESPONSE_MODEL_KEYS)
    if request_model:
        setdefault("gen_ai.request.model", request_model)
    if response_model:
        setdefault("gen_ai.response.model", response_model)
    if request_model or response_model:
        setdefault("llm.model_name", response_model or request_model or "")
    if any(key.startswith("openai.") for key in user):
        setdefault("gen_ai.provider.name", "openai")
        setdefault("llm.provider", "openai")
    usage = span.token_usage
    if usage is not None:
        setdefault("llm.token_count.prompt", usage.input_tokens)
        setdefault("llm.token_count.completion", usage.output_tokens)
        setdefault("llm.token_count.total", usage.total_tokens)
        setdefault("gen_ai.usage.input_tokens", usage.input_tokens)
        setdefault("gen_ai.usage.output_tokens", usage.output_tokens)
    if tags:
        for key, value in tags.items():
            setdefault(f"lowtrace.tag.{key}", value)
        setdefault("metadata", orjson.dumps(dict(tags)).decode())
        session = _first(tags, _SESSION_TAGS)
        if session:
            setdefault("session.id", session)
        user_id = _first(tags, _USER_TAGS)
        if user_id:
            setdefault("user.id", user_id)
    return out
