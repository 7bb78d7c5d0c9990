"""Hostile values on the way out: whatever a trace holds, a batch is encoded, in both OTLP
encodings, into a request a receiver can parse; and a receiver's odd answers never raise
anything but the exporter's own errors."""

from __future__ import annotations

import functools
import json
import socket
import threading
from typing import Any

import orjson
import pytest

from lowtrace import SpanEvent, SpanRecord, SpanStatus, SpanType, Trace, TraceInfo
from lowtrace._otlp.encode import load_proto, split_encode
from lowtrace._otlp.transport import parse_retry_after

ROOT = "b7ad6b7169203331"


def trace(number: int, name: str = "step", **fields: Any) -> Trace:
    """A one-span trace (its own trace id) with the given span fields."""
    trace_id = f"{number:032x}"
    span = SpanRecord(
        trace_id=trace_id,
        span_id=ROOT,
        parent_id=None,
        name=name,
        span_type=fields.pop("span_type", SpanType.CHAIN),
        start_time_ns=1_700_000_000_000_000_000,
        end_time_ns=1_700_000_001_000_000_000,
        **fields,
    )
    info = TraceInfo(
        trace_id=trace_id,
        name=name,
        status=SpanStatus.OK,
        status_message=None,
        start_time_ns=span.start_time_ns,
        end_time_ns=span.end_time_ns,
        tags={},
        span_count=1,
    )
    return Trace(info, [span])


def parsed_spans(body: bytes, encoding: str) -> list[dict[str, Any]]:
    """The spans of a request as a receiver reads them (protobuf: the stock parser)."""
    if encoding == "json":
        doc = orjson.loads(body)
    else:
        from google.protobuf.json_format import MessageToDict

        request = load_proto().service.ExportTraceServiceRequest()
        request.ParseFromString(body)  # Python receivers (MLflow, Phoenix) parse this way
        doc = MessageToDict(request)
    return [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def encode_all(traces: list[Trace], encoding: str, receiver: str) -> list[dict[str, Any]]:
    parts = split_encode(traces, {"service.name": "svc"}, encoding, 4_000_000, receiver)
    return [span for _, body in parts for span in parsed_spans(body, encoding)]


ENCODINGS = pytest.mark.parametrize("encoding", ["json", "protobuf"])
RECEIVERS = pytest.mark.parametrize("receiver", ["any", "mlflow", "openinference"])


@ENCODINGS
@RECEIVERS
def test_lone_surrogates_do_not_lose_the_batch(encoding: str, receiver: str) -> None:
    good = trace(1, "fine", attributes={"k": "v"})
    bad = trace(
        2,
        "bad\ud800name",
        attributes={"key\udc00": "value\ud83d", "list": ["a\udfff"]},
        events=(SpanEvent("ev\ud800", 1_700_000_000_500_000_000, {"e": "x\udc00"}),),
        status=SpanStatus.ERROR,
        status_message="boom\ud800",
    )
    spans = encode_all([good, bad], encoding, receiver)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"fine", "bad\ufffdname"}  # replaced, never dropped
    assert {"key": "k", "value": {"stringValue": "v"}} in by_name["fine"]["attributes"]
    bad_attrs = {a["key"]: a["value"] for a in by_name["bad\ufffdname"]["attributes"]}
    assert bad_attrs["key\ufffd"] == {"stringValue": "value\ufffd"}
    assert by_name["bad\ufffdname"]["events"][0]["name"] == "ev\ufffd"


def nested(depth: int) -> Any:
    return functools.reduce(lambda inner, _: {"a": [inner]}, range(depth // 2), 1)


@ENCODINGS
@RECEIVERS
def test_deeply_nested_values_still_parse_at_the_receiver(encoding: str, receiver: str) -> None:
    traces = [
        trace(1, "fine", inputs="hello"),
        trace(2, "deep", inputs=nested(150), outputs=nested(150), span_type=SpanType.CHAT_MODEL),
    ]
    spans = encode_all(traces, encoding, receiver)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"fine", "deep"}
    deep_attrs = {a["key"]: a["value"] for a in by_name["deep"]["attributes"]}
    if receiver != "openinference":  # too deep for a typed value: the JSON text instead
        assert orjson.loads(deep_attrs["mlflow.spanInputs"]["stringValue"]) == nested(150)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        (" 7 ", 7.0),
        ("\xb2", None),  # SUPERSCRIPT TWO: str.isdigit() says yes, float() says no
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: not an HTTP delay-seconds either
        ("-1", None),
        ("1.5", None),
        ("soon", None),
    ],
)
def test_retry_after_values(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


@ENCODINGS
def test_a_resource_from_undecodable_environment_bytes_still_encodes(encoding: str) -> None:
    # os.environ decodes bytes that are not UTF-8 to lone surrogates (surrogateescape).
    resource = {"service.name": b"caf\xe9".decode("utf-8", "surrogateescape")}
    [(_, body)] = split_encode([trace(1)], resource, encoding, 4_000_000)
    assert [s["name"] for s in parsed_spans(body, encoding)] == ["step"]


class TricklingReceiver:
    """A loopback receiver that sends its answer a byte at a time, each byte well within a
    socket timeout: a slow or hostile endpoint. ``part`` is what trickles: the status line
    and headers, or the body after a complete 200 head."""

    def __init__(self, part: str) -> None:
        self.part = part
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/v1/traces"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
            head += b"Content-Length: 100000\r\n\r\n"
            if self.part == "body":
                conn.sendall(head)
            trickle = head if self.part == "head" else b"\x00" * 100000
            for byte in trickle:
                if self._stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(10)


@pytest.mark.timeout(30)
def test_a_trickled_head_cannot_hold_an_export_past_its_timeout() -> None:
    from lowtrace.exporters.otlp import OTLPExporter, OTLPExportError

    receiver = TricklingReceiver("head")
    exporter = OTLPExporter(receiver.url, timeout=1)
    try:
        with pytest.raises(OTLPExportError):
            exporter.export([trace(1)])
        assert exporter.stats().exported_traces == 0
    finally:
        exporter.shutdown()
        receiver.close()


@pytest.mark.timeout(30)
def test_a_200_with_a_trickled_body_is_delivered_at_the_timeout() -> None:
    from lowtrace.exporters.otlp import OTLPExporter

    receiver = TricklingReceiver("body")
    exporter = OTLPExporter(receiver.url, timeout=1)
    try:
        exporter.export([trace(1)])  # the 200 said it all: the body is only details
        assert exporter.stats().exported_traces == 1
    finally:
        exporter.shutdown()
        receiver.close()


@ENCODINGS
@RECEIVERS
def test_model_parameters_past_64_bits_do_not_lose_the_batch(encoding: str, receiver: str) -> None:
    attributes = {"model": "m", "max_tokens": 2**64, "invocation_params": {"seed": -(2**70)}}
    traces = [
        trace(1, "fine"),
        trace(2, "chat", span_type=SpanType.CHAT_MODEL, attributes=attributes),
    ]
    spans = encode_all(traces, encoding, receiver)
    chat = {
        a["key"]: a["value"] for a in next(s for s in spans if s["name"] == "chat")["attributes"]
    }
    assert chat["max_tokens"] == {"stringValue": str(2**64)}
    params = json.loads(chat["llm.invocation_parameters"]["stringValue"])
    assert params == {"seed": -(2**70), "model": "m", "max_tokens": 2**64}
