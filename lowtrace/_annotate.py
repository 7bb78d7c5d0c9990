"""What a ``TracingClient`` changes on traces besides recording them: tags on live and stored
traces, metadata and session/user ids on live ones, assessments on stored ones.

A mixin of ``TracingClient`` (kept apart so the recording core stays small). Changes to a
stored trace first let the store's export lane settle what this client handed it before
the call (read-your-writes: a trace ended a moment ago is found), then go through the
store's atomic ``update_trace``, so concurrent writers never lose one another's changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from lowtrace._assessment import Assessment, AssessmentKind, make_assessment
from lowtrace._live import TraceState
from lowtrace._model import Trace
from lowtrace._values import clean_str, safe_repr
from lowtrace.errors import (
    InvalidArgumentError,
    LowtraceError,
    TraceEndedError,
    TraceNotFoundError,
)

if TYPE_CHECKING:
    from lowtrace._live import LiveTrace
    from lowtrace._pipeline import ExportPipeline
    from lowtrace._registry import LiveRegistry
    from lowtrace._sampling import UnsampledTraces
    from lowtrace._stores.base import TraceStore

__all__ = ["TraceEdits", "string_map", "with_info"]

#: How long a read or a change of a stored trace waits for the store to take the traces
#: ended before it; a store that is down must not hang readers forever.
SETTLE_TIMEOUT_S: Final = 10.0
_T = TypeVar("_T")


class TraceEdits:
    """Tags, metadata and assessments: the ``TracingClient`` methods that annotate traces."""

    _last_trace_id: str | None = None

    if TYPE_CHECKING:
        enabled: bool
        _closed: bool
        _registry: LiveRegistry
        _pipeline: ExportPipeline
        _unsampled: UnsampledTraces

        def _violation(self, exc: LowtraceError, fallback: _T) -> _T: ...
        def _require_store(self) -> TraceStore: ...
        def _live(self, trace_id: str) -> LiveTrace: ...

    # -- tags, metadata, session and user ---------------------------------------------------

    def set_trace_tags(self, trace_id: str, tags: Mapping[str, Any]) -> None:
        """Add or replace tags (values are stored as strings) of a live or stored trace.

        Returns None. Raises ``InvalidArgumentError`` for tags that are not a mapping with
        non-empty str keys, ``TraceNotFoundError`` for a trace neither live nor stored, and
        ``StoreError`` from a store that cannot change (the append-only ``jsonl://``).
        """
        if not self.enabled:
            return
        if self._unsampled_live(trace_id):
            return  # an unsampled trace records nothing, tags included
        try:
            values = string_map(tags, "tags")
            live = self._active(trace_id)
            if live is not None:
                try:
                    live.set_tags(values)
                    return
                except TraceEndedError:
                    pass  # it ended meanwhile: change the stored trace
            self._update_stored(trace_id, lambda t: with_info(t, tags={**t.info.tags, **values}))
        except LowtraceError as exc:
            self._violation(exc, None)

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        """Remove one tag of a live or stored trace (a missing tag is not an error).

        Returns None; raises like ``set_trace_tags``.
        """
        if not self.enabled or self._unsampled_live(trace_id):
            return
        if isinstance(key, str):
            key = clean_str(key)  # as set_trace_tags stored it
        try:
            live = self._active(trace_id)
            if live is not None:
                with live.lock:
                    if live.state is TraceState.ACTIVE:
                        live.tags.pop(key, None)
                        return

            def drop(trace: Trace) -> Trace:
                return with_info(trace, tags={k: v for k, v in trace.info.tags.items() if k != key})

            self._update_stored(trace_id, drop)
        except LowtraceError as exc:
            self._violation(exc, None)

    def set_trace_metadata(
        self,
        trace_id: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Add metadata, set the session or user id of a live trace (fixed once it ends).

        Returns None. Raises ``InvalidArgumentError`` for bad values, ``TraceNotFoundError``
        for an unknown trace and ``TraceEndedError`` for one that has ended.
        """
        if not self.enabled or self._unsampled_live(trace_id):
            return
        try:
            values = string_map(metadata, "metadata")
            for name, value in (("session_id", session_id), ("user_id", user_id)):
                if value is not None and (not isinstance(value, str) or not value):
                    raise InvalidArgumentError(
                        f"{name} must be a non-empty str, got {safe_repr(value)}"
                    )
            self._live(trace_id).set_metadata(values, _id_text(session_id), _id_text(user_id))
        except LowtraceError as exc:
            self._violation(exc, None)

    def get_last_active_trace_id(self) -> str | None:
        """The id of the trace this client ended last (None before the first one)."""
        return self._last_trace_id

    # -- assessments ------------------------------------------------------------------------

    def log_feedback(
        self,
        trace_id: str,
        name: str,
        value: Any,
        *,
        source: Mapping[str, Any] | None = None,
        rationale: str | None = None,
        span_id: str | None = None,
    ) -> Assessment | None:
        """Attach feedback (a verdict, a score, a comment) to a stored trace.

        Returns the new ``Assessment`` (None when tracing is disabled or, non-strict, when
        the call was refused). Raises ``InvalidArgumentError`` for a bad name, value, source
        or span id, ``TraceNotFoundError`` for a trace not stored (or still being recorded),
        and ``StoreError`` from a store that cannot change (the append-only ``jsonl://``).
        """
        return self._assess("feedback", trace_id, name, value, source, rationale, span_id)

    def log_expectation(
        self,
        trace_id: str,
        name: str,
        value: Any,
        *,
        source: Mapping[str, Any] | None = None,
        span_id: str | None = None,
    ) -> Assessment | None:
        """Attach an expected answer to a stored trace (``export --golden`` uses it).

        Returns and raises like ``log_feedback``.
        """
        return self._assess("expectation", trace_id, name, value, source, None, span_id)

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        """Remove an assessment from a stored trace; an unknown id is an error.

        Returns None. Raises ``InvalidArgumentError`` for an unknown assessment id, and
        ``TraceNotFoundError`` / ``StoreError`` like ``log_feedback``.
        """
        if not self.enabled:
            return

        def drop(trace: Trace) -> Trace:
            kept = tuple(a for a in trace.info.assessments if a.assessment_id != assessment_id)
            if len(kept) == len(trace.info.assessments):
                raise InvalidArgumentError(
                    f"trace {trace_id} has no assessment {safe_repr(assessment_id)}"
                )
            return with_info(trace, assessments=kept)

        try:
            self._update_stored(trace_id, drop)
        except LowtraceError as exc:
            self._violation(exc, None)

    def _assess(
        self,
        kind: AssessmentKind,
        trace_id: str,
        name: str,
        value: Any,
        source: Mapping[str, Any] | None,
        rationale: str | None,
        span_id: str | None,
    ) -> Assessment | None:
        if not self.enabled:
            return None
        try:
            assessment = make_assessment(kind, name, value, source, rationale, span_id)
            if self._active(trace_id) is not None:
                raise TraceNotFoundError(
                    f"trace {trace_id} is still being recorded; log {kind} after it ends"
                )

            def add(trace: Trace) -> Trace:
                if span_id is not None and trace.get_span(span_id) is None:
                    raise InvalidArgumentError(f"trace {trace_id} has no span {safe_repr(span_id)}")
                return with_info(trace, assessments=(*trace.info.assessments, assessment))

            self._update_stored(trace_id, add)
            return assessment
        except LowtraceError as exc:
            return self._violation(exc, None)

    # -- internals --------------------------------------------------------------------------

    def _unsampled_live(self, trace_id: object) -> bool:
        """Whether ``trace_id`` names a live unsampled trace: changing it is a quiet no-op."""
        return type(trace_id) is str and trace_id in self._unsampled

    def _active(self, trace_id: str) -> LiveTrace | None:
        live = self._registry.traces.get(trace_id) if isinstance(trace_id, str) else None
        return live if live is not None and live.state is TraceState.ACTIVE else None

    def _settle_reads(self) -> None:
        """Read-your-writes: let the store take what this client ended before the call."""
        if self.enabled and not self._closed:
            self._pipeline.settle_store(SETTLE_TIMEOUT_S)

    def _update_stored(self, trace_id: str, change: Callable[[Trace], Trace]) -> Trace:
        if not isinstance(trace_id, str):
            raise InvalidArgumentError(f"trace_id must be a str, got {safe_repr(trace_id)}")
        self._settle_reads()
        return self._require_store().update_trace(trace_id, change)


def with_info(trace: Trace, **changes: Any) -> Trace:
    """The trace with some summary fields replaced (spans are shared, not copied)."""
    return Trace(attrs.evolve(trace.info, **changes), trace.spans)


def string_map(values: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    """A mapping of non-empty str keys to values as strings (tags, metadata)."""
    if not values:
        return {}
    try:
        items = list(values.items())
    except AttributeError:
        raise InvalidArgumentError(
            f"{what} must be a mapping, got {type(values).__name__}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a broken mapping is a bad argument
        raise InvalidArgumentError(
            f"{what} could not be read: {type(values).__qualname__}.items() raised {safe_repr(exc)}"
        ) from None
    out: dict[str, str] = {}
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"{what} keys must be non-empty str, got {safe_repr(key)}")
        text = value if type(value) is str else _text(value)
        out[clean_str(key)] = clean_str(text)
    return out


def _id_text(value: str | None) -> str | None:
    """A session or user id as a plain str that every store can encode (lone surrogates
    as U+FFFD, like every other recorded string)."""
    return None if value is None else clean_str(str.__str__(value))


def _text(value: object) -> str:
    """A value as text; a value whose ``__str__`` raises is named, not propagated."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not reach the caller
        return f"<unprintable {type(value).__qualname__}>"
