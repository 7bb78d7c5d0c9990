"""Finished traces as OTLP ``ExportTraceServiceRequest`` bodies: protobuf or OTLP/JSON.

Protobuf uses the official ``opentelemetry-proto`` messages (the ``otlp`` extra), imported
on first use. OTLP/JSON is built directly as dicts (hex ids, 64-bit integers as decimal
strings, enums as numbers, camelCase names) and needs no protobuf at all. A batch whose
body exceeds ``max_bytes`` is split into several requests, never inside a trace.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from lowtrace._model import Trace
from lowtrace._otlp.mapping import (
    AttrValue,
    TypedJson,
    event_attributes,
    span_attributes,
    span_flags,
    span_kind,
    status_code,
    trace_attributes,
    trace_state,
)
from lowtrace._otlp.scrub import ENCODE_ERRORS, scrub_trace, scrub_value
from lowtrace.errors import MissingExtraError

__all__ = [
    "INSTALL_HINT",
    "SCOPE_NAME",
    "count_spans",
    "encode_json",
    "encode_protobuf",
    "load_proto",
    "rejected_spans",
    "split_encode",
]

INSTALL_HINT: Final = "pip install 'lowtrace[otlp]'"
SCOPE_NAME: Final = "lowtrace"
_DROPPED_ATTRIBUTES: Final = "lowtrace.dropped_attributes"
_DROPPED_EVENTS: Final = "lowtrace.dropped_events"


@functools.cache
def load_proto() -> Any:
    """The ``opentelemetry-proto`` modules (a namespace object); MissingExtraError if absent."""
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.trace.v1 import trace_pb2
    except ImportError as exc:
        raise MissingExtraError(
            f"the OTLP exporter needs opentelemetry-proto: {INSTALL_HINT}"
        ) from exc

    class _Modules:
        service = trace_service_pb2
        common = common_pb2
        trace = trace_pb2

    return _Modules


def _version() -> str:
    from lowtrace import __version__

    return __version__


def count_spans(traces: Sequence[Trace]) -> int:
    """How many spans a batch holds."""
    return sum(len(t.spans) for t in traces)


def _plan(trace: Trace) -> tuple[set[str], str | None, str]:
    """(the trace's span ids, the id of the span that carries the trace's name and tags,
    the W3C tracestate every span of it carries)."""
    ids = {s.span_id for s in trace.spans}
    root = next((s for s in trace.spans if s.parent_id is None or s.parent_id not in ids), None)
    if root is None:
        return ids, None, ""
    return ids, root.span_id, trace_state(root)


def _int(attributes: Mapping[str, Any], key: str) -> int:
    value = attributes.get(key)
    return value if type(value) is int and 0 <= value < 2**32 else 0


# -- protobuf -----------------------------------------------------------------------------------


_INT64: Final = (-(2**63), 2**63 - 1)


def _set_json(target: Any, value: Any) -> None:
    """A JSON value as an AnyValue with its types; null stays an empty AnyValue."""
    kind = type(value)
    if kind is str:
        target.string_value = value
    elif kind is bool:
        target.bool_value = value
    elif kind is int:
        if _INT64[0] <= value <= _INT64[1]:
            target.int_value = value
        else:
            target.string_value = str(value)
    elif kind is float:
        target.double_value = value
    elif kind is dict:
        kvlist = target.kvlist_value
        kvlist.SetInParent()
        add = kvlist.values.add
        for key, item in value.items():
            kv = add()
            kv.key = key
            _set_json(kv.value, item)
    elif kind is list:
        array = target.array_value
        array.SetInParent()
        add = array.values.add
        for item in value:
            _set_json(add(), item)


def _set_value(target: Any, value: AttrValue) -> None:
    kind = type(value)
    if kind is TypedJson:
        _set_json(target, value.value)  # type: ignore[union-attr]
        return
    if kind is str:
        target.string_value = value
    elif kind is bool:
        target.bool_value = value
    elif kind is int:
        target.int_value = value
    elif kind is float:
        target.double_value = value
    else:
        array = target.array_value
        array.SetInParent()
        add = array.values.add
        for item in value:  # type: ignore[union-attr]
            _set_value(add(), item)


def _set_attributes(target: Any, attributes: Mapping[str, AttrValue]) -> None:
    add = target.add
    for key, value in attributes.items():
        kv = add()
        kv.key = key
        _set_value(kv.value, value)


def encode_protobuf(
    traces: Sequence[Trace], resource: Mapping[str, Any], receiver: str = "any"
) -> bytes:
    """One serialized ``ExportTraceServiceRequest`` holding every span of ``traces``."""
    proto = load_proto()
    request = proto.service.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _set_attributes(resource_spans.resource.attributes, event_attributes(resource))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE_NAME
    scope_spans.scope.version = _version()
    add_span = scope_spans.spans.add
    fromhex = bytes.fromhex
    for trace in traces:
        ids, root_id, state = _plan(trace)
        info = trace.info
        shared = trace_attributes(info)
        for span in trace.spans:
            out = add_span()
            out.trace_id = fromhex(span.trace_id)
            out.span_id = fromhex(span.span_id)
            if state:
                out.trace_state = state
            if span.parent_id is not None:
                out.parent_span_id = fromhex(span.parent_id)
            out.flags = span_flags(span, ids)
            out.name = span.name
            out.kind = span_kind(span.span_type)
            out.start_time_unix_nano = span.start_time_ns
            out.end_time_unix_nano = span.end_time_ns
            attributes = span_attributes(
                span, info if span.span_id == root_id else None, receiver, shared
            )
            _set_attributes(out.attributes, attributes)
            out.dropped_attributes_count = _int(span.attributes, _DROPPED_ATTRIBUTES)
            out.dropped_events_count = _int(span.attributes, _DROPPED_EVENTS)
            for event in span.events:
                ev = out.events.add()
                ev.name = event.name
                ev.time_unix_nano = event.time_ns
                _set_attributes(ev.attributes, event_attributes(event.attributes))
            code = status_code(span.status)
            if code:
                out.status.code = code
                if code == 2 and span.status_message:
                    out.status.message = span.status_message
    return request.SerializeToString()  # type: ignore[no-any-return]


def rejected_spans(body: bytes, content_type: str) -> tuple[int, str]:
    """(rejected span count, error message) from an export response's partial success."""
    if not body:
        return 0, ""
    try:
        if "json" in content_type:
            partial = orjson.loads(body).get("partialSuccess") or {}
            return int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or "")
        if "protobuf" not in content_type:
            return 0, ""
        response = load_proto().service.ExportTraceServiceResponse()
        response.ParseFromString(body)
        partial = response.partial_success
        return int(partial.rejected_spans), str(partial.error_message)
    except Exception:  # noqa: BLE001 - a malformed answer to a 2xx is not worth a failure
        return 0, ""


