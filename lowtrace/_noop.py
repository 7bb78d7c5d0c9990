"""The inert span handle returned when tracing is disabled or a call was refused.

It accepts every call of a live span handle and records nothing, so code written against
``Span`` runs unchanged with ``LOWTRACE_ENABLED=false`` or in non-strict mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lowtrace._types import SpanStatus

__all__ = ["NOOP_SPAN", "NoopSpan"]

_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


class NoopSpan:
    """A span handle that records nothing. Its ids are all zeros (invalid in W3C terms)."""

    __slots__ = ()

    trace_id: Final[str] = _ZERO_TRACE
    span_id: Final[str] = _ZERO_SPAN
    parent_id: Final[str | None] = None
    name: Final[str] = ""
    ended: Final[bool] = False
    is_recording: Final[bool] = False
    traceparent: Final[str] = f"00-{_ZERO_TRACE}-{_ZERO_SPAN}-00"
    tracestate: Final[str | None] = None

    def __repr__(self) -> str:
        return "<NoopSpan>"

    def end(
        self,
        *,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: SpanStatus | str | None = None,
        status_message: str | None = None,
        end_time_ns: int | None = None,
    ) -> None:
        """Does nothing."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Does nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Does nothing."""

    def set_inputs(self, inputs: Any) -> None:
        """Does nothing."""

    def set_outputs(self, outputs: Any) -> None:
        """Does nothing."""

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        time_ns: int | None = None,
    ) -> None:
        """Does nothing."""

    def record_exception(self, exc: BaseException, *, time_ns: int | None = None) -> None:
        """Does nothing."""

    def set_token_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
    ) -> None:
        """Does nothing."""


NOOP_SPAN: Final = NoopSpan()
