"""The current span: a ``ContextVar``, so parent-child links follow the call stack.

asyncio tasks inherit it; threads do not (each starts with an empty context), so
``wrap(fn)`` and ``TracingThreadPoolExecutor`` carry the caller's context into pool threads
and fan-out stays in one trace.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import attrs

if TYPE_CHECKING:
    from lowtrace._client import TracingClient
    from lowtrace._handle import Span

__all__ = [
    "Current",
    "TracingThreadPoolExecutor",
    "current",
    "get_current_span",
    "update_current_trace",
    "wrap",
]

P = ParamSpec("P")
R = TypeVar("R")


@attrs.frozen
class Current:
    """The span code is running in, and the client that records it."""

    client: TracingClient
    span: Span


current: ContextVar[Current | None] = ContextVar("lowtrace_current_span", default=None)


def get_current_span() -> Span | None:
    """The live handle of the span the caller runs in, or None outside any span."""
    entry = current.get()
    return entry.span if entry is not None else None


def update_current_trace(
    tags: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
) -> None:
    """Add tags or metadata to the current trace, or set its session or user id.

    Outside any span this does nothing; a tracing error is reported, never raised.
    """
    entry = current.get()
    if entry is None or not entry.span.is_recording:
        return
    client, trace_id = entry.client, entry.span.trace_id
    try:
        if tags:
            client.set_trace_tags(trace_id, tags)
        if metadata or session_id is not None or user_id is not None:
            client.set_trace_metadata(trace_id, metadata, session_id=session_id, user_id=user_id)
    except Exception as exc:  # noqa: BLE001 - tracing never breaks the application
        client.report_error(exc, "lowtrace.update_current_trace")


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` bound to the caller's context: call it in any thread, it joins the same trace."""
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time: each call gets its own copy.
        return context.copy().run(fn, *args, **kwargs)

    return run


class TracingThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in the submitter's context (its current span)."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)
