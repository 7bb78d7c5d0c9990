"""What every integration does the same way: open a span where it belongs, close it safely.

A framework call becomes a child of its framework parent when there is one, else of the
current fluent span of the same client, else the root of a new trace (which it then owns
and ends). Errors in
tracing are reported to the client and never reach the framework or the application.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lowtrace._scope import finish

if TYPE_CHECKING:
    from lowtrace._client import TracingClient
    from lowtrace._handle import Span
    from lowtrace._types import SpanType

__all__ = ["AutologState", "Run", "current_span", "default_client", "finish_run", "start_run"]


class Run:
    """A traced framework call: the client, the live span and whether it owns its trace."""

    __slots__ = ("chunks", "client", "owns_trace", "span")

    def __init__(self, client: TracingClient, span: Span, owns_trace: bool) -> None:
        self.client = client
        self.span = span
        self.owns_trace = owns_trace
        self.chunks = 0  # streamed chunks seen, recorded as an attribute at the end

    @property
    def trace_id(self) -> str:
        return self.span.trace_id

    @property
    def span_id(self) -> str:
        return self.span.span_id


class AutologState:
    """Whether an integration's ``autolog()`` is on, and for which client.

    The classes it patches are process-wide, so one lock orders ``autolog()`` against
    ``disable()``; the patching itself happens inside ``turn_on``/``turn_off``.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = False
        self.client: TracingClient | None = None

    @contextmanager
    def turn_on(self, client: TracingClient | None) -> Iterator[None]:
        """Hold the lock, record ``client`` (None: the default client) and switch tracing on."""
        with self.lock:
            self.client = client
            self.active = True
            yield

    @contextmanager
    def turn_off(self) -> Iterator[None]:
        """Hold the lock and switch tracing off (calls from now on are not traced)."""
        with self.lock:
            self.active = False
            self.client = None
            yield


def default_client() -> TracingClient:
    """The fluent layer's default client, looked up at call time."""
    import lowtrace

    return lowtrace.get_default_client()


def current_span(client: TracingClient) -> Span | None:
    """The current fluent span if it records into ``client`` (else None).

    A span of another client is no parent here: its trace does not live in ``client``, so
    the framework call starts its own trace there rather than being lost. An unsampled
    span counts: its children must not start a new, sampled trace.
    """
    from lowtrace._context import current
    from lowtrace._sampling import UnsampledSpan

    entry = current.get()
    if entry is None or entry.client is not client:
        return None
    span = entry.span
    if isinstance(span, UnsampledSpan):
        return span
    recording = span.is_recording and not span.ended
    return span if recording else None


def start_run(
    client: TracingClient,
    name: str,
    span_type: SpanType,
    inputs: Any,
    attributes: dict[str, Any],
    parent: Run | None = None,
) -> Run:
    """Start a span under ``parent``, else under the current fluent span, else a new trace."""
    if parent is not None:
        span = parent.client.start_span(
            name,
            trace_id=parent.trace_id,
            parent_id=parent.span_id,
            span_type=span_type,
            inputs=inputs,
            attributes=attributes,
        )
        return Run(parent.client, span, owns_trace=False)
    current = current_span(client)
    if current is not None:
        span = client.start_span(
            name,
            trace_id=current.trace_id,
            parent_id=current.span_id,
            span_type=span_type,
            inputs=inputs,
            attributes=attributes,
        )
        return Run(client, span, owns_trace=False)
    span = client.start_trace(name, span_type=span_type, inputs=inputs, attributes=attributes)
    return Run(client, span, owns_trace=True)


def finish_run(
    run: Run,
    outputs: Any = None,
    error: BaseException | None = None,
    attributes: dict[str, Any] | None = None,
    where: str = "lowtrace.integrations",
) -> None:
    """End the run's span (its trace too, if it owns it), recording an error if any."""
    if run.chunks:
        attributes = {**(attributes or {}), "lowtrace.streamed_chunks": run.chunks}
    finish(run.client, run.span, run.owns_trace, outputs, error, attributes, where)


def wrap_call(
    original: Callable[..., Any],
    is_async: bool,
    begin: Callable[[Any, dict[str, Any]], Run | None],
    done: Callable[[Run, Any, dict[str, Any]], Any],
    where: str,
) -> Callable[..., Any]:
    """Wrap a model client's method: ``begin`` opens a run (None: the call is not traced),
    ``done`` records the result and returns what the caller gets; an error of the call ends
    the run and is re-raised as it is. ``disable()`` finds ``original`` on the wrapper."""
    if is_async:

        @functools.wraps(original)
        async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
            run = begin(self, kwargs)
            if run is None:
                return await original(self, *args, **kwargs)
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                finish_run(run, error=exc, where=where)
                raise
            return done(run, result, kwargs)

        wrapper: Callable[..., Any] = acall
    else:

        @functools.wraps(original)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            run = begin(self, kwargs)
            if run is None:
                return original(self, *args, **kwargs)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                finish_run(run, error=exc, where=where)
                raise
            return done(run, result, kwargs)

        wrapper = call
    wrapper.__lowtrace_original__ = original  # type: ignore[attr-defined]
    return wrapper
