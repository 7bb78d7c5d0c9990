"""Races around the end of a trace: the loser always hears "ended", clocks stay ordered."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import lowtrace._ending
from lowtrace import LowtraceError, SpanEndedError, TraceEndedError, TracingClient

TIMEOUT = 30


def race(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released together; results or exceptions."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return action(i)
        except LowtraceError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count), timeout=TIMEOUT))


def test_a_call_inside_end_traces_hand_over_hears_ended_never_not_found() -> None:
    """The moment ``end_trace`` moves the trace from "live" to "ended" is atomic to others."""
    with TracingClient("memory://") as client:
        root = client.start_trace("t")
        child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)
        seen: list[BaseException | None] = []

        class Spy(collections.OrderedDict[str, None]):
            def __setitem__(self, key: str, value: None) -> None:
                # Another caller running right while the registry records the end.
                for call in (
                    lambda: client.end_span(root.trace_id, child.span_id),
                    lambda: client.set_trace_tags(root.trace_id, {"k": "v"}),
                    lambda: client.start_span("x", trace_id=root.trace_id, parent_id=root.span_id),
                ):
                    try:
                        call()
                        seen.append(None)
                    except LowtraceError as exc:
                        seen.append(exc)
                super().__setitem__(key, value)

        client._registry._ended = Spy(client._registry._ended)
        client.end_trace(root.trace_id, close_open_spans=True)
        # set_trace_tags on an ended trace changes the stored one: it must find it there.
        names = [type(e).__name__ for e in seen]
        assert names == ["TraceEndedError", "NoneType", "TraceEndedError"]
        assert client.flush(5)
        stored = client.get_trace(root.trace_id)
        assert stored is not None and stored.info.tags == {"k": "v"}


def test_racing_end_span_and_close_open_spans_loser_hears_ended() -> None:
    with TracingClient("memory://") as client:
        for _ in range(200):
            root = client.start_trace("t")
            child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)

            def act(i: int, root: Any = root, child: Any = child) -> Any:
                if i == 0:
                    return client.end_trace(root.trace_id, close_open_spans=True)
                return client.end_span(root.trace_id, child.span_id)

            _, late = race(2, act)
            assert late is None or isinstance(late, (TraceEndedError, SpanEndedError)), late


def test_after_end_trace_every_call_naming_the_trace_raises_trace_ended() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("t")
        client.end_trace(root.trace_id)
        calls: list[Callable[[], Any]] = [
            lambda: client.end_trace(root.trace_id),
            lambda: client.end_span(root.trace_id, root.span_id),
            lambda: client.start_span("x", trace_id=root.trace_id, parent_id=root.span_id),
            lambda: client.set_trace_metadata(root.trace_id, {"a": "b"}),
        ]  # (set_trace_tags is the exception: it changes the stored trace)
        for call in calls:
            try:
                call()
            except TraceEndedError:
                continue
            raise AssertionError("expected TraceEndedError")


def test_a_child_never_starts_after_its_parent_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child started while its parent is ending either starts before the end or fails."""
    with TracingClient("memory://") as client:
        root = client.start_trace("t")
        parent = client.start_span("p", trace_id=root.trace_id, parent_id=root.span_id)
        outcome: list[Any] = []
        real = time.time_ns

        def start_child() -> None:
            try:
                outcome.append(
                    client.start_span("c", trace_id=root.trace_id, parent_id=parent.span_id)
                )
            except LowtraceError as exc:
                outcome.append(exc)

        def end_clock() -> int:
            now = real()
            # Another thread starts a child after the end time was read: it must not end
            # up starting later than its parent ends.
            thread = threading.Thread(target=start_child)
            thread.start()
            thread.join(0.5)  # blocks on the trace's lock when the clock is read under it
            return now

        monkeypatch.setattr(lowtrace._ending, "_time_ns", end_clock)
        client.end_span(root.trace_id, parent.span_id)
        monkeypatch.setattr(lowtrace._ending, "_time_ns", real)
        deadline = time.monotonic() + TIMEOUT
        while not outcome and time.monotonic() < deadline:
            time.sleep(0.01)
        (child,) = outcome
        trace = client.end_trace(root.trace_id, close_open_spans=True)
        assert trace is not None
        if not isinstance(child, SpanEndedError):
            records = {s.name: s for s in trace.spans}
            assert records["c"].start_time_ns <= records["p"].end_time_ns
