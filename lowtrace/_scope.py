"""A span opened by the fluent API, and ``start_span`` (``with`` / ``async with``).

A ``Scope`` starts its span as a child of the current span (through that span's client, where
its trace lives) or as a new trace, makes it current while user code runs, and ends it with
the outputs or the exception. Every tracing failure is reported to the client
(``report_error``) and swallowed: the user's code runs exactly as it would untraced.
"""

from __future__ import annotations

from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lowtrace._context import Current, current
from lowtrace._default import client_for_tracing
from lowtrace._noop import NOOP_SPAN
from lowtrace._sampling import UnsampledSpan
from lowtrace._traceparent import parse_traceparent_fields
from lowtrace._types import SpanStatus, SpanType
from lowtrace.errors import InvalidArgumentError

if TYPE_CHECKING:
    from lowtrace._client import TracingClient
    from lowtrace._handle import Span

__all__ = ["Scope", "finish", "start_span"]


class Scope:
    """One fluent span: started on ``open``, current between ``enter`` and ``leave``."""

    __slots__ = ("client", "done", "entry", "owns_trace", "span", "where")

    def __init__(self, client: TracingClient, span: Span, owns_trace: bool, where: str) -> None:
        self.client = client
        self.span = span
        self.owns_trace = owns_trace
        self.where = where
        self.entry = Current(client, span)
        self.done = False

    @classmethod
    def open(
        cls,
        name: str,
        span_type: SpanType | str,
        inputs: Any,
        attributes: dict[str, Any] | None,
        client: TracingClient | None,
        where: str,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> Scope | None:
        """Start the span; None if tracing failed (reported) and the code should run bare.

        With a ``traceparent`` the span continues that remote trace as a new local trace,
        whatever span is current; one that does not parse starts a new trace (as the W3C
        spec asks: remote input must not turn tracing off).
        """
        parent = None if traceparent is not None else current.get()
        if traceparent is not None and not _parses(traceparent):
            traceparent = tracestate = None  # its tracestate belonged to it: dropped too
        if parent is not None and (
            parent.span.ended
            or not (parent.span.is_recording or isinstance(parent.span, UnsampledSpan))
        ):
            parent = None  # ended elsewhere (another thread or task): not a parent any more
        chosen = client or (parent.client if parent is not None else None)
        chosen = chosen or client_for_tracing(where)
        if chosen is None:
            return None  # no client to record into (logged once): the code runs bare
        try:
            if parent is not None and parent.client is chosen:
                span = chosen.start_span(
                    name,
                    trace_id=parent.span.trace_id,
                    parent_id=parent.span.span_id,
                    span_type=span_type,
                    inputs=inputs,
                    attributes=attributes,
                )
                return cls(chosen, span, False, where)
            span = chosen.start_trace(
                name,
                span_type=span_type,
                inputs=inputs,
                attributes=attributes,
                traceparent=traceparent,
                tracestate=tracestate,
            )
            return cls(chosen, span, True, where)
        except Exception as exc:  # noqa: BLE001 - tracing never breaks the application
            if chosen is not None:
                chosen.report_error(exc, where)
            return None

    def enter(self) -> Token[Current | None]:
        """Make this span current (until ``leave``)."""
        return current.set(self.entry)

    def leave(self, token: Token[Current | None]) -> None:
        """Restore the span that was current before ``enter``, from any context."""
        try:
            current.reset(token)
        except ValueError:  # ended in another task or thread than the one that entered it
            # Only where this span is current (a context copied from inside it): elsewhere
            # (a coroutine closed by the garbage collector) another span may be current.
            if current.get() is self.entry:
                current.set(token.old_value if token.old_value is not Token.MISSING else None)

    def close(
        self,
        outputs: Any = None,
        error: BaseException | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """End the span (and its trace, if it started one); once only, never raising."""
        if self.done:
            return
        self.done = True
        finish(self.client, self.span, self.owns_trace, outputs, error, attributes, self.where)


def _parses(traceparent: object) -> bool:
    """Whether a ``traceparent`` header value is valid W3C trace context."""
    try:
        parse_traceparent_fields(traceparent)  # type: ignore[arg-type]
    except InvalidArgumentError:
        return False
    return True


def finish(
    client: TracingClient,
    span: Span,
    owns_trace: bool,
    outputs: Any = None,
    error: BaseException | None = None,
    attributes: dict[str, Any] | None = None,
    where: str = "lowtrace",
) -> None:
    """End a span started by instrumentation (its trace too, if it started it); never raises.

    An error is recorded on the span (status ERROR). A trace it owns is ended with
    ``close_open_spans=True``: a child the instrumented code left open (an abandoned
    stream) must not keep the whole trace open.
    """
    try:
        if error is not None:
            span.record_exception(error)
        status = SpanStatus.ERROR if error is not None else None
        if owns_trace:
            client.end_trace(
                span.trace_id,
                outputs=outputs,
                attributes=attributes,
                status=status,
                close_open_spans=True,
            )
        else:
            span.end(outputs=outputs, attributes=attributes, status=status)
    except Exception as exc:  # noqa: BLE001 - tracing never breaks the application
        client.report_error(exc, where)


class start_span:
    """``with start_span(name, ...) as span:`` (or ``async with``): a span around a block.

    The span is current inside the block; an escaping exception is recorded (status ERROR)
    and re-raised unchanged. Yields the live span handle (an inert one if tracing failed).
    ``traceparent``/``tracestate`` (W3C header values, see ``lowtrace.propagation``)
    continue a remote trace: the span starts a local trace under the caller's span.
    """

    __slots__ = ("_args", "_scope", "_token")

    def __init__(
        self,
        name: str,
        *,
        span_type: SpanType | str = SpanType.UNKNOWN,
        inputs: Any = None,
        attributes: dict[str, Any] | None = None,
        client: TracingClient | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> None:
        self._args = (name, span_type, inputs, attributes, client, traceparent, tracestate)
        self._scope: Scope | None = None
        self._token: Token[Current | None] | None = None

    def __enter__(self) -> Span:
        name, span_type, inputs, attributes, client, traceparent, tracestate = self._args
        scope = self._scope = Scope.open(
            name,
            span_type,
            inputs,
            attributes,
            client,
            "lowtrace.start_span",
            traceparent,
            tracestate,
        )
        if scope is None:
            return NOOP_SPAN
        self._token = scope.enter()
        return scope.span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        scope = self._scope
        if scope is None:
            return
        if self._token is not None:
            scope.leave(self._token)
        scope.close(error=error)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(kind, error, traceback)
