"""Helpers for testing your own instrumentation with lowtrace.

    import lowtrace
    from lowtrace import TracingClient
    from lowtrace.testing import RecordingExporter, span_tree

    def test_my_agent_traces_its_steps():  # my_agent calls search, both @lowtrace.trace
        recorder = RecordingExporter()
        with TracingClient("none://", exporters=[recorder]) as client:
            lowtrace.set_default_client(client)
            my_agent("question")
            client.flush()
        (trace,) = recorder.traces
        assert span_tree(trace) == ("my_agent", [("search", [])])

``recorder.wait_for(n)`` blocks until n traces arrived, raising ``WaitTimeoutError``
(a ``LowtraceError`` and a ``TimeoutError``) when they do not come in time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from lowtrace._model import SpanRecord, Trace
from lowtrace.errors import InvalidArgumentError, WaitTimeoutError

__all__ = ["RecordingExporter", "span_tree"]

Tree = tuple[str, list[Any]]


class RecordingExporter:
    """An exporter that keeps every trace it receives, in order; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._traces: list[Trace] = []
        self.shutdown_calls = 0

    def export(self, traces: Sequence[Trace]) -> None:
        with self._lock:
            self._traces.extend(traces)
            self._lock.notify_all()

    def shutdown(self) -> None:
        with self._lock:
            self.shutdown_calls += 1

    @property
    def traces(self) -> list[Trace]:
        """A copy of what was received so far."""
        with self._lock:
            return list(self._traces)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Trace]:
        """Block until at least ``count`` traces arrived (or raise ``WaitTimeoutError``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._traces) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeoutError(
                        f"expected {count} trace(s), got {len(self._traces)} in {timeout}s"
                    )
                self._lock.wait(remaining)
            return list(self._traces)

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()


def span_tree(trace: Trace) -> Tree:
    """The trace's span names as nested ``(name, [children])`` in start order: easy to assert.

    A trace with several roots (fragments whose parents are elsewhere) gives the first root.
    """
    children: dict[str | None, list[SpanRecord]] = {}
    ids = {span.span_id for span in trace.spans}
    for span in trace.spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)

    def build(span: SpanRecord) -> Tree:
        return (span.name, [build(child) for child in children.get(span.span_id, [])])

    roots = children.get(None, [])
    if not roots:
        raise InvalidArgumentError(f"trace {trace.info.trace_id} has no root span")
    return build(roots[0])
