"""lowtrace spans in OpenTelemetry terms: span kind, status, flags and attributes.

The attribute set is chosen so that each kind of receiver reads the trace as recorded, and
no value travels more often than a receiver needs:

* MLflow (its OTLP route stores every attribute JSON-encoded and reads ``mlflow.spanType``,
  ``mlflow.spanInputs`` / ``mlflow.spanOutputs``, and trace tags from the root's
  ``mlflow.traceTag.<key>``, the trace name among them as ``mlflow.traceName``). Inputs
  and outputs go there as typed OTLP values (kvlist, array, int, double, bool, string), so
  ``7`` stays 7 and ``{}``, ``[]`` and ``""`` stay themselves: its translation of
  ``input.value`` would turn them into strings or None.
* OpenInference (Phoenix, Arize, and MLflow's fallback translator): ``openinference.span.kind``,
  ``input.value`` / ``output.value`` with their mime type (text, or JSON text), token counts,
  model name, ``metadata``, ``session.id`` / ``user.id``, and, derived from the values,
  retrieval documents, chat messages and ``llm.invocation_parameters``.
* OpenTelemetry GenAI conventions: only the small descriptive ones (operation, model,
  provider, token usage, tool/agent name). Message content (``gen_ai.input.messages``) is
  not sent: it would be a third copy of every input and output.

Which of the two copies of an input is sent depends on the receiver the exporter is told
about (``RECEIVERS``): "mlflow" (chosen automatically when the ``x-mlflow-experiment-id``
header is set) sends only the typed copy, "openinference" only the text, "any" (a
Collector, which may fan out to both) both. Chat spans also carry their messages: the
structured form Phoenix's and MLflow's chat views read. The span type travels once as
``mlflow.spanType`` in every case (the exact lowtrace type; OpenInference's kinds are
coarser: CHAT_MODEL is "LLM" there, PARSER and MEMORY are "CHAIN"). Attributes the user set
explicitly are sent as they are and win over derived ones with the same key. Other values
become OTLP-compatible: scalars stay, lists of one scalar type become arrays, anything else
(dicts, mixed lists) becomes a JSON string. This module needs no protobuf; ``encode`` turns
its output into OTLP messages or JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import attrs
import orjson

from lowtrace._model import SpanRecord, TraceInfo
from lowtrace._otlp.openinference import (
    document_attributes,
    invocation_parameters,
    message_attributes,
)
from lowtrace._traceparent import TRACESTATE_ATTRIBUTE
from lowtrace._types import SpanStatus, SpanType

__all__ = [
    "FLAGS_LOCAL_PARENT",
    "FLAGS_REMOTE_PARENT",
    "KIND_CLIENT",
    "KIND_INTERNAL",
    "RECEIVERS",
    "AttrValue",
    "TypedJson",
    "attr_value",
    "event_attributes",
    "span_attributes",
    "span_flags",
    "span_kind",
    "status_code",
    "trace_attributes",
    "trace_state",
]


@attrs.frozen
class TypedJson:
    """A JSON value sent with its JSON types as an OTLP ``AnyValue`` (kvlist, array...)."""

    value: Any


Scalar: TypeAlias = str | bool | int | float
AttrValue: TypeAlias = Scalar | list[str] | list[bool] | list[int] | list[float] | TypedJson

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
_MESSAGE_TYPES: Final = frozenset({SpanType.LLM, SpanType.CHAT_MODEL})
# Read by MLflow's OTLP route (mlflow.tracing.constant.SpanAttributeKey / TraceTagKey).
_CACHE_COUNTS: Final = (
    ("llm.token_count.prompt_details.cache_read", "cache_read_input_tokens"),
    ("llm.token_count.prompt_details.cache_write", "cache_creation_input_tokens"),
)
MLFLOW_SPAN_TYPE: Final = "mlflow.spanType"
MLFLOW_INPUTS: Final = "mlflow.spanInputs"
MLFLOW_OUTPUTS: Final = "mlflow.spanOutputs"
MLFLOW_TAG_PREFIX: Final = "mlflow.traceTag."
MLFLOW_TRACE_NAME: Final = "mlflow.traceName"
#: What an exporter may be told about its receiver; "any" sends every vocabulary.
RECEIVERS: Final = ("any", "mlflow", "openinference")
# lowtrace's own bookkeeping that OTLP carries elsewhere (trace_state, dropped counts).
_NOT_ATTRIBUTES: Final = frozenset({TRACESTATE_ATTRIBUTE})
# Deeper typed values go as JSON text: each level is 2-3 protobuf messages (4 JSON objects),
# and receivers refuse a whole request past ~100 (upb, Java) or 254 (orjson) levels.
_MAX_TYPED_DEPTH: Final = 24


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


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a JSON value nests lists and dicts more than ``limit`` levels deep."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        inner: list[Any] = []
        for item in level:
            if type(item) is dict:
                inner.extend(item.values())
            elif type(item) is list:
                inner.extend(item)
        if not inner:
            return False
        level = inner
    return True


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


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
    info: TraceInfo | None = None,
    receiver: str = "any",
    shared: Mapping[str, AttrValue] | None = None,
) -> dict[str, AttrValue]:
    """All OTLP attributes of a span; ``info`` (its trace's) is given for the root only,
    ``shared`` (``trace_attributes``) for every span.

    ``receiver`` (one of ``RECEIVERS``) picks which copy of inputs and outputs is sent.
    """
    typed_copy = receiver != "openinference"
    text_copy = receiver != "mlflow"
    user = span.attributes
    out: dict[str, AttrValue] = {}
    for key, value in user.items():
        converted = attr_value(value)
        if converted is not None and key not in _NOT_ATTRIBUTES:
            out[key] = converted
    setdefault = out.setdefault
    if shared:
        for key, shared_value in shared.items():
            setdefault(key, shared_value)
    span_type = str(span.span_type)
    setdefault(MLFLOW_SPAN_TYPE, span_type)
    setdefault("openinference.span.kind", _OPENINFERENCE_KIND.get(span_type, "UNKNOWN"))
    operation = _GENAI_OPERATION.get(span_type)
    if operation is not None:
        setdefault("gen_ai.operation.name", operation)
        if span_type == SpanType.TOOL:
            setdefault("gen_ai.tool.name", span.name)
            setdefault("tool.name", span.name)
        elif span_type == SpanType.AGENT:
            setdefault("gen_ai.agent.name", span.name)
    values: dict[str, Any] = {}
    for prefix, raw, typed in (
        ("input", span.inputs_json, MLFLOW_INPUTS),
        ("output", span.outputs_json, MLFLOW_OUTPUTS),
    ):
        found = _json_value(raw)
        if found is not None:
            values[prefix] = value = _loads(raw)
            if typed_copy:
                if _deeper_than(value, _MAX_TYPED_DEPTH):
                    setdefault(typed, raw.decode("utf-8", "replace"))
                else:
                    setdefault(typed, TypedJson(value))
            if text_copy:
                setdefault(f"{prefix}.value", found[0])
                setdefault(f"{prefix}.mime_type", found[1])
    if span_type == SpanType.RETRIEVER and "output" in values:
        for key, derived in document_attributes(values["output"]).items():
            setdefault(key, derived)
    request_model = response_model = None
    if span_type in _MODEL_TYPES:
        request_model = _first(user, _REQUEST_MODEL_KEYS)
        response_model = _first(user, _RESPONSE_MODEL_KEYS)
        if span_type in _MESSAGE_TYPES:
            for key, derived in message_attributes(
                values.get("input"), values.get("output")
            ).items():
                setdefault(key, derived)
        params = invocation_parameters(user)
        if params is not None:
            setdefault("llm.invocation_parameters", params)
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
    for key, field in _CACHE_COUNTS:
        # On the usage once TokenUsage has the cache fields; as attributes until then
        # (the Anthropic integration records them as ``llm.usage.<field>``).
        count = getattr(usage, field, None) if usage is not None else None
        if count is None:
            count = user.get(f"llm.usage.{field}")
        if type(count) is int:
            setdefault(key, count)
    if info is not None:
        _trace_attributes(out, info, typed_copy, text_copy)
    return out


def _trace_attributes(
    out: dict[str, AttrValue], info: TraceInfo, for_mlflow: bool, for_openinference: bool
) -> None:
    """The trace's name and tags on its root span, for MLflow and OpenInference."""
    setdefault = out.setdefault
    tags = dict(info.tags)
    if for_mlflow:
        setdefault(MLFLOW_TAG_PREFIX + MLFLOW_TRACE_NAME, info.name)
        for key, value in tags.items():
            setdefault(MLFLOW_TAG_PREFIX + key, value)
    if tags and for_openinference:
        setdefault("metadata", orjson.dumps(tags).decode())
    session = getattr(info, "session_id", None) or _first(tags, _SESSION_TAGS)
    if session:
        setdefault("session.id", session)
    user_id = getattr(info, "user_id", None) or _first(tags, _USER_TAGS)
    if user_id:
        setdefault("user.id", user_id)


def trace_state(span: SpanRecord) -> str:
    """The W3C tracestate a span carries (the one its trace was continued with), or ""."""
    value = span.attributes.get(TRACESTATE_ATTRIBUTE)
    return value if isinstance(value, str) else ""
