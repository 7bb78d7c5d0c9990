"""What every integration does the same way: open a span where it belongs, close it safely.

A framework call becomes a child of its framework parent when there is one, else of the
current fluent span of the same client, else the root of a new trace (which it then owns
and ends). An autologged client call (OpenAI, Anthropic) first looks for the framework span
running code here (``Frame``: pushed by the LangChain handler, looked up in the Agents SDK's
own context), so it lands in the framework's trace. Errors in tracing are reported to the
client and never reach the framework or the application.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from lowtrace._scope import finish

if TYPE_CHECKING:
    from lowtrace._client import TracingClient
    from lowtrace._handle import Span
    from lowtrace._types import SpanType

__all__ = [
    "AutologState",
    "Frame",
    "Run",
    "current_span",
    "finish_run",
    "framework_providers",
    "pop_frame",
    "push_frame",
    "start_model_run",
    "start_run",
]


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


class Frame:
    """A framework span running code on this thread/task: the parent of autologged calls.

    ``is_model_call`` marks a span that already is a model call (an Agents SDK generation,
    a LangChain chat model run): the first client call made inside it is that same call.
    """

    __slots__ = ("absorbed", "is_model_call", "previous", "run")

    def __init__(self, run: Run, is_model_call: bool, previous: Frame | None = None) -> None:
        self.run = run
        self.is_model_call = is_model_call
        self.previous = previous
        self.absorbed = False  # the model span's own client call has been seen


_frame: ContextVar[Frame | None] = ContextVar("lowtrace_framework_frame", default=None)

# Frameworks with a context of their own (the Agents SDK's current span) add a lookup here.
framework_providers: list[Callable[[], Frame | None]] = []


def push_frame(run: Run, is_model_call: bool) -> Frame:
    """Make ``run`` the current framework span of this context; returns what to pop."""
    frame = Frame(run, is_model_call, _frame.get())
    _frame.set(frame)
    return frame


def pop_frame(frame: Frame) -> None:
    """Undo ``push_frame`` here, with any frame pushed after it and not popped in this
    context (ends may run elsewhere); a frame not current here is left alone."""
    current = _frame.get()
    while current is not None:
        if current is frame:
            _frame.set(frame.previous)
            return
        current = current.previous


def _live_frame(client: TracingClient) -> Frame | None:
    """The innermost open framework span of ``client`` current here, if any."""
    frame = _frame.get()
    while frame is not None and frame.run.span.ended:  # a stale frame never parents
        frame = frame.previous
    for found in [frame, *(provider() for provider in framework_providers)]:
        if found is not None and found.run.client is client and not found.run.span.ended:
            return found
    return None


def start_model_run(
    client: TracingClient,
    name: str,
    span_type: SpanType,
    inputs: Any,
    attributes: dict[str, Any],
) -> Run | None:
    """Start an autologged client call's span: under the current framework span, if any.

    None (not traced) for the first call inside a framework model span: that span already
    records this very call, so it never shows twice. Later calls there (user code run while
    a stream is consumed) nest under it. No framework span: as ``start_run``.
    """
    frame = _live_frame(client)
    if frame is None:
        return start_run(client, name, span_type, inputs, attributes)
    if frame.is_model_call and not frame.absorbed:
        frame.absorbed = True
        return None
    return start_run(client, name, span_type, inputs, attributes, parent=frame.run)


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
