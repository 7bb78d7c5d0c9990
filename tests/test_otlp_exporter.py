"""OTLPExporter against a scripted local OTLP/HTTP receiver: delivery, retries, config."""

from __future__ import annotations

import gzip
import http.server
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import attrs
import orjson
import pytest

from lowtrace import (
    InvalidArgumentError,
    MissingExtraError,
    PipelineConfig,
    SpanType,
    Trace,
    TracingClient,
)

pb = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="opentelemetry-proto is missing: the OTLP exporter tests need lowtrace[otlp]",
)

from lowtrace._otlp import encode  # noqa: E402
from lowtrace.exporters.otlp import (  # noqa: E402
    OTLPExporter,
    OTLPExportError,
)

pytestmark = pytest.mark.timeout(60)


@attrs.define
class Received:
    """One request the fake receiver got."""

    path: str
    headers: dict[str, str]
    raw: bytes
    at: float
    peer: tuple[str, int]

    @property
    def body(self) -> bytes:
        return gzip.decompress(self.raw) if self.headers.get("content-encoding") else self.raw

    def request(self) -> Any:
        message = pb.ExportTraceServiceRequest()
        message.ParseFromString(self.body)
        return message

    def spans(self) -> list[Any]:
        return [
            s for rs in self.request().resource_spans for ss in rs.scope_spans for s in ss.spans
        ]


