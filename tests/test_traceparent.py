"""W3C Trace Context helpers: parse, format, inject, extract, and the client's continuation."""

from __future__ import annotations

import email.message
import http.client
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowtrace import InvalidArgumentError, TracingClient
from lowtrace._traceparent import (
    TraceParent,
    extract,
    extract_tracestate,
    format_traceparent,
    format_tracestate,
    inject,
    parse_traceparent,
    parse_traceparent_fields,
    parse_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"

trace_ids = st.binary(min_size=16, max_size=16).map(bytes.hex).filter(lambda s: s != "0" * 32)
span_ids = st.binary(min_size=8, max_size=8).map(bytes.hex).filter(lambda s: s != "0" * 16)


# -- parsing ------------------------------------------------------------------------------------


def test_parses_the_w3c_example() -> None:
    assert parse_traceparent(VALID) == (TRACE, SPAN)
    fields = parse_traceparent_fields(VALID)
    assert fields == TraceParent("00", TRACE, SPAN, 1)
    assert fields.sampled
    assert not parse_traceparent_fields(f"00-{TRACE}-{SPAN}-00").sampled


@pytest.mark.parametrize(
    "value",
    [
        f"  {VALID}\t",  # optional whitespace around the header value
        VALID.upper().replace("X", "x"),  # upper-case hex is tolerated and lower-cased
        f"01-{TRACE}-{SPAN}-01-what-the-future-holds",  # a later version may add fields
        f"cc-{TRACE}-{SPAN}-09",  # unknown flags and version
    ],
)
def test_accepts_tolerated_variants(value: str) -> None:
    assert parse_traceparent(value) == (TRACE, SPAN)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE[:-1]}-{SPAN}-01",  # short trace id
        f"00-{TRACE}-{SPAN}0-01",  # long span id
        f"00-{TRACE}-{SPAN}-1",  # one-digit flags
        f"00-{TRACE[:-1]}g-{SPAN}-01",  # not hex
        f"00_{TRACE}_{SPAN}_01",  # wrong separators
        f"0-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01\n",  # no line breaks in headers
        f"00-{TRACE}-{SPAN}-\u0660\u0661",  # non-ASCII digits
        "x" * 10_000,
    ],
)
def test_rejects_invalid_values(value: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_traceparent(value)


def test_rejects_non_strings() -> None:
    with pytest.raises(InvalidArgumentError):
        parse_traceparent(b"00-" + TRACE.encode())  # type: ignore[arg-type]


@given(trace_ids, span_ids, st.booleans())
def test_format_parse_round_trip(trace_id: str, span_id: str, sampled: bool) -> None:
    value = format_traceparent(trace_id, span_id, sampled)
    fields = parse_traceparent_fields(value)
    assert (fields.trace_id, fields.span_id, fields.sampled) == (trace_id, span_id, sampled)
    assert len(value) == 55


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [("0" * 32, SPAN), (TRACE, "0" * 16), (TRACE.upper(), SPAN), (TRACE, SPAN[:-1]), (1, SPAN)],
)
def test_format_rejects_bad_ids(trace_id: object, span_id: object) -> None:
    with pytest.raises(InvalidArgumentError):
        format_traceparent(trace_id, span_id)  # type: ignore[arg-type]


# -- tracestate ---------------------------------------------------------------------------------


def test_tracestate_parses_and_formats() -> None:
    value = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE ,,tenant@vendor=a b"
    entries = parse_tracestate(value)
    assert entries == [("rojo", SPAN), ("congo", "t61rcWkgMzE"), ("tenant@vendor", "a b")]
    assert format_tracestate(entries) == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@vendor=a b"
    assert format_tracestate({"k": "v"}) == "k=v"


@pytest.mark.parametrize(
    "value",
    [
        "Rojo=1",  # keys are lower case
        "rojo=1,rojo=2",  # duplicate key
        "rojo",  # no value
        "rojo=a,b",  # a member without '='
        "rojo=a=b",  # '=' inside a value
        "1abc=x",  # a simple key starts with a letter
        "k=" + "v" * 257,  # value too long
        ",".join(f"k{i}=v" for i in range(33)),  # more than 32 entries
        "t@V=x",  # system id is lower case
        "k=\x7f",
    ],
)
def test_invalid_tracestate_is_discarded_whole(value: str) -> None:
    assert parse_tracestate(value) == []


