"""The records a finished trace is made of: spans, their events, token usage, the summary.

Frozen, slotted attrs classes with equality by value. Inputs and outputs are kept as the
JSON bytes snapshotted when they were recorded (``JsonBlob``) and decoded into a fresh
object on every access; tags, attributes and their nested values are read-only
(``FrozenDict``/``FrozenList``: changing one raises ``TypeError``) and events a tuple.
They sit below ``Trace`` (``lowtrace._model``) so the codec and the views can read them
without importing the class that calls them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, overload

import attrs
import orjson

from lowtrace._assessment import Assessment
from lowtrace._frozen import EMPTY, freeze_mapping
from lowtrace._types import SpanStatus, SpanType

__all__ = [
    "MAX_TOKENS",
    "NULL_BLOB",
    "JsonBlob",
    "SpanEvent",
    "SpanList",
    "SpanRecord",
    "TokenUsage",
    "TraceInfo",
    "build_lock",
    "counted_usage_spans",
    "lazy_span_list",
    "outermost_token_usage",
    "parents_first",
    "slot_setters",
    "to_blob",
    "to_event_tuple",
    "to_span_list",
]


@attrs.frozen(repr=False)
class JsonBlob:
    """A JSON document kept as bytes; ``.value`` decodes a fresh copy each time."""

    raw: bytes

    @property
    def value(self) -> Any:
        return orjson.loads(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        text = self.raw[:80].decode("utf-8", "replace")
        return f"JsonBlob({text}{'...' if len(self.raw) > 80 else ''})"

    @classmethod
    def of(cls, value: Any) -> JsonBlob:
        """Wrap an already encoded blob as is; encode any other value (lossless for JSON)."""
        if type(value) is cls:
            return value
        if value is None:
            return NULL_BLOB
        from lowtrace._values import encode_value

        return cls(encode_value(value, 2**62)[0])


NULL_BLOB: Final = JsonBlob(b"null")


def to_blob(value: Any) -> JsonBlob:
    """attrs converter: keep a JsonBlob, encode anything else."""
    return JsonBlob.of(value)


def to_event_tuple(events: Iterable[SpanEvent]) -> tuple[SpanEvent, ...]:
    """attrs converter: a finished span's events as a tuple (read-only)."""
    return events if type(events) is tuple else tuple(events)


def to_span_list(spans: Iterable[SpanRecord]) -> SpanList:
    """attrs converter: keep a SpanList, wrap any other iterable of records."""
    return SpanList.of(spans)


