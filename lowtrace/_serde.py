"""Finished traces to JSON and back (cattrs + orjson), and the zstd binary form.

Inputs and outputs are embedded as the JSON bytes recorded at the time (``orjson.Fragment``),
so serialising a trace never re-encodes its payloads, and ``from_json(to_json(t)) == t``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

import attrs
import cattrs
import orjson
import zstandard
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from lowtrace._assessment import Assessment
from lowtrace._records import JsonBlob, SpanEvent, SpanList, SpanRecord, TokenUsage, TraceInfo
from lowtrace._types import SpanStatus, normalize_span_type

if TYPE_CHECKING:
    from lowtrace._model import Trace

__all__ = [
    "FORMAT",
    "chunked",
    "compress",
    "converter",
    "decompress",
    "trace_parts_from_json",
    "trace_to_dict",
    "trace_to_json",
]

#: Version tag written into every serialised trace.
FORMAT: Final = "lowtrace.trace/1"

converter = cattrs.Converter(forbid_extra_keys=False)
converter.register_unstructure_hook(JsonBlob, lambda blob: orjson.Fragment(blob.raw))
converter.register_structure_hook(JsonBlob, lambda value, _: JsonBlob.of(value))
converter.register_structure_hook(SpanStatus, lambda value, _: SpanStatus(value))
converter.register_unstructure_hook(SpanStatus, str)
converter.register_unstructure_hook(
    SpanRecord,
    make_dict_unstructure_fn(
        SpanRecord,
        converter,
        _inputs=override(rename="inputs"),
        _outputs=override(rename="outputs"),
    ),
)
_structure_span = make_dict_structure_fn(
    SpanRecord,
    converter,
    _inputs=override(rename="inputs"),
    _outputs=override(rename="outputs"),
)


def _structure_span_record(value: Any, _: Any) -> SpanRecord:
    span = _structure_span(value, SpanRecord)
    span_type = normalize_span_type(span.span_type)
    if span_type is not span.span_type:
        object.__setattr__(span, "span_type", span_type)
    return span


converter.register_structure_hook(SpanRecord, _structure_span_record)
_cattrs_unstructure_span = converter.get_unstructure_hook(SpanRecord)
_unstructure_usage = converter.get_unstructure_hook(TokenUsage)  # rare: cattrs' own is fine

#: The ``SpanRecord`` fields ``_span_to_dict`` writes, in order. If the class changes, the
#: generic cattrs hook is used instead (same JSON, slower), so a new field is never lost.
_SPAN_FIELDS: Final = (
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "span_type",
    "start_time_ns",
    "end_time_ns",
    "status",
    "status_message",
    "_inputs",
    "_outputs",
    "attributes",
    "events",
    "token_usage",
)


def _span_to_dict(span: SpanRecord) -> dict[str, Any]:
    """What cattrs' generated hook returns for a span, written out: spans are most of every
    trace's JSON, and the generic hook's per-field dispatch and mapping copies cost 1.6-5x
    more. Attribute values are JSON-shaped already (snapshotted), so they go as they are."""
    usage = span.token_usage
    events = span.events
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "name": span.name,
        "span_type": span.span_type,
        "start_time_ns": span.start_time_ns,
        "end_time_ns": span.end_time_ns,
        "status": str(span.status),
        "status_message": span.status_message,
        "inputs": orjson.Fragment(span._inputs.raw),
        "outputs": orjson.Fragment(span._outputs.raw),
        "attributes": span.attributes,
        "events": [
            {"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in events
        ]
        if events
        else [],
        "token_usage": None if usage is None else _unstructure_usage(usage),
    }


def _fast_path_fits() -> bool:
    """True while ``_span_to_dict`` covers exactly the fields of the span and event classes."""
    return tuple(f.name for f in attrs.fields(SpanRecord)) == _SPAN_FIELDS and tuple(
        f.name for f in attrs.fields(SpanEvent)
    ) == ("name", "time_ns", "attributes")


_unstructure_span: Callable[[SpanRecord], dict[str, Any]] = (
    _span_to_dict if _fast_path_fits() else _cattrs_unstructure_span
)
converter.register_unstructure_hook(
    SpanList, lambda spans: [_unstructure_span(span) for span in spans]
)
converter.register_structure_hook(
    SpanList, lambda value, _: SpanList([_structure_span_record(v, None) for v in value])
)


def _unstructure_assessment(a: Assessment) -> dict[str, Any]:
    return {
        "assessment_id": a.assessment_id,
        "name": a.name,
        "kind": a.kind,
        "value": orjson.Fragment(a.value_json),
        "source": a.source,
        "rationale": a.rationale,
        "span_id": a.span_id,
        "created_time_ns": a.created_time_ns,
    }


def _structure_assessment(value: Any, _: Any) -> Assessment:
    return Assessment(
        assessment_id=value["assessment_id"],
        name=value["name"],
        kind=value["kind"],
        value=orjson.dumps(value.get("value")),
        source=value.get("source"),
        rationale=value.get("rationale"),
        span_id=value.get("span_id"),
        created_time_ns=value.get("created_time_ns", 0),
    )


converter.register_unstructure_hook(Assessment, _unstructure_assessment)
converter.register_structure_hook(Assessment, _structure_assessment)

#: The generic hook ``_info_to_dict`` stands in for (and its fallback).
_cattrs_unstructure_info: Final = converter.get_unstructure_hook(TraceInfo)
#: The ``TraceInfo`` fields ``_info_to_dict`` writes, in order (as ``_SPAN_FIELDS``).
_INFO_FIELDS: Final = (
    "trace_id",
    "name",
    "status",
    "status_message",
    "start_time_ns",
    "end_time_ns",
    "tags",
    "token_usage",
    "span_count",
    "metadata",
    "session_id",
    "user_id",
    "assessments",
)


def _info_to_dict(info: TraceInfo) -> dict[str, Any]:
    """What cattrs' generated hook returns for a trace's summary, written out (a third of
    its cost: no per-field hook calls); tags and metadata are str -> str already."""
    usage = info.token_usage
    return {
        "trace_id": info.trace_id,
        "name": info.name,
        "status": str(info.status),
        "status_message": info.status_message,
        "start_time_ns": info.start_time_ns,
        "end_time_ns": info.end_time_ns,
        "tags": info.tags,
        "token_usage": None if usage is None else _unstructure_usage(usage),
        "span_count": info.span_count,
        "metadata": info.metadata,
        "session_id": info.session_id,
        "user_id": info.user_id,
        "assessments": [_unstructure_assessment(a) for a in info.assessments],
    }


#: The hook ``trace_to_dict`` calls directly: ``converter.unstructure`` looks it up again
#: for every trace.
_unstructure_info: Callable[[TraceInfo], dict[str, Any]] = (
    _info_to_dict
    if tuple(f.name for f in attrs.fields(TraceInfo)) == _INFO_FIELDS
    else _cattrs_unstructure_info
)
_local = threading.local()


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """A JSON-ready dict (payloads as ``orjson.Fragment``) with the format tag."""
    return {
        "info": _unstructure_info(trace.info),
        "spans": [_unstructure_span(span) for span in trace.spans],
        "format": FORMAT,
    }


def trace_to_json(trace: Trace) -> bytes:
    return orjson.dumps(trace_to_dict(trace))


def trace_parts_from_json(data: bytes | str) -> tuple[TraceInfo, SpanList]:
    """The summary and the spans of a trace ``trace_to_json`` wrote (``Trace.from_json``
    puts them together: the codec stays below the class)."""
    obj = orjson.loads(data)
    return converter.structure(obj["info"], TraceInfo), converter.structure(obj["spans"], SpanList)


#: zstd level of ``compress``. Level 1 against 3 on a trace's JSON: 8-15% less CPU, and
#: 4% smaller to 7% larger (7 KB -> 585 vs 607 bytes, 10 KB -> 2,927 vs 2,933, 105 KB ->
#: 20,576 vs 19,199). Any level decompresses alike.
_LEVEL: Final = 1


def _compressor() -> zstandard.ZstdCompressor:
    # zstd contexts are not thread-safe: one per thread.
    comp: zstandard.ZstdCompressor | None = getattr(_local, "comp", None)
    if comp is None:
        comp = _local.comp = zstandard.ZstdCompressor(level=_LEVEL)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "dec", None)
    if dec is None:
        dec = _local.dec = zstandard.ZstdDecompressor()
    return dec


def compress(data: bytes) -> bytes:
    """zstd-compress bytes (frame carries the content size)."""
    return _compressor().compress(data)


def decompress(data: bytes) -> bytes:
    return _decompressor().decompress(data)


def chunked(lines: Iterable[bytes], size: int = 256 * 1024) -> Iterator[bytes]:
    """Lines joined into chunks of about ``size`` bytes: one write or send per line costs
    a system call (or a thread hop in a server) per trace."""
    buffer: list[bytes] = []
    held = 0
    for line in lines:
        buffer.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(buffer)
            buffer.clear()
            held = 0
    if buffer:
        yield b"".join(buffer)
