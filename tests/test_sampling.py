"""Head sampling: ``sample_ratio`` / ``LOWTRACE_SAMPLE_RATIO``, decided from the trace id,
a remote parent's flag wins, unsampled traces record nothing and are counted."""

from __future__ import annotations

import logging

import pytest

import lowtrace
from lowtrace import (
    InvalidArgumentError,
    SpanType,
    TraceEndedError,
    TraceNotFoundError,
    TracingClient,
    UnsampledSpan,
    propagation,
)
from lowtrace.testing import RecordingExporter

pytestmark = pytest.mark.timeout(60)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SAMPLED = f"00-{TRACE}-00f067aa0ba902b7-01"
NOT_SAMPLED = f"00-{TRACE}-00f067aa0ba902b7-00"


def otel_decides(trace_id: str, ratio: float) -> bool:
    """OpenTelemetry's own TraceIdRatioBased decision for this trace id."""
    from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

    result = TraceIdRatioBased(ratio).should_sample(None, int(trace_id, 16), "x")
    return bool(result.decision == Decision.RECORD_AND_SAMPLE)


def test_a_remote_not_sampled_parent_is_not_recorded_and_says_00() -> None:
    recorder = RecordingExporter()
    with TracingClient("memory://", exporters=[recorder]) as client:
        root = client.start_trace("tool", traceparent=NOT_SAMPLED, tracestate="vendor=abc")
        assert isinstance(root, UnsampledSpan) and not root.is_recording
        assert (root.trace_id, root.parent_id) == (TRACE, "00f067aa0ba902b7")
        assert root.traceparent == f"00-{TRACE}-{root.span_id}-00"
        child = client.start_span("lookup", trace_id=root.trace_id, parent_id=root.span_id)
        assert isinstance(child, UnsampledSpan) and child.parent_id == root.span_id
        headers: dict[str, str] = {}
        propagation.inject(child, headers)
        assert headers == {
            "traceparent": f"00-{TRACE}-{child.span_id}-00",
            "tracestate": "vendor=abc",
        }
        child.set_attributes({"k": 1})
        child.record_exception(ValueError("ignored"))
        client.end_span(child.trace_id, child.span_id, outputs=[1])
        client.set_trace_tags(root.trace_id, {"env": "x"})
        assert client.end_trace(root.trace_id, outputs="x") is None
        assert client.flush(5)
        stats = client.stats()
        assert (stats.unsampled_traces, stats.started_traces, stats.live_traces) == (1, 0, 0)
        assert client.search_traces() == []
    assert recorder.traces == []
    assert stats.violations == {}


def test_a_remote_sampled_parent_wins_over_a_zero_ratio() -> None:
    with TracingClient("memory://", sample_ratio=0.0) as client:
        root = client.start_trace("tool", traceparent=SAMPLED)
        assert root.is_recording and root.traceparent.endswith("-01")
        trace = client.end_trace(root.trace_id)
        assert trace is not None and trace.info.trace_id == TRACE


def test_the_ratio_decides_from_the_trace_id_like_opentelemetry() -> None:
    decisions: list[tuple[str, bool]] = []
    with TracingClient("memory://", sample_ratio=0.25) as client:
        for _ in range(400):
            root = client.start_trace("agent")
            decisions.append((root.trace_id, root.is_recording))
            client.end_trace(root.trace_id)
        stats = client.stats()
    assert all(recorded == otel_decides(tid, 0.25) for tid, recorded in decisions)
    kept = sum(recorded for _, recorded in decisions)
    assert 0 < kept < 400  # both outcomes happen at 25 %
    assert stats.unsampled_traces == 400 - kept and stats.finished_traces == kept


def test_ratio_zero_and_one() -> None:
    with TracingClient("memory://", sample_ratio=0) as none, TracingClient("memory://") as every:
        assert not any(none.start_trace("a").is_recording for _ in range(50))
        assert all(every.start_trace("a").is_recording for _ in range(50))
        assert none.sample_ratio == 0.0 and every.sample_ratio == 1.0


def test_environment_ratio_and_code_beats_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LOWTRACE_SAMPLE_RATIO", "0")
    with TracingClient("memory://") as client:
        assert client.sample_ratio == 0.0 and not client.start_trace("a").is_recording
    with TracingClient("memory://", sample_ratio=1.0) as client:
        assert client.start_trace("a").is_recording
    monkeypatch.setenv("LOWTRACE_SAMPLE_RATIO", "lots")
    with caplog.at_level(logging.WARNING, "lowtrace"), TracingClient("memory://") as client:
        assert client.sample_ratio == 1.0
    assert "LOWTRACE_SAMPLE_RATIO" in caplog.text


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True, float("nan")])
def test_bad_ratio_in_code_raises(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="sample_ratio"):
        TracingClient("memory://", sample_ratio=bad)  # type: ignore[arg-type]