@attrs.frozen
class TokenUsage:
    """Tokens a model call consumed; ``total_tokens`` defaults to input + output.

    ``cache_read_input_tokens`` / ``cache_creation_input_tokens``: the part of the input
    read from / written to the provider's prompt cache (None when not reported).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None

    def __add__(self, other: TokenUsage) -> TokenUsage:
        """The sum, each count capped at ``MAX_TOKENS`` (the stores' columns are int64)."""
        return TokenUsage(
            min(self.input_tokens + other.input_tokens, MAX_TOKENS),
            min(self.output_tokens + other.output_tokens, MAX_TOKENS),
            min(self.total_tokens + other.total_tokens, MAX_TOKENS),
            _add_optional(self.cache_read_input_tokens, other.cache_read_input_tokens),
            _add_optional(self.cache_creation_input_tokens, other.cache_creation_input_tokens),
        )


#: The largest token count kept: sums stop here, as a signed 64-bit SQL column must.
MAX_TOKENS: Final = 2**63 - 1


def _add_optional(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a + b, MAX_TOKENS)


@attrs.frozen
class SpanEvent:
    """A point in time inside a span: a streamed token, a retry, an exception."""

    name: str
    time_ns: int
    attributes: Mapping[str, Any] = attrs.field(default=EMPTY, converter=freeze_mapping)


@attrs.frozen
class SpanRecord:
    """One finished step of a trace."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    span_type: str = SpanType.UNKNOWN
    start_time_ns: int = 0
    end_time_ns: int = 0
    status: SpanStatus = SpanStatus.OK
    status_message: str | None = None
    _inputs: JsonBlob = attrs.field(default=NULL_BLOB, converter=to_blob, alias="inputs")
    _outputs: JsonBlob = attrs.field(default=NULL_BLOB, converter=to_blob, alias="outputs")
    attributes: Mapping[str, Any] = attrs.field(default=EMPTY, converter=freeze_mapping)
    events: tuple[SpanEvent, ...] = attrs.field(default=(), converter=to_event_tuple)
    token_usage: TokenUsage | None = None

    @property
    def inputs(self) -> Any:
        """The recorded inputs (a fresh copy on each access)."""
        return orjson.loads(self._inputs.raw)

    @property
    def outputs(self) -> Any:
        """The recorded outputs (a fresh copy on each access)."""
        return orjson.loads(self._outputs.raw)

    @property
    def inputs_json(self) -> bytes:
        """The inputs as the JSON bytes snapshotted when they were recorded."""
        return self._inputs.raw

    @property
    def outputs_json(self) -> bytes:
        """The outputs as the JSON bytes snapshotted when they were recorded."""
        return self._outputs.raw

    @property
    def duration_ns(self) -> int:
        return self.end_time_ns - self.start_time_ns

    @property
    def duration_ms(self) -> float:
        return (self.end_time_ns - self.start_time_ns) / 1e6


@attrs.frozen
class TraceInfo:
    """The summary of a trace: what a traces list shows and what search filters on."""

    trace_id: str
    name: str
    status: SpanStatus
    status_message: str | None
    start_time_ns: int
    end_time_ns: int
    tags: Mapping[str, str] = attrs.field(default=EMPTY, converter=freeze_mapping)
    token_usage: TokenUsage | None = None
    span_count: int = 0
    #: Set while the trace is live (``start_trace(metadata=)``, ``update_current_trace``),
    #: fixed once it ends; tags and assessments may still change on the stored trace.
    metadata: Mapping[str, str] = attrs.field(default=EMPTY, converter=freeze_mapping)
    session_id: str | None = None
    user_id: str | None = None
    assessments: tuple[Assessment, ...] = ()

    @property
    def duration_ms(self) -> float:
        return (self.end_time_ns - self.start_time_ns) / 1e6

    @property
    def start_time_ms(self) -> int:
        return self.start_time_ns // 1_000_000


_BUILD_LOCKS: list[threading.Lock] = [threading.Lock() for _ in range(16)]


def _new_build_locks() -> None:
    """In a forked child: a lock another thread of the parent held would never be released."""
    _BUILD_LOCKS[:] = [threading.Lock() for _ in range(16)]


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_build_locks)


def build_lock(spans: SpanList) -> threading.Lock:
    """The lock of the stripe that guards building this list's records (objects are 16-byte
    aligned: the id's low four bits are always zero, so they would pick one lock for all)."""
    return _BUILD_LOCKS[(id(spans) >> 4) % len(_BUILD_LOCKS)]


class SpanList(Sequence[SpanRecord]):
    """The spans of a finished trace: an immutable sequence in start order.

    ``end_trace`` hands the ended live spans over as they are (``data``) and the records
    are built on first read, by ``source(data)`` (``source()`` without data), usually by the
    export worker, which keeps that cost off the request path. Compares equal to another
    ``SpanList`` or a tuple with the same records.
    """

    __slots__ = ("_data", "_records", "_source")

    def __init__(
        self,
        records: Iterable[SpanRecord] = (),
        source: Callable[..., Sequence[SpanRecord]] | None = None,
        data: Any = None,
    ) -> None:
        self._records: tuple[SpanRecord, ...] | None = None if source else tuple(records)
        self._source = source
        self._data = data

    @classmethod
    def of(cls, spans: Iterable[SpanRecord]) -> SpanList:
        """The value itself if it is a SpanList, else a SpanList of the given records."""
        return spans if isinstance(spans, SpanList) else cls(spans)

    def _get(self) -> tuple[SpanRecord, ...]:
        records = self._records
        if records is None:
            # A lock from a shared stripe, not one per list: a lock is one more object for
            # the garbage collector to scan while a finished trace waits in the queue.
            with build_lock(self):
                records = self._records
                if records is None:
                    source, data = self._source, self._data
                    assert source is not None
                    records = tuple(source() if data is None else source(data))
                    self._records = records
                    self._source = self._data = None
        return records

    def __len__(self) -> int:
        return len(self._get())

    @overload
    def __getitem__(self, index: int) -> SpanRecord: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[SpanRecord, ...]: ...
    def __getitem__(self, index: int | slice) -> SpanRecord | tuple[SpanRecord, ...]:
        return self._get()[index]

    def __iter__(self) -> Iterator[SpanRecord]:
        return iter(self._get())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SpanList):
            return self._get() == other._get()
        if isinstance(other, tuple):
            return self._get() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return f"SpanList({list(self._get())!r})"

    def __reduce__(self) -> tuple[type[SpanList], tuple[tuple[SpanRecord, ...]]]:
        return (SpanList, (self._get(),))


