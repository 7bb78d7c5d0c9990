"""OTLPExporter's answers to what the receiver says: retried (429/502/503/504, timeouts,
connection errors, honouring Retry-After) or final (everything else: rejected, never resent)."""

from __future__ import annotations

import email.utils
import os
import socket
import time
from collections.abc import Iterator

import pytest

from lowtrace import ExportRejectedError, PipelineConfig, TracingClient

pb = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="opentelemetry-proto is missing: the OTLP exporter tests need lowtrace[otlp]",
)

from lowtrace.exporters.otlp import (  # noqa: E402
    OTLPExporter,
    OTLPExportError,
    OTLPRejectedError,
    OTLPRetryableError,
)
from tests.test_otlp_exporter import FakeReceiver, make_traces  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


# -- answers --------------------------------------------------------------------------------------


def test_503_then_200_is_retried_by_the_pipeline_and_delivered(receiver: FakeReceiver) -> None:
    receiver.then(503)
    exporter = OTLPExporter(receiver.url)
    config = PipelineConfig(export_delay_s=0, backoff_initial_s=0.01)
    with TracingClient("memory://", exporters=[exporter], pipeline=config) as client:
        root = client.start_trace("agent")
        client.end_trace(root.trace_id)
        assert client.flush(10)
        [lane] = [s for s in client.stats().exporters if s.name == receiver.url]
        assert (lane.exported, lane.retried, lane.failed) == (1, 1, 0)
    assert len(receiver.received) == 2
    assert receiver.received[0].raw == receiver.received[1].raw
    assert receiver.received[1].spans()[0].trace_id.hex() == root.trace_id
    stats = exporter.stats()
    assert (stats.requests, stats.failed_requests, stats.exported_traces) == (2, 1, 1)


def test_429_retry_after_seconds_is_honoured(receiver: FakeReceiver) -> None:
    receiver.then(429, {"Retry-After": "1"})
    exporter = OTLPExporter(receiver.url, timeout=5)
    exporter.export(make_traces(1))
    first, second = receiver.received
    assert second.at - first.at >= 0.95
    assert exporter.stats().retried_requests == 1
    assert exporter.stats().exported_traces == 1


def test_retry_after_http_date_is_honoured(receiver: FakeReceiver) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    receiver.then(503, {"Retry-After": when})
    OTLPExporter(receiver.url, timeout=5).export(make_traces(1))
    first, second = receiver.received
    assert second.at - first.at >= 0.9  # the date has a one-second resolution


def test_retry_after_beyond_the_timeout_defers_the_next_attempt(receiver: FakeReceiver) -> None:
    receiver.then(429, {"Retry-After": "2"})
    exporter = OTLPExporter(receiver.url, timeout=1)
    traces = make_traces(1)
    started = time.monotonic()
    with pytest.raises(OTLPRetryableError) as info:
        exporter.export(traces)
    assert info.value.retry_after == 2 and info.value.status == 429
    assert time.monotonic() - started < 0.5  # did not sleep on it
    with pytest.raises(OTLPRetryableError):
        exporter.export(traces)  # too early: not even sent
    assert len(receiver.received) == 1
    time.sleep(1.2)
    exporter.export(traces)  # waits out the rest (< timeout), then sends
    assert len(receiver.received) == 2
    assert receiver.received[1].at - receiver.received[0].at >= 1.95


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415, 301, 500, 501, 505])
def test_final_answers_are_rejected_once_and_never_resent(
    receiver: FakeReceiver, status: int
) -> None:
    receiver.then(status, body=b"nope")
    exporter = OTLPExporter(receiver.url)
    with pytest.raises(ExportRejectedError) as info:
        exporter.export(make_traces(1))
    assert isinstance(info.value, OTLPRejectedError) and info.value.status == status
    assert f"with {status}" in str(info.value) and "nope" in str(info.value)
    assert len(receiver.received) == 1  # not retried inside export either
    stats = exporter.stats()
    assert (stats.rejected_traces, stats.rejected_spans, stats.exported_traces) == (1, 3, 0)
    assert stats.failed_requests == 0


