"""The finished data model: ``Trace``, an immutable finished trace, and merging fragments.

A trace is its summary (``TraceInfo``) and its spans (``SpanRecord``), defined in
``lowtrace._records`` and re-exported here; tags, attributes and payloads are read-only, so
a finished trace cannot be changed through what it returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import attrs

from lowtrace._assessment import Assessment
from lowtrace._records import (
    NULL_BLOB,
    JsonBlob,
    SpanEvent,
    SpanList,
    SpanRecord,
    TokenUsage,
    TraceInfo,
    counted_usage_spans,
    outermost_token_usage,
    parents_first,
    to_span_list,
)
from lowtrace._serde import compress, decompress, trace_parts_from_json, trace_to_json
from lowtrace._view.html import trace_document, trace_html

if TYPE_CHECKING:
    from lowtrace._cost import PriceTable

__all__ = [
    "NULL_BLOB",
    "JsonBlob",
    "SpanEvent",
    "SpanList",
    "SpanRecord",
    "TokenUsage",
    "Trace",
    "TraceInfo",
    "counted_usage_spans",
    "merge_traces",
    "outermost_token_usage",
    "parents_first",
]


@attrs.frozen
class Trace:
    """A finished trace: its summary and its spans in start order. Immutable."""

    info: TraceInfo
    spans: SpanList = attrs.field(converter=to_span_list)

    @property
    def root(self) -> SpanRecord | None:
        """The top span: the first without a parent inside this trace."""
        ids = {s.span_id for s in self.spans}
        for span in self.spans:
            if span.parent_id is None or span.parent_id not in ids:
                return span
        return None

    def get_span(self, span_id: str) -> SpanRecord | None:
        """The span with this id, or None."""
        for span in self.spans:
            if span.span_id == span_id:
                return span
        return None

    def children(self, span_id: str | None) -> list[SpanRecord]:
        """The direct children of a span, in start order."""
        return [s for s in self.spans if s.parent_id == span_id]

    def walk(self) -> Iterator[tuple[int, SpanRecord]]:
        """Depth-first (depth, span) pairs from the roots, children in start order."""
        ids = {s.span_id for s in self.spans}
        kids: dict[str | None, list[SpanRecord]] = {}
        for span in self.spans:
            parent = span.parent_id if span.parent_id in ids else None
            kids.setdefault(parent, []).append(span)
        stack = [(0, s) for s in reversed(kids.get(None, []))]
        while stack:
            depth, span = stack.pop()
            yield depth, span
            stack.extend((depth + 1, c) for c in reversed(kids.get(span.span_id, [])))

    def to_json(self) -> bytes:
        """The whole trace as JSON bytes; ``Trace.from_json`` restores an equal trace."""
        return trace_to_json(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Trace:
        """The trace ``to_json`` wrote."""
        info, spans = trace_parts_from_json(data)
        return cls(info, spans)

    def to_bytes(self) -> bytes:
        """The compact binary form (zstd-compressed JSON) for storage and transport."""
        return compress(trace_to_json(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> Trace:
        """The trace ``to_bytes`` wrote."""
        return cls.from_json(decompress(data))

    def to_html(self, prices: PriceTable | None = None) -> str:
        """A self-contained HTML page showing this trace (tree, timeline, details).

        ``prices`` (model name -> per-million-token prices, as for ``estimate_cost``) adds
        the cost of each model call and of the whole trace.
        """
        return trace_document(self, prices=prices)

    def _repr_html_(self) -> str:
        """The trace view inline in a Jupyter notebook."""
        return trace_html(self)


def merge_traces(fragments: Sequence[Trace]) -> Trace:
    """One trace from fragments with the same trace id recorded by different processes.

    A trace continued from a remote parent (W3C ``traceparent``) is written by each side
    separately; reading merges them into one tree. The summary comes from the fragment whose
    root has no parent (the true root), times span all fragments, tags are combined.
    """
    if len(fragments) == 1:
        return fragments[0]
    by_id: dict[str, SpanRecord] = {}
    for fragment in fragments:
        for span in fragment.spans:
            by_id.setdefault(span.span_id, span)
    spans = parents_first(sorted(by_id.values(), key=lambda s: s.start_time_ns))
    heads = [f for f in fragments if f.spans and f.spans[0].parent_id is None]
    head = min(heads or fragments, key=lambda f: f.info.start_time_ns)
    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    assessments: dict[str, Assessment] = {}
    for fragment in sorted(fragments, key=lambda f: f is head):
        tags.update(fragment.info.tags)
        metadata.update(fragment.info.metadata)
        assessments.update((a.assessment_id, a) for a in fragment.info.assessments)
    info = TraceInfo(
        trace_id=head.info.trace_id,
        name=head.info.name,
        status=head.info.status,
        status_message=head.info.status_message,
        start_time_ns=min(f.info.start_time_ns for f in fragments),
        end_time_ns=max(f.info.end_time_ns for f in fragments),
        tags=tags,
        token_usage=outermost_token_usage(spans),
        span_count=len(spans),
        metadata=metadata,
        session_id=head.info.session_id or next(_ids(fragments, "session_id"), None),
        user_id=head.info.user_id or next(_ids(fragments, "user_id"), None),
        assessments=tuple(sorted(assessments.values(), key=lambda a: a.created_time_ns)),
    )
    return Trace(info, tuple(spans))


def _ids(fragments: Sequence[Trace], name: str) -> Iterator[str]:
    """The non-empty session or user ids of the fragments, in order."""
    return (v for f in fragments if (v := getattr(f.info, name)))