# -- OTLP/JSON ----------------------------------------------------------------------------------


def _json_any(value: Any) -> dict[str, Any]:
    """A JSON value as an OTLP/JSON AnyValue with its types; null is an empty AnyValue."""
    kind = type(value)
    if kind is dict:
        return {
            "kvlistValue": {"values": [{"key": k, "value": _json_any(v)} for k, v in value.items()]}
        }
    if kind is list:
        return {"arrayValue": {"values": [_json_any(v) for v in value]}}
    if value is None:
        return {}
    if kind is int and not _INT64[0] <= value <= _INT64[1]:
        return {"stringValue": str(value)}
    return _json_value(value)


def _json_value(value: AttrValue) -> dict[str, Any]:
    kind = type(value)
    if kind is TypedJson:
        return _json_any(value.value)  # type: ignore[union-attr]
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        return {"intValue": str(value)}
    if kind is float:
        number: Any = value
        if not math.isfinite(number):
            number = "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
        return {"doubleValue": number}
    return {"arrayValue": {"values": [_json_value(v) for v in value]}}  # type: ignore[union-attr]


def _json_attributes(attributes: Mapping[str, AttrValue]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _json_value(value)} for key, value in attributes.items()]


def encode_json(
    traces: Sequence[Trace], resource: Mapping[str, Any], receiver: str = "any"
) -> bytes:
    """One ``ExportTraceServiceRequest`` in the OTLP/JSON encoding."""
    spans: list[dict[str, Any]] = []
    for trace in traces:
        ids, root_id, state = _plan(trace)
        info = trace.info
        shared = trace_attributes(info)
        for span in trace.spans:
            attributes = span_attributes(
                span, info if span.span_id == root_id else None, receiver, shared
            )
            out: dict[str, Any] = {
                "traceId": span.trace_id,
                "spanId": span.span_id,
                "traceState": state,
                "parentSpanId": span.parent_id or "",
                "flags": span_flags(span, ids),
                "name": span.name,
                "kind": span_kind(span.span_type),
                "startTimeUnixNano": str(span.start_time_ns),
                "endTimeUnixNano": str(span.end_time_ns),
                "attributes": _json_attributes(attributes),
                "droppedAttributesCount": _int(span.attributes, _DROPPED_ATTRIBUTES),
                "events": [
                    {
                        "timeUnixNano": str(e.time_ns),
                        "name": e.name,
                        "attributes": _json_attributes(event_attributes(e.attributes)),
                    }
                    for e in span.events
                ],
                "droppedEventsCount": _int(span.attributes, _DROPPED_EVENTS),
                "status": {"code": status_code(span.status)},
            }
            if span.status_message and out["status"]["code"] == 2:
                out["status"]["message"] = span.status_message
            spans.append(out)
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attributes(event_attributes(resource))},
                "scopeSpans": [
                    {"scope": {"name": SCOPE_NAME, "version": _version()}, "spans": spans}
                ],
            }
        ]
    }
    return orjson.dumps(request)


def split_encode(
    traces: Sequence[Trace],
    resource: Mapping[str, Any],
    encoding: str,
    max_bytes: int,
    receiver: str = "any",
) -> list[tuple[list[Trace], bytes]]:
    """(traces, body) requests for a batch; halved until each fits ``max_bytes`` or is one trace."""
    encode = encode_json if encoding == "json" else encode_protobuf
    pending: list[list[Trace]] = [list(traces)]
    out: list[tuple[list[Trace], bytes]] = []
    while pending:
        group = pending.pop()
        try:
            body = encode(group, resource, receiver)
        except ENCODE_ERRORS:  # text UTF-8 cannot carry: send it repaired, not lose the batch
            body = encode([scrub_trace(t) for t in group], scrub_value(resource), receiver)
        if len(body) > max_bytes and len(group) > 1:
            half = len(group) // 2
            pending.append(group[half:])
            pending.append(group[:half])
        else:
            out.append((group, body))
    return out
