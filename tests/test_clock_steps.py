"""The wall clock may step back (NTP, a VM resumed): no span gets a negative duration, and a
trace whose end is read from the clock still covers every span recorded in it."""

from __future__ import annotations

import pytest

import lowtrace._client
import lowtrace._ending
import lowtrace._live
from lowtrace import Trace, TracingClient


class Clock:
    """A wall clock the test sets by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1_000_000)
    for module in (lowtrace._client, lowtrace._live, lowtrace._ending):
        monkeypatch.setattr(module, "_time_ns", fake)
    return fake


def assert_covered(trace: Trace) -> None:
    root = trace.spans[0]
    for span in trace.spans:
        assert span.end_time_ns >= span.start_time_ns, span.name
        assert root.start_time_ns <= span.start_time_ns, span.name
        assert span.end_time_ns <= root.end_time_ns, span.name
    assert (trace.info.start_time_ns, trace.info.end_time_ns) == (
        root.start_time_ns,
        root.end_time_ns,
    )


def test_a_trace_ended_after_the_clock_stepped_back_covers_its_spans(
    client: TracingClient, clock: Clock
) -> None:
    root = client.start_trace("agent")
    clock.now = 3_000_000
    step = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
    clock.now = 4_000_000
    step.end()
    clock.now = 2_000_000  # stepped back: before the step ended, after the trace started
    trace = client.end_trace(root.trace_id)
    assert trace is not None
    assert_covered(trace)
    assert trace.info.end_time_ns == 4_000_000


def test_spans_closed_with_the_trace_after_the_clock_stepped_back_stay_inside_it(
    client: TracingClient, clock: Clock
) -> None:
    root = client.start_trace("agent")
    clock.now = 3_000_000
    client.start_span("left open", trace_id=root.trace_id, parent_id=root.span_id)
    clock.now = 500_000  # stepped back past the start of the trace itself
    trace = client.end_trace(root.trace_id, close_open_spans=True)
    assert trace is not None
    assert_covered(trace)


def test_an_abandoned_trace_after_the_clock_stepped_back_covers_its_spans(
    clock: Clock,
) -> None:
    client = TracingClient("memory://")
    root = client.start_trace("agent")
    clock.now = 3_000_000
    done = client.start_span("done", trace_id=root.trace_id, parent_id=root.span_id)
    clock.now = 5_000_000
    done.end()
    client.start_span("open", trace_id=root.trace_id, parent_id=root.span_id)
    clock.now = 2_000_000
    client.close()  # abandons the live trace: its end is read from the clock
    trace = client.get_trace(root.trace_id)
    assert trace is not None
    assert_covered(trace)


def test_an_end_time_given_explicitly_is_kept_as_given(client: TracingClient) -> None:
    """Explicit timestamps (a replay of recorded data) are the caller's: not clamped."""
    root = client.start_trace("replay", start_time_ns=1_000)
    step = client.start_span(
        "step", trace_id=root.trace_id, parent_id=root.span_id, start_time_ns=2_000
    )
    step.end(end_time_ns=9_000)
    trace = client.end_trace(root.trace_id, end_time_ns=5_000)
    assert trace is not None
    assert trace.info.end_time_ns == 5_000
