"""``lowtrace.propagation``: inject/extract with tracestate, and continuing a remote trace
through the client and the fluent API."""

from __future__ import annotations

from http.client import HTTPMessage

import pytest

import lowtrace
from lowtrace import InvalidArgumentError, SpanType, TracingClient, propagation
from lowtrace._traceparent import TRACESTATE_ATTRIBUTE
from lowtrace.testing import RecordingExporter

pytestmark = pytest.mark.timeout(60)

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
INCOMING = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "congo=t61rcWkgMzE,rojo=1"}


def test_extract_reads_traceparent_and_tracestate() -> None:
    remote = propagation.extract(INCOMING)
    assert remote is not None
    assert (remote.trace_id, remote.span_id, remote.sampled) == (TRACE, PARENT, True)
    assert remote.tracestate == "congo=t61rcWkgMzE,rojo=1"
    assert remote.start_args() == {
        "traceparent": INCOMING["traceparent"],
        "tracestate": "congo=t61rcWkgMzE,rojo=1",
    }


def test_extract_from_other_header_containers() -> None:
    message = HTTPMessage()
    message["TraceParent"] = INCOMING["traceparent"]
    message["TraceState"] = "a=1"
    message["tracestate"] = "b=2"  # repeated headers are one list
    remote = propagation.extract(message)
    assert remote is not None and remote.tracestate == "a=1,b=2"
    environ = {"HTTP_TRACEPARENT": INCOMING["traceparent"].replace("-01", "-00")}
    remote = propagation.extract(environ)
    assert remote is not None and not remote.sampled and remote.tracestate is None


def test_extract_from_raw_asgi_headers() -> None:
    # An ASGI scope's "headers": (name, value) pairs of bytes.
    scope_headers = [
        (b"host", b"tools.internal"),
        (b"traceparent", INCOMING["traceparent"].encode()),
        (b"tracestate", b"a=1"),
    ]
    remote = propagation.extract(scope_headers)
    assert remote is not None and (remote.trace_id, remote.tracestate) == (TRACE, "a=1")
    multi = {"traceparent": [INCOMING["traceparent"].encode()], "tracestate": [b"a=1", "b=2"]}
    remote = propagation.extract(multi)
    assert remote is not None and remote.tracestate == "a=1,b=2"


@pytest.mark.parametrize("headers", [INCOMING["traceparent"], None, 42, [("only-one",)]])
def test_extract_from_something_that_is_not_headers_raises_invalid_argument(
    headers: object,
) -> None:
    with pytest.raises(InvalidArgumentError, match="headers"):
        propagation.extract(headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "headers", [{}, {"traceparent": "junk"}, {"tracestate": "a=1"}, {"traceparent": ""}]
)
def test_extract_without_a_valid_traceparent_is_none(headers: dict[str, str]) -> None:
    assert propagation.extract(headers) is None


def test_an_invalid_tracestate_is_dropped_but_the_traceparent_counts() -> None:
    remote = propagation.extract({**INCOMING, "tracestate": "BAD KEY=1"})
    assert remote is not None and remote.tracestate is None


def test_tracestate_travels_to_every_handle_the_next_hop_and_the_trace() -> None:
    with TracingClient("memory://") as client:
        remote = propagation.extract(INCOMING)
        assert remote is not None
        root = client.start_trace("service", **remote.start_args())
        assert (root.trace_id, root.parent_id) == (TRACE, PARENT)
        child = client.start_span("call", trace_id=root.trace_id, parent_id=root.span_id)
        assert root.tracestate == child.tracestate == "congo=t61rcWkgMzE,rojo=1"
        outgoing: dict[str, str] = {}
        propagation.inject(child, outgoing)
        assert outgoing == {
            "traceparent": f"00-{TRACE}-{child.span_id}-01",
            "tracestate": "congo=t61rcWkgMzE,rojo=1",
        }
        child.end()
        trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.root is not None
    assert trace.root.attributes[TRACESTATE_ATTRIBUTE] == "congo=t61rcWkgMzE,rojo=1"