class FakeReceiver:
    """A real HTTP/1.1 server on 127.0.0.1 answering from a script (default: 200)."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, dict[str, str], bytes, float]] = deque()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            raw,
                            time.monotonic(),
                            self.client_address,
                        )
                    )
                    step = receiver.script.popleft() if receiver.script else (200, {}, b"", 0.0)
                status, headers, body, delay = step
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base + "/v1/traces"

    def then(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        delay: float = 0,
    ) -> FakeReceiver:
        self.script.append((status, headers or {}, body, delay))
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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


def make_traces(n: int = 1, payload: str = "") -> list[Trace]:
    """``n`` finished traces of three spans each (agent > llm, tool)."""
    out: list[Trace] = []
    with TracingClient("memory://") as client:
        for i in range(n):
            root = client.start_trace(
                f"agent-{i}", inputs={"q": f"question {i}", "pad": payload}, tags={"run": str(i)}
            )
            llm = client.start_span(
                "llm",
                trace_id=root.trace_id,
                parent_id=root.span_id,
                span_type=SpanType.CHAT_MODEL,
                attributes={"model": "gpt-test"},
            )
            llm.set_token_usage(input_tokens=10, output_tokens=5)
            llm.end(outputs="an answer")
            tool = client.start_span(
                "tool", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.TOOL
            )
            tool.end(outputs={"ok": True})
            trace = client.end_trace(root.trace_id, outputs={"answer": i})
            assert trace is not None
            out.append(trace)
    return out


# -- delivery and encoding ------------------------------------------------------------------------


def test_delivers_a_valid_protobuf_request(receiver: FakeReceiver) -> None:
    traces = make_traces(2)
    exporter = OTLPExporter(receiver.url, service_name="svc-a")
    exporter.export(traces)
    [got] = receiver.received
    assert got.path == "/v1/traces"
    assert got.headers["content-type"] == "application/x-protobuf"
    assert "content-encoding" not in got.headers
    request = got.request()
    resource = {
        kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "svc-a"
    assert request.resource_spans[0].scope_spans[0].scope.name == "lowtrace"
    spans = got.spans()
    expected = [s for t in traces for s in t.spans]
    assert [s.span_id.hex() for s in spans] == [s.span_id for s in expected]
    for out, span in zip(spans, expected, strict=True):
        assert out.trace_id.hex() == span.trace_id
        assert out.parent_span_id.hex() == (span.parent_id or "")
        assert (out.start_time_unix_nano, out.end_time_unix_nano) == (
            span.start_time_ns,
            span.end_time_ns,
        )
        assert out.name == span.name
    stats = exporter.stats()
    assert (stats.requests, stats.exported_traces, stats.exported_spans) == (1, 2, 6)
    assert stats.bytes_sent == len(got.raw)


def test_gzip_body_decodes_to_a_valid_request(receiver: FakeReceiver) -> None:
    exporter = OTLPExporter(receiver.url, compression="gzip")
    exporter.export(make_traces(1, payload="x" * 10_000))
    [got] = receiver.received
    assert got.headers["content-encoding"] == "gzip"
    assert len(got.raw) < 2_000  # the padding compressed away
    assert len(got.spans()) == 3


def test_json_encoding(receiver: FakeReceiver) -> None:
    [trace] = make_traces(1)
    OTLPExporter(receiver.url, encoding="json").export([trace])
    [got] = receiver.received
    assert got.headers["content-type"] == "application/json"
    doc = orjson.loads(got.body)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert spans[0]["traceId"] == trace.info.trace_id  # hex, not base64
    assert spans[1]["parentSpanId"] == trace.spans[0].span_id
    assert spans[0]["startTimeUnixNano"] == str(trace.spans[0].start_time_ns)
    tokens = {a["key"]: a["value"] for a in spans[1]["attributes"]}
    assert tokens["llm.token_count.prompt"] == {"intValue": "10"}


def test_connection_is_kept_alive(receiver: FakeReceiver) -> None:
    exporter = OTLPExporter(receiver.url)
    for _ in range(3):
        exporter.export(make_traces(1))
    assert len({r.peer for r in receiver.received}) == 1


# -- bounded shutdown -----------------------------------------------------------------------------


def test_shutdown_interrupts_a_retry_after_wait(receiver: FakeReceiver) -> None:
    receiver.then(429, {"Retry-After": "30"})
    exporter = OTLPExporter(receiver.url, timeout=60)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            exporter.export(make_traces(1))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    while not receiver.received:
        time.sleep(0.01)
    started = time.monotonic()
    exporter.shutdown()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 1
    assert isinstance(errors[0], OTLPExportError)
    with pytest.raises(OTLPExportError, match="shut down"):
        exporter.export(make_traces(1))


def test_client_close_is_bounded_by_a_hanging_receiver(receiver: FakeReceiver) -> None:
    receiver.then(200, delay=20)
    config = PipelineConfig(export_delay_s=0, shutdown_timeout_s=1)
    exporter = OTLPExporter(receiver.url, timeout=30)
    client = TracingClient("memory://", exporters=[exporter], pipeline=config)
    root = client.start_trace("agent")
    client.end_trace(root.trace_id)
    while not receiver.received:
        time.sleep(0.01)
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 3


# -- configuration --------------------------------------------------------------------------------


def test_environment_configures_endpoint_headers_and_compression(
    receiver: FakeReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base + "/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-project-name=my%20project, api-key=a=b")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=secret")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    exporter = OTLPExporter()
    assert exporter.endpoint == receiver.url
    exporter.export(make_traces(1))
    [got] = receiver.received
    assert got.path == "/v1/traces"
    assert got.headers["x-project-name"] == "my project"
    assert got.headers["api-key"] == "secret"
    assert got.headers["content-encoding"] == "gzip"
    attributes = got.request().resource_spans[0].resource.attributes
    assert {kv.key: kv.value.string_value for kv in attributes}["service.name"] == "from-env"


def test_tls_files_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")
    assert OTLPExporter("http://127.0.0.1:1/v1/traces").settings.certificate == (
        "/nonexistent/ca.pem"
    )  # plain http: the files are not needed
    with pytest.raises(InvalidArgumentError, match="TLS"):
        OTLPExporter("https://127.0.0.1:1/v1/traces")


def test_the_body_headers_cannot_be_overridden(receiver: FakeReceiver) -> None:
    headers = {"Content-Type": "text/plain", "content-encoding": "br", "x-extra": "1"}
    OTLPExporter(receiver.url, headers=headers, compression="gzip").export(make_traces(1))
    [got] = receiver.received
    assert got.headers["content-type"] == "application/x-protobuf"
    assert got.headers["content-encoding"] == "gzip"
    assert got.headers["x-extra"] == "1"
    assert got.headers["user-agent"].startswith("lowtrace-otlp/")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_its_own_connection(receiver: FakeReceiver) -> None:
    exporter = OTLPExporter(receiver.url)
    exporter.export(make_traces(1))
    traces = make_traces(1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            exporter.export(traces)
            code = 0 if exporter.stats().exported_traces == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    exporter.export(make_traces(1))  # the parent's connection still works
    parent_first, child, parent_again = receiver.received
    assert child.peer != parent_first.peer
    assert parent_again.peer == parent_first.peer
    assert exporter.stats().exported_traces == 2


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.proto.collector.trace.v1", None)
    encode.load_proto.cache_clear()
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'lowtrace\[otlp\]'"):
            OTLPExporter("http://127.0.0.1:1/v1/traces")
        OTLPExporter("http://127.0.0.1:1/v1/traces", encoding="json")  # needs no protobuf
    finally:
        encode.load_proto.cache_clear()


def test_exporters_package_exports_the_exporter() -> None:
    import lowtrace.exporters

    assert lowtrace.exporters.OTLPExporter is OTLPExporter