_new = object.__new__


def lazy_span_list(source: Callable[[Any], Sequence[SpanRecord]], data: Any) -> SpanList:
    """``SpanList(source=source, data=data)`` without the class call (the ``end_trace`` path)."""
    spans = _new(SpanList)
    spans._records = None
    spans._source = source
    spans._data = data
    return spans


def slot_setters(cls: type, names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen attrs class's fields (``names``, space-separated, must
    be all of them, in order), to fill a new instance without its ``__init__``.

    attrs' frozen ``__init__`` sets each field through ``object.__setattr__`` and runs the
    converters: ~1.5x the cost where the values are already in their final form.
    """
    fields = tuple(field.name for field in attrs.fields(cls))
    if fields != tuple(names.split()):
        raise RuntimeError(f"{cls.__name__} has fields {fields}, not {names!r}")
    return tuple(cls.__dict__[name].__set__ for name in fields)


def counted_usage_spans(spans: Iterable[SpanRecord]) -> Iterator[SpanRecord]:
    """The spans whose token usage counts: each model call once, the outermost report.

    Where a span and one of its descendants both report usage (a framework's model span
    wrapping an autologged client call), only the outermost one counts. ``spans`` must list
    every parent before its children (start order does).
    """
    covered: dict[str, bool] = {}
    for span in spans:
        above = covered.get(span.parent_id, False) if span.parent_id is not None else False
        usage = span.token_usage
        covered[span.span_id] = above or usage is not None
        if usage is not None and not above:
            yield span


def outermost_token_usage(spans: Iterable[SpanRecord]) -> TokenUsage | None:
    """Token usage summed over ``counted_usage_spans``; None when no span reported any."""
    total: TokenUsage | None = None
    for span in counted_usage_spans(spans):
        usage = span.token_usage
        assert usage is not None
        total = usage if total is None else total + usage
    return total


def parents_first(spans: list[SpanRecord]) -> list[SpanRecord]:
    """Start order, except that a parent always precedes its children (clock skew)."""
    ids = {s.span_id for s in spans}
    placed: set[str] = set()
    out: list[SpanRecord] = []
    pending: dict[str, list[SpanRecord]] = {}

    def place(span: SpanRecord) -> None:
        out.append(span)
        placed.add(span.span_id)
        for child in pending.pop(span.span_id, ()):
            place(child)

    for span in spans:
        parent = span.parent_id
        if parent is None or parent not in ids or parent in placed:
            place(span)
        else:
            pending.setdefault(parent, []).append(span)
    for waiting in pending.values():  # cycles or broken links: keep them, at the end
        out.extend(s for s in waiting if s.span_id not in placed)
    return out