def test_a_trace_without_tracestate_injects_only_traceparent() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("agent")
        headers: dict[str, str] = {}
        propagation.inject(root, headers)
        assert headers == {"traceparent": root.traceparent} and root.tracestate is None
        trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.root is not None
    assert TRACESTATE_ATTRIBUTE not in trace.root.attributes


def test_a_new_trace_may_carry_a_tracestate_of_its_own() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("agent", tracestate="agent=1")
        headers: dict[str, str] = {}
        propagation.inject(root, headers)
        assert headers["tracestate"] == "agent=1" and root.parent_id is None


def test_invalid_tracestate_argument() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("a", traceparent=INCOMING["traceparent"], tracestate="x y=1")
        assert root.tracestate is None  # discarded whole, as the W3C spec asks
        with pytest.raises(InvalidArgumentError, match="tracestate"):
            client.start_trace("b", tracestate=7)  # type: ignore[arg-type]


def test_disabled_handles_inject_nothing() -> None:
    with TracingClient("memory://", enabled=False) as client:
        headers: dict[str, str] = {}
        propagation.inject(client.start_trace("a"), headers)
        assert headers == {}


def test_fluent_start_span_continues_a_remote_trace() -> None:
    recorder = RecordingExporter()
    with TracingClient("memory://", exporters=[recorder]) as client:
        with lowtrace.start_span("local work", client=client):
            # a remote context wins over the current span: a new local trace under the caller
            with lowtrace.start_span(
                "handle request",
                span_type=SpanType.AGENT,
                client=client,
                **propagation.extract(INCOMING).start_args(),  # type: ignore[union-attr]
            ) as span:
                assert (span.trace_id, span.parent_id) == (TRACE, PARENT)
                with lowtrace.start_span("step") as step:
                    assert step.parent_id == span.span_id
                    headers: dict[str, str] = {}
                    propagation.inject(step, headers)
                    assert headers["tracestate"] == "congo=t61rcWkgMzE,rojo=1"
        traces = recorder.wait_for(2)
    remote = next(t for t in traces if t.info.trace_id == TRACE)
    assert [s.name for s in remote.spans] == ["handle request", "step"]


def test_fluent_start_span_with_a_not_sampled_caller_records_nothing() -> None:
    recorder = RecordingExporter()
    with TracingClient("memory://", exporters=[recorder]) as client:
        with lowtrace.start_span(
            "handle", client=client, traceparent=f"00-{TRACE}-{PARENT}-00"
        ) as span:
            assert not span.is_recording and span.traceparent.endswith("-00")
        assert client.flush(5)
        assert client.stats().unsampled_traces == 1
    assert recorder.traces == []


def test_inject_into_forwarded_headers_replaces_the_incoming_ones() -> None:
    # A service passing its request's headers on (Flask spells them "Traceparent").
    incoming = {"Traceparent": INCOMING["traceparent"], "TraceState": "old=1", "X-Req": "7"}
    with TracingClient("memory://") as client:
        span = client.start_trace("proxy", **propagation.extract(incoming).start_args())  # type: ignore[union-attr]
        outgoing = dict(incoming)
        propagation.inject(span, outgoing)
        span.end()
    assert outgoing == {
        "X-Req": "7",
        "traceparent": span.traceparent,
        "tracestate": "old=1",
    }
    remote = propagation.extract(outgoing)  # the next hop continues the trace
    assert remote is not None and remote.span_id == span.span_id


@pytest.mark.parametrize("header", ["garbage-from-a-client", "", f"ff-{TRACE}-{PARENT}-01"])
def test_fluent_start_span_with_an_invalid_traceparent_starts_a_new_trace(header: str) -> None:
    # W3C: a caller context that does not parse restarts the trace; it must not turn
    # tracing off for the request.
    recorder = RecordingExporter()
    with TracingClient("memory://", exporters=[recorder]) as client:
        with lowtrace.start_span(
            "handler", client=client, traceparent=header, tracestate="a=1"
        ) as span:
            assert span.is_recording
            assert span.parent_id is None and span.trace_id != TRACE
            assert span.tracestate is None  # it belonged to the context that was dropped
        client.flush(10)
        assert [t.info.name for t in recorder.traces] == ["handler"]
        assert client.stats().violations == {}