def test_format_tracestate_rejects_invalid_entries() -> None:
    with pytest.raises(InvalidArgumentError):
        format_tracestate([("k", "v"), ("k", "w")])
    with pytest.raises(InvalidArgumentError):
        format_tracestate({"K": "v"})
    with pytest.raises(InvalidArgumentError):
        format_tracestate({"k": "a,b"})


# -- inject / extract ---------------------------------------------------------------------------


def test_inject_and_extract_round_trip(client: TracingClient) -> None:
    root = client.start_trace("agent")
    headers: dict[str, str] = {}
    inject(root, headers, tracestate="vendor=abc")
    assert headers == {"traceparent": root.traceparent, "tracestate": "vendor=abc"}
    assert extract(headers) == root.traceparent
    assert extract_tracestate(headers) == "vendor=abc"
    client.end_trace(root.trace_id)


def test_inject_skips_invalid_tracestate_and_disabled_spans() -> None:
    with TracingClient("memory://") as client:
        root = client.start_trace("agent")
        headers: dict[str, str] = {}
        inject(root, headers, tracestate="BAD KEY=1")
        assert set(headers) == {"traceparent"}
        inject(root, headers, tracestate=[("ok", "1"), ("ok", "2")])  # duplicate: left out
        assert set(headers) == {"traceparent"}
        inject(root, headers, tracestate={"ok": "1"})
        assert headers["tracestate"] == "ok=1"
        client.end_trace(root.trace_id)
    with TracingClient("memory://", enabled=False) as disabled:
        noop = disabled.start_trace("agent")
        headers = {}
        inject(noop, headers, tracestate="ok=1")
        assert headers == {}  # a span that records nothing propagates nothing
    inject(object(), headers)
    assert headers == {}


def test_extract_any_case_and_header_containers() -> None:
    assert extract({"TraceParent": f" {VALID.upper()} "}) == VALID
    assert extract([("traceparent", VALID)]) == VALID
    assert extract({"HTTP_TRACEPARENT": VALID, "HTTP_TRACESTATE": "a=1"}) == VALID  # WSGI
    assert extract_tracestate({"HTTP_TRACESTATE": "a=1"}) == "a=1"
    assert extract({"traceparent": [VALID]}) == VALID  # multi-valued mappings
    assert extract({"traceparent": VALID.encode()}) == VALID


def test_extract_from_http_message_with_repeated_headers() -> None:
    raw = f"traceparent: {VALID}\r\ntracestate: a=1\r\ntracestate: b=2\r\n\r\n".encode("latin-1")
    message = http.client.parse_headers(io.BytesIO(raw))
    assert extract(message) == VALID
    assert extract_tracestate(message) == "a=1,b=2"
    conflicting = email.message.Message()
    conflicting["traceparent"] = VALID
    conflicting["traceparent"] = f"00-{TRACE}-{'1' * 16}-01"
    assert extract(conflicting) is None  # two different parents: ignore both


@pytest.mark.parametrize(
    "headers",
    [{}, {"traceparent": "garbage"}, {"traceparent": f"ff-{TRACE}-{SPAN}-01"}, {"other": VALID}],
)
def test_extract_returns_none_without_a_valid_header(headers: dict[str, str]) -> None:
    assert extract(headers) is None
    assert extract_tracestate(headers) is None


# -- the client's continuation --------------------------------------------------------------------


def test_start_trace_continues_an_extracted_context(client: TracingClient) -> None:
    value = extract({"Traceparent": VALID.upper()})
    assert value is not None
    root = client.start_trace("tool-service", traceparent=value)
    assert (root.trace_id, root.parent_id) == (TRACE, SPAN)
    child = client.start_span("lookup", trace_id=root.trace_id, parent_id=root.span_id)
    assert child.traceparent == f"00-{TRACE}-{child.span_id}-01"
    child.end()
    trace = client.end_trace(root.trace_id)
    assert trace is not None
    assert trace.root is not None and trace.root.parent_id == SPAN
    assert [s.trace_id for s in trace.spans] == [TRACE, TRACE]


def test_invalid_traceparent_raises_or_is_counted(
    client: TracingClient, lenient: TracingClient
) -> None:
    with pytest.raises(InvalidArgumentError):
        client.start_trace("svc", traceparent=f"00-{'0' * 32}-{SPAN}-01")
    span = lenient.start_trace("svc", traceparent="nonsense")
    assert not span.is_recording
    assert lenient.stats().violations.get("InvalidArgumentError") == 1
