"""``Span``: the one typed shape of every span handle lowtrace gives out.

``start_trace``, ``start_span`` (client and fluent) and ``get_current_span`` return a live
span, a dropped one (cut by ``max_spans_per_trace``), an unsampled one (valid ids, nothing
recorded) or an inert one (tracing disabled, or a refused call in non-strict mode). All
of them satisfy this protocol, so code written against ``Span`` runs unchanged whichever
it gets, and the type checker sees real types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from lowtrace._types import SpanStatus

__all__ = ["Span"]


@runtime_checkable
class Span(Protocol):
    """A span handle: its ids, and the methods that annotate and end it.

    ``is_recording`` is False for handles that record nothing (dropped or disabled); their
    methods accept every call and do nothing. Check ``isinstance(span, LiveSpan)`` for the
    fields only a recorded span has (``status``, ``start_time_ns``...).
    """

    @property
    def trace_id(self) -> str:
        """32 lowercase hex digits (W3C / OpenTelemetry trace id)."""
        ...

    @property
    def span_id(self) -> str:
        """16 lowercase hex digits."""
        ...

    @property
    def parent_id(self) -> str | None:
        """The parent's span id; None for a root span."""
        ...

    @property
    def name(self) -> str:
        """The span's name."""
        ...

    @property
    def ended(self) -> bool:
        """True once the span has ended."""
        ...

    @property
    def is_recording(self) -> bool:
        """True for a span that is recorded; False for dropped and inert handles."""
        ...

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` header value naming this span as the remote parent."""
        ...

    @property
    def tracestate(self) -> str | None:
        """The trace's W3C ``tracestate`` header value, passed on unchanged; or None."""
        ...

    def end(
        self,
        *,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: SpanStatus | str | None = None,
        status_message: str | None = None,
        end_time_ns: int | None = None,
    ) -> None:
        """End the span (the keywords of ``TracingClient.end_span``)."""
        ...

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Add or replace attributes."""
        ...

    def set_attribute(self, key: str, value: Any) -> None:
        """Add or replace one attribute."""
        ...

    def set_inputs(self, inputs: Any) -> None:
        """Replace the recorded inputs."""
        ...

    def set_outputs(self, outputs: Any) -> None:
        """Record outputs before the span ends."""
        ...

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        time_ns: int | None = None,
    ) -> None:
        """Record a point in time inside the span."""
        ...

    def record_exception(self, exc: BaseException, *, time_ns: int | None = None) -> None:
        """Add an ``exception`` event and mark the span ERROR."""
        ...

    def set_token_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
    ) -> None:
        """Record the tokens this step's model call used."""
        ...