def test_fluent_children_of_an_unsampled_span_stay_unsampled() -> None:
    recorder = RecordingExporter()
    with TracingClient("memory://", exporters=[recorder], sample_ratio=0.0) as client:

        @lowtrace.trace(client=client)
        def step() -> str:
            return "done"

        with lowtrace.start_span("agent", client=client) as root:
            assert isinstance(root, UnsampledSpan)
            with lowtrace.start_span("inner", span_type=SpanType.TOOL) as inner:
                assert isinstance(inner, UnsampledSpan)
                assert (inner.trace_id, inner.parent_id) == (root.trace_id, root.span_id)
                assert step() == "done"
        assert root.ended
        assert client.flush(5)
        stats = client.stats()
    assert recorder.traces == [] and stats.unsampled_traces == 1
    assert stats.violations == {}


def test_an_ended_unsampled_trace_is_forgotten() -> None:
    with TracingClient("memory://", sample_ratio=0.0) as client:
        root = client.start_trace("agent")
        root.end()
        assert root.trace_id not in client._unsampled
        with pytest.raises(TraceEndedError):
            client.start_span("late", trace_id=root.trace_id, parent_id=root.span_id)


@pytest.mark.parametrize("ratio", [1.0, 0.0])
def test_strict_lifecycle_errors_do_not_depend_on_sampling(ratio: float) -> None:
    """The same misuse raises the same error whether or not the trace was sampled."""
    with TracingClient("memory://", sample_ratio=ratio) as client:
        root = client.start_trace("agent")
        child = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
        with pytest.raises(InvalidArgumentError):
            client.start_span(7, trace_id=root.trace_id, parent_id=root.span_id)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            client.start_span("x", trace_id=root.trace_id, parent_id=None)  # type: ignore[arg-type]
        client.end_span(child.trace_id, child.span_id)
        client.end_trace(root.trace_id)
        with pytest.raises(TraceEndedError):
            client.end_trace(root.trace_id)
        with pytest.raises(TraceEndedError):
            client.end_span(child.trace_id, child.span_id)
        with pytest.raises(TraceEndedError):
            client.start_span("late", trace_id=root.trace_id, parent_id=root.span_id)


def test_the_set_of_live_unsampled_traces_is_bounded() -> None:
    limits = lowtrace.Limits(max_live_traces=3)
    with TracingClient("memory://", sample_ratio=0.0, limits=limits) as client:
        roots = [client.start_trace(f"t{i}") for i in range(5)]
        assert client.stats().unsampled_traces == 5
        # the three newest still take children; the two oldest were forgotten
        for root in roots[2:]:
            child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)
            assert isinstance(child, UnsampledSpan)
        with pytest.raises(TraceNotFoundError):
            client.start_span("c", trace_id=roots[0].trace_id, parent_id=roots[0].span_id)


@pytest.mark.parametrize("strict", [True, False])
def test_trace_annotations_on_an_unsampled_trace_are_quiet_no_ops(strict: bool) -> None:
    with TracingClient("memory://", sample_ratio=0.0, strict=strict) as client:
        root = client.start_trace("agent")
        client.set_trace_tags(root.trace_id, {"env": "prod"})
        client.delete_trace_tag(root.trace_id, "env")
        client.set_trace_metadata(root.trace_id, {"k": "v"}, session_id="s-1", user_id="u-1")
        with lowtrace.start_span("step", client=client):
            lowtrace.update_current_trace(tags={"a": "b"})
        root.end()
        assert client.stats().violations == {}


@pytest.mark.parametrize("bad_id", [["not", "an", "id"], {"a": 1}])
def test_an_unhashable_trace_id_is_an_invalid_argument(bad_id: object) -> None:
    with TracingClient("memory://") as client:
        with pytest.raises(InvalidArgumentError):
            client.set_trace_tags(bad_id, {"env": "prod"})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            client.set_trace_metadata(bad_id, {"k": "v"})  # type: ignore[arg-type]
    with TracingClient("memory://", strict=False) as client:
        client.set_trace_tags(bad_id, {"env": "prod"})  # type: ignore[arg-type]
        assert client.stats().violations == {"InvalidArgumentError": 1}