def test_a_refused_batch_handed_in_again_is_not_resent(receiver: FakeReceiver) -> None:
    receiver.then(400)
    exporter = OTLPExporter(receiver.url)
    batch = make_traces(1)
    for _ in range(3):  # as a pipeline that retried anyway would
        with pytest.raises(OTLPRejectedError):
            exporter.export(batch)
    assert len(receiver.received) == 1
    exporter.export(make_traces(1))  # another batch goes out as usual
    assert len(receiver.received) == 2 and exporter.stats().exported_traces == 1


def test_a_refused_request_does_not_stop_the_rest_of_the_batch(receiver: FakeReceiver) -> None:
    receiver.then(413)
    exporter = OTLPExporter(receiver.url, max_request_bytes=2_000)
    traces = make_traces(4, payload="x" * 1_000)
    with pytest.raises(OTLPRejectedError):
        exporter.export(traces)
    assert len(receiver.received) == 4
    stats = exporter.stats()
    assert (stats.rejected_traces, stats.exported_traces) == (1, 3)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_answers_raise_for_the_pipeline(receiver: FakeReceiver, status: int) -> None:
    receiver.then(status)
    with pytest.raises(OTLPRetryableError) as info:
        OTLPExporter(receiver.url).export(make_traces(1))
    assert info.value.status == status
    assert not isinstance(info.value, ExportRejectedError)


def test_connection_refused_raises() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exporter = OTLPExporter(f"http://127.0.0.1:{port}/v1/traces")
    with pytest.raises(OTLPExportError, match="failed"):
        exporter.export(make_traces(1))
    assert exporter.stats().failed_requests == 1


def test_slow_receiver_times_out(receiver: FakeReceiver) -> None:
    receiver.then(200, delay=3)
    started = time.monotonic()
    with pytest.raises(OTLPExportError):
        OTLPExporter(receiver.url, timeout=0.5).export(make_traces(1))
    assert time.monotonic() - started < 2


def test_partial_success_is_counted(receiver: FakeReceiver) -> None:
    answer = pb.ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = 2
    answer.partial_success.error_message = "too old"
    receiver.then(200, body=answer.SerializeToString())
    exporter = OTLPExporter(receiver.url)
    exporter.export(make_traces(1))
    assert (exporter.stats().rejected_spans, exporter.stats().exported_spans) == (2, 1)


def test_large_batches_are_split_and_never_resent(receiver: FakeReceiver) -> None:
    traces = make_traces(6, payload="y" * 3000)
    exporter = OTLPExporter(receiver.url, max_request_bytes=8000)
    receiver.then(200).then(503)
    with pytest.raises(OTLPExportError):
        exporter.export(traces)
    exporter.export(traces)  # the pipeline's retry: the same batch again
    accepted = [r for i, r in enumerate(receiver.received) if i != 1]  # the second got 503
    sent = [s.trace_id.hex() for r in accepted for s in r.spans() if not s.parent_span_id]
    assert sorted(sent) == sorted(t.info.trace_id for t in traces)  # each exactly once
    assert len(receiver.received) > 3
    assert all(len(r.raw) <= 8000 for r in receiver.received)


PAST = email.utils.formatdate(time.time() - 60, usegmt=True)


@pytest.mark.parametrize("retry_after", ["0", PAST])
def test_retry_after_zero_or_past_does_not_hammer_an_overloaded_receiver(
    receiver: FakeReceiver, retry_after: str
) -> None:
    for _ in range(500):
        receiver.then(429, {"Retry-After": retry_after})
    exporter = OTLPExporter(receiver.url, timeout=1.5)
    with pytest.raises(OTLPRetryableError):
        exporter.export(make_traces(1))
    assert len(receiver.received) <= 2  # resent after a second at most once, not in a loop


@pytest.mark.parametrize("claimed", [1000, -5])
def test_a_partial_success_count_out_of_range_is_bounded_by_the_request(
    receiver: FakeReceiver, claimed: int
) -> None:
    answer = pb.ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = claimed  # more than sent, or negative
    receiver.then(200, body=answer.SerializeToString())
    exporter = OTLPExporter(receiver.url)
    exporter.export(make_traces(1))  # three spans
    stats = exporter.stats()
    assert 0 <= stats.rejected_spans <= 3 and 0 <= stats.exported_spans <= 3
    assert stats.rejected_spans + stats.exported_spans == 3
