"""The public surface: what ``lowtrace`` exports, the testing helpers, the pandas view."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import lowtrace
from lowtrace import TracingClient, errors, trace
from lowtrace.testing import RecordingExporter, span_tree

EXPORTED = {
    "Assessment",
    "flush",
    "get_last_active_trace_id",
    "get_trace",
    "search_traces",
    "ModelPrice",
    "TraceCost",
    "estimate_cost",
    "ClientStats",
    "DroppedSpan",
    "Exporter",
    "ExportRejectedError",
    "ExporterStats",
    "FilterError",
    "InvalidArgumentError",
    "LifecycleError",
    "Limits",
    "LiveSpan",
    "LowtraceError",
    "MissingExtraError",
    "NoopSpan",
    "OpenSpansError",
    "PipelineConfig",
    "Span",
    "QueryTimeoutError",
    "SpanEndedError",
    "SpanEvent",
    "SpanNotFoundError",
    "SpanRecord",
    "SpanState",
    "SpanStatus",
    "SpanType",
    "StoreError",
    "StoreNotFoundError",
    "TokenUsage",
    "Trace",
    "TraceEndedError",
    "TraceInfo",
    "TraceList",
    "TraceNotFoundError",
    "TraceState",
    "TraceStore",
    "TracingClient",
    "TracingThreadPoolExecutor",
    "UnsampledSpan",
    "WaitTimeoutError",
    "format_tree",
    "get_current_span",
    "get_default_client",
    "set_default_client",
    "start_span",
    "trace",
    "update_current_trace",
    "wrap",
}


def test_the_exported_names() -> None:
    assert set(lowtrace.__all__) == EXPORTED
    for name in EXPORTED:
        assert getattr(lowtrace, name) is not None


def test_every_error_is_also_in_lowtrace_errors() -> None:
    for name in errors.__all__:
        assert getattr(lowtrace, name) is getattr(errors, name)


def test_private_modules_declare_all() -> None:
    for info in pkgutil.walk_packages(lowtrace.__path__, "lowtrace."):
        if info.name.startswith(("lowtrace.integrations.", "lowtrace.exporters.")):
            continue  # optional extras: their own tests import them
        if info.name.endswith("__main__") or ".__" in info.name:
            continue
        module = importlib.import_module(info.name)
        if info.ispkg:
            continue
        assert isinstance(getattr(module, "__all__", None), list), info.name


def test_recording_exporter_and_span_tree() -> None:
    recorder = RecordingExporter()

    @trace
    def agent() -> None:
        step("a")
        step("b")

    @trace
    def step(name: str) -> str:
        return name

    with TracingClient("none://", exporters=[recorder]) as client:
        lowtrace.set_default_client(client)
        try:
            agent()
            (trace_,) = recorder.wait_for(1)
        finally:
            lowtrace.set_default_client(None)
    assert span_tree(trace_) == (
        "test_recording_exporter_and_span_tree.<locals>.agent",
        [
            ("test_recording_exporter_and_span_tree.<locals>.step", []),
            ("test_recording_exporter_and_span_tree.<locals>.step", []),
        ],
    )
    assert recorder.shutdown_calls == 1
    with pytest.raises(TimeoutError):
        recorder.wait_for(2, timeout=0.05)


def test_search_results_as_a_dataframe(client: TracingClient) -> None:
    pytest.importorskip("pandas", reason="to_pandas() needs the pandas extra")
    root = client.start_trace("agent", inputs={"q": 1}, tags={"env": "prod"}, metadata={"m": 1})
    client.set_trace_metadata(root.trace_id, session_id="conv-1")
    span = client.start_span("llm", trace_id=root.trace_id, parent_id=root.span_id)
    span.set_token_usage(input_tokens=3, output_tokens=4)
    span.end()
    client.end_trace(root.trace_id, outputs={"a": 2})
    client.log_feedback(root.trace_id, "correct", True, source={"type": "HUMAN"})
    assert client.flush(5)
    frame = client.search_traces().to_pandas()
    assert list(frame["name"]) == ["agent"]
    assert frame.loc[0, "total_tokens"] == 7
    assert frame.loc[0, "request"] == {"q": 1} and frame.loc[0, "tags"] == {"env": "prod"}
    assert frame.loc[0, "metadata"] == {"m": "1"} and frame.loc[0, "session_id"] == "conv-1"
    assert frame.loc[0, "assessments"] == [
        {"name": "correct", "kind": "feedback", "value": True, "source": {"type": "HUMAN"}}
    ]


def test_cost_per_trace_from_a_price_table(client: TracingClient) -> None:
    root = client.start_trace("agent")
    chat = client.start_span(
        "chat", trace_id=root.trace_id, parent_id=root.span_id, attributes={"model": "gpt-big"}
    )
    raw = client.start_span(
        "http call", trace_id=root.trace_id, parent_id=chat.span_id, attributes={"model": "gpt-big"}
    )
    raw.set_token_usage(input_tokens=1_000_000, output_tokens=1_000_000)
    raw.end()
    chat.set_token_usage(input_tokens=1_000_000, output_tokens=1_000_000)  # the same call
    chat.end()
    small = client.start_span(
        "small", trace_id=root.trace_id, parent_id=root.span_id, attributes={"model": "gpt-small"}
    )
    small.set_token_usage(input_tokens=500_000, output_tokens=0)
    small.end()
    unknown = client.start_span("local", trace_id=root.trace_id, parent_id=root.span_id)
    unknown.set_token_usage(input_tokens=10, output_tokens=5)
    unknown.end()
    finished = client.end_trace(root.trace_id)
    assert finished is not None
    cost = lowtrace.estimate_cost(
        finished, {"gpt-big": lowtrace.ModelPrice(2.0, 8.0), "gpt-small": (0.1, 0.4)}
    )
    assert cost.by_model == {"gpt-big": 10.0, "gpt-small": 0.05}
    assert cost.total == 10.05
    assert cost.unpriced_tokens == 15
