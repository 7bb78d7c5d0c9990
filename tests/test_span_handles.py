"""Span handles are views: the live trace owns each span's state, a handle only reads it.

Two handles of one span (the one ``start_span`` returned and one from ``get_live_span``)
see the same span, whichever of them changed it.
"""

from __future__ import annotations

import gc

from lowtrace import LiveSpan, SpanStatus, TracingClient


def test_two_handles_of_one_span_see_the_same_state(client: TracingClient) -> None:
    root = client.start_trace("agent")
    step = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
    again = client.get_live_span(step.trace_id, step.span_id)
    assert isinstance(step, LiveSpan) and isinstance(again, LiveSpan)
    assert again == step and hash(again) == hash(step) and again != root
    step.set_token_usage(input_tokens=2, output_tokens=3)
    assert again.token_usage is not None and again.token_usage.total_tokens == 5
    again.end(status_message="done", status=SpanStatus.ERROR)
    assert step.ended and step.status is SpanStatus.ERROR and step.status_message == "done"
    assert step.end_time_ns is not None and step.end_time_ns >= step.start_time_ns
    assert repr(step).startswith("<LiveSpan 'step'") and repr(step).endswith("ended>")
    finished = client.end_trace(root.trace_id)
    assert finished is not None
    assert [(s.name, s.status) for s in finished.spans] == [
        ("agent", SpanStatus.OK),
        ("step", SpanStatus.ERROR),
    ]


def test_no_handle_for_unknown_or_malformed_ids(client: TracingClient) -> None:
    root = client.start_trace("agent")
    assert client.get_live_span(root.trace_id, "f" * 16) is None
    assert client.get_live_span("f" * 32, root.span_id) is None
    assert client.get_live_span(["unhashable"], root.span_id) is None  # type: ignore[arg-type]
    assert client.get_live_span(root.trace_id, ["unhashable"]) is None  # type: ignore[arg-type]


def test_a_finished_trace_leaves_nothing_for_the_cycle_collector() -> None:
    # Span state belongs to its trace and handles only point at it, so ended traces are
    # freed as soon as nobody holds them, not at the cyclic collector's next pass.
    with TracingClient("none://", exporters=[RecordingNothing()]) as client:
        record_traces(client, 20)  # warm up: first-use caches and the export worker
        gc.collect()
        gc.disable()
        try:
            record_traces(client, 200)
            unreachable = gc.collect()
        finally:
            gc.enable()
    assert unreachable < 200, f"{unreachable} objects in reference cycles after 200 traces"


class RecordingNothing:
    def export(self, traces: object) -> None:
        pass


def record_traces(client: TracingClient, count: int) -> None:
    for i in range(count):
        root = client.start_trace("agent", inputs={"i": i})
        for _ in range(3):
            step = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
            step.set_attributes({"k": "v"})
            step.end(outputs=[i])
        client.end_trace(root.trace_id, outputs={"ok": True})
    assert client.flush(timeout=10)
