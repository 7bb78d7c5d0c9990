"""A lowtrace service between two OpenTelemetry SDK services, all exporting to one OTLP
receiver: one trace, the right parents, the caller's sampling decision and tracestate kept.

    edge -> frontend (OTel SDK) -> tool (lowtrace) -> backend (OTel SDK)

Each hop passes W3C headers in a dict (in-process); every service exports over OTLP/HTTP to
the same receiver on 127.0.0.1, which decodes the protobuf requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lowtrace import SpanType, TracingClient, UnsampledSpan, propagation

pytest.importorskip("opentelemetry.sdk.trace", reason="needs opentelemetry-sdk (the test extra)")
pytest.importorskip(
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    reason="needs opentelemetry-exporter-otlp-proto-http (the test extra)",
)

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

from lowtrace.exporters.otlp import OTLPExporter
from tests.test_otlp_exporter import FakeReceiver

pytestmark = pytest.mark.timeout(120)

W3C = TraceContextTextMapPropagator()
EDGE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
EDGE_STATE = "edge=1,congo=t61rcWkgMzE"


class OTelService:
    """An OpenTelemetry SDK service: continues the incoming context, calls the next hop."""

    def __init__(self, name: str, url: str, sampler: Sampler) -> None:
        self.provider = TracerProvider(
            sampler=sampler, resource=Resource.create({"service.name": name})
        )
        self.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url)))
        self.tracer: Tracer = self.provider.get_tracer(name)
        self.name = name
        self.seen: list[dict[str, str]] = []
        self.sampled: list[bool] = []

    def handle(self, headers: dict[str, str], call: Any = None) -> None:
        self.seen.append(dict(headers))
        with self.tracer.start_as_current_span(self.name, context=W3C.extract(headers)) as span:
            self.sampled.append(span.get_span_context().trace_flags.sampled)
            if call is not None:
                outgoing: dict[str, str] = {}
                W3C.inject(outgoing, context=set_span_in_context(span))
                call(outgoing)

    def close(self) -> None:
        self.provider.shutdown()


class ToolService:
    """The lowtrace service in the middle."""

    def __init__(self, url: str, sample_ratio: float = 1.0) -> None:
        self.client = TracingClient(
            "memory://",
            exporters=[OTLPExporter(url, service_name="tool")],
            sample_ratio=sample_ratio,
        )
        self.roots: list[Any] = []

    def handle(self, headers: dict[str, str], backend: OTelService | None) -> None:
        remote = propagation.extract(headers)
        root = self.client.start_trace(
            "tool", span_type=SpanType.TOOL, **(remote.start_args() if remote else {})
        )
        self.roots.append(root)
        call = self.client.start_span(
            "call backend", trace_id=root.trace_id, parent_id=root.span_id
        )
        outgoing: dict[str, str] = {}
        propagation.inject(call, outgoing)
        if backend is not None:
            backend.handle(outgoing)
        call.end()
        self.client.end_trace(root.trace_id)


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver()
    yield fake
    fake.close()


def received(receiver: FakeReceiver) -> dict[str, Any]:
    """Every span the receiver got, by name."""
    spans = [s for r in receiver.received for s in r.spans()]
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), names
    return {s.name: s for s in spans}


def run_chain(receiver: FakeReceiver, flags: str) -> tuple[ToolService, OTelService, OTelService]:
    always_follow_parent = ParentBased(TraceIdRatioBased(1.0))
    frontend = OTelService("frontend", receiver.url, always_follow_parent)
    backend = OTelService("backend", receiver.url, always_follow_parent)
    tool = ToolService(receiver.url)
    edge = {"traceparent": f"00-{EDGE_TRACE}-00f067aa0ba902b7-{flags}", "tracestate": EDGE_STATE}
    try:
        frontend.handle(edge, lambda headers: tool.handle(headers, backend))
        assert tool.client.flush(30)
    finally:
        tool.client.close()
        frontend.close()
        backend.close()
    return tool, frontend, backend


def test_one_trace_through_otel_lowtrace_otel(receiver: FakeReceiver) -> None:
    _, frontend, backend = run_chain(receiver, "01")
    spans = received(receiver)
    assert set(spans) == {"frontend", "tool", "call backend", "backend"}
    assert {s.trace_id.hex() for s in spans.values()} == {EDGE_TRACE}
    assert spans["frontend"].parent_span_id.hex() == "00f067aa0ba902b7"
    assert spans["tool"].parent_span_id == spans["frontend"].span_id
    assert spans["call backend"].parent_span_id == spans["tool"].span_id
    assert spans["backend"].parent_span_id == spans["call backend"].span_id
    # the edge's tracestate reached every hop and every exported span unchanged
    assert {s.trace_state for s in spans.values()} == {EDGE_STATE}
    assert backend.seen[0]["tracestate"] == EDGE_STATE
    # and the remote-parent flag: set on the spans whose parent is in another service
    assert spans["tool"].flags & 0x300 == 0x300
    assert spans["call backend"].flags & 0x300 == 0x100
    assert frontend.sampled == backend.sampled == [True]


def test_a_not_sampled_caller_is_followed_by_every_hop(receiver: FakeReceiver) -> None:
    tool, frontend, backend = run_chain(receiver, "00")
    assert receiver.received == []  # nobody recorded: no orphan spans, no stuck trace
    [root] = tool.roots
    assert isinstance(root, UnsampledSpan) and root.trace_id == EDGE_TRACE
    assert backend.seen[0]["traceparent"].endswith("-00")
    assert backend.seen[0]["tracestate"] == EDGE_STATE
    assert frontend.sampled == backend.sampled == [False]
    assert tool.client.stats().unsampled_traces == 1


def test_lowtrace_and_opentelemetry_decide_alike_from_the_trace_id(
    receiver: FakeReceiver,
) -> None:
    # The downstream OTel service samples on its own (not parent-based) at the same ratio.
    backend = OTelService("backend", receiver.url, TraceIdRatioBased(0.5))
    tool = ToolService(receiver.url, sample_ratio=0.5)
    try:
        for _ in range(60):
            tool.handle({}, backend)
        assert tool.client.flush(30)
    finally:
        tool.client.close()
        backend.close()
    ours = [root.is_recording for root in tool.roots]
    assert ours == backend.sampled
    assert 0 < sum(ours) < 60
    exported = [s for r in receiver.received for s in r.spans()]
    kept = {root.trace_id for root in tool.roots if root.is_recording}
    assert {s.trace_id.hex() for s in exported} == kept
    assert len(exported) == 3 * len(kept)  # tool, call backend, backend: whole traces only
    assert tool.client.stats().unsampled_traces == 60 - len(kept)
