"""End to end: lowtrace's OTLP exporter against a real Phoenix server on 127.0.0.1.

The fixture starts ``phoenix serve`` (Arize Phoenix, an OTLP/HTTP receiver with its own
store) on free loopback ports and stops it afterwards; spans are read back through
Phoenix's own client (``arize-phoenix-client``). Phoenix is found in this order:
``LOWTRACE_PHOENIX_PYTHON`` (a Python that has ``arize-phoenix``), ``.venv-phoenix/`` at
the repository root, or this interpreter. Keeping the server in its own virtualenv is
recommended: with the server package installed, importing ``phoenix.client`` (and so the
client's pytest plugin, in every test run) costs seconds.

When Phoenix or its client is missing these tests are reported as SKIPPED with the reason
(pytest ``-ra`` prints it); set ``LOWTRACE_REQUIRE_RECEIVER=1`` to make that a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from lowtrace import ExportRejectedError, SpanStatus, SpanType, Trace, TracingClient
from lowtrace.exporters.otlp import OTLPExporter
from tests.test_otlp_propagation import ToolService, run_agent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]


def _unavailable(reason: str) -> None:
    message = f"real OTLP receiver tests did NOT run: {reason}"
    if os.environ.get("LOWTRACE_REQUIRE_RECEIVER", "").strip() not in ("", "0"):
        pytest.fail(message)
    pytest.skip(message)


# Phoenix's gRPC receiver always listens on every interface ("[::]:port"); this launcher
# pins it to loopback before starting ``phoenix serve``, so nothing here leaves 127.0.0.1.
_LAUNCHER = """
import sys
import grpc.aio._server as server

def _loopback(add):
    def patched(self, address, *args):
        return add(self, address.replace("[::]", "127.0.0.1"), *args)
    return patched

server.Server.add_insecure_port = _loopback(server.Server.add_insecure_port)
server.Server.add_secure_port = _loopback(server.Server.add_secure_port)
from phoenix.server.main import main
sys.argv = ["phoenix", "serve"]
sys.exit(main())
"""


def _phoenix_python() -> str | None:
    explicit = os.environ.get("LOWTRACE_PHOENIX_PYTHON", "").strip()
    if explicit:
        return explicit
    local = ROOT / ".venv-phoenix" / "bin" / "python"
    if local.exists():
        return str(local)
    if importlib.util.find_spec("phoenix.server") is not None:
        return sys.executable
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Phoenix server started for this module."""
    if importlib.util.find_spec("phoenix.client") is None:
        _unavailable("arize-phoenix-client is not installed (pip install arize-phoenix-client)")
    python = _phoenix_python()
    if python is None:
        _unavailable("Phoenix is not installed (pip install arize-phoenix, see module docstring)")
    assert python is not None
    workdir = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    env.update(
        PHOENIX_WORKING_DIR=str(workdir),
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(_free_port()),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    log_path = workdir / "phoenix.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [python, "-c", _LAUNCHER], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"Phoenix exited with {process.returncode} at startup:\n{tail}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail("Phoenix did not answer /healthz within 120 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def read_spans(base: str, project: str, trace_ids: list[str], expected: int) -> list[Any]:
    """Spans of these traces as Phoenix's client returns them, once all have arrived."""
    from phoenix.client import Client

    client = Client(base_url=base)
    deadline = time.monotonic() + 60
    spans: list[Any] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the project appears with the first span
            spans = client.spans.get_spans(
                project_identifier=project, trace_ids=trace_ids, limit=expected + 100
            )
        if len(spans) >= expected:
            return spans
        time.sleep(0.25)
    raise AssertionError(f"Phoenix returned {len(spans)} of {expected} span(s) for {project}")


def to_ns(text: str) -> int:
    when = datetime.fromisoformat(text)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1_000


def build_trace(client: TracingClient) -> Trace:
    """An agent run: retrieval, a chat model call with usage, a failing tool."""
    root = client.start_trace(
        "support-agent",
        span_type=SpanType.AGENT,
        inputs={"question": "Where is my order?"},
        attributes={"customer_tier": "gold", "attempt": 1},
        tags={"env": "e2e", "session_id": "sess-42"},
    )
    tid = root.trace_id
    retrieve = client.start_span(
        "search-orders",
        trace_id=tid,
        parent_id=root.span_id,
        span_type=SpanType.RETRIEVER,
        inputs="order 1234",
    )
    retrieve.end(
        outputs=[
            {
                "page_content": "Order 1234 shipped on May 2",
                "metadata": {"source": "orders"},
                "id": "1234",
                "score": 0.9,
            },
            "Orders ship within two days",
        ]
    )
    llm = client.start_span(
        "chat",
        trace_id=tid,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
        inputs={"messages": [{"role": "user", "content": "Where is my order?"}]},
        attributes={"model": "gpt-4o-mini", "temperature": 0.2, "stop": ["\n", "END"]},
    )
    llm.set_token_usage(input_tokens=31, output_tokens=9, total_tokens=40)
    llm.add_event("first_token", {"latency_ms": 120})
    llm.end(outputs={"content": "It has shipped."})
    tool = client.start_span("notify", trace_id=tid, parent_id=root.span_id, span_type="TOOL")
    try:
        raise TimeoutError("sms gateway timed out")
    except TimeoutError as exc:
        tool.record_exception(exc)
    tool.end()
    trace = client.end_trace(tid, outputs="It has shipped.")
    assert trace is not None
    return trace


def test_spans_read_back_from_phoenix_intact(phoenix: str) -> None:
    project = f"lowtrace-{uuid.uuid4().hex[:8]}"
    exporter = OTLPExporter(
        f"{phoenix}/v1/traces",
        headers={"x-project-name": project},
        compression="gzip",
        receiver="openinference",  # the values once, as OpenInference text
    )
    with TracingClient("memory://", exporters=[exporter]) as client:
        trace = build_trace(client)
        assert client.flush(30)
    assert exporter.stats().exported_spans == 4 and exporter.stats().rejected_spans == 0
    got = {s["name"]: s for s in read_spans(phoenix, project, [trace.info.trace_id], 4)}
    assert set(got) == {"support-agent", "search-orders", "chat", "notify"}
    for span in trace.spans:
        out = got[span.name]
        assert out["context"] == {"trace_id": span.trace_id, "span_id": span.span_id}
        assert out.get("parent_id") == span.parent_id
        assert abs(to_ns(out["start_time"]) - span.start_time_ns) <= 1_000  # microseconds
        assert abs(to_ns(out["end_time"]) - span.end_time_ns) <= 1_000
        assert out["attributes"]["mlflow.spanType"] == span.span_type
    kinds = {name: s["span_kind"] for name, s in got.items()}
    assert kinds == {
        "support-agent": "AGENT",
        "search-orders": "RETRIEVER",
        "chat": "LLM",
        "notify": "TOOL",
    }
    root = got["support-agent"]["attributes"]
    assert root["customer_tier"] == "gold" and root["attempt"] == 1
    assert (root["metadata.env"], root["metadata.session_id"]) == ("e2e", "sess-42")
    assert root["session.id"] == "sess-42"
    assert root["output.value"] == "It has shipped."
    assert root["input.mime_type"] == "application/json"
    chat = got["chat"]["attributes"]
    assert chat["llm.model_name"] == "gpt-4o-mini"
    assert chat["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat["gen_ai.operation.name"] == "chat"
    assert (chat["llm.token_count.prompt"], chat["llm.token_count.completion"]) == (31, 9)
    assert chat["llm.token_count.total"] == 40
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (31, 9)
    assert chat["temperature"] == 0.2 and list(chat["stop"]) == ["\n", "END"]
    assert [e["name"] for e in got["chat"]["events"]] == ["first_token"]
    notify = got["notify"]
    assert notify["status_code"] == "ERROR"
    assert notify["status_message"] == "TimeoutError: sms gateway timed out"
    [event] = notify["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "TimeoutError"
    assert "sms gateway timed out" in event["attributes"]["exception.stacktrace"]
    assert got["search-orders"]["status_code"] == "OK"
    docs = got["search-orders"]["attributes"]
    assert docs["retrieval.documents.0.document.id"] == "1234"
    assert docs["retrieval.documents.0.document.content"] == "Order 1234 shipped on May 2"
    assert docs["retrieval.documents.0.document.score"] == 0.9
    assert docs["retrieval.documents.0.document.metadata.source"] == "orders"
    assert docs["retrieval.documents.1.document.content"] == "Orders ship within two days"
    assert (
        chat["llm.input_messages.0.message.role"],
        chat["llm.output_messages.0.message.role"],
    ) == (
        "user",
        "assistant",
    )
    assert chat["llm.input_messages.0.message.content"] == "Where is my order?"
    assert chat["llm.output_messages.0.message.content"] == "It has shipped."
    assert orjson.loads(chat["llm.invocation_parameters"]) == {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "stop": ["\n", "END"],
    }


def test_many_traces_in_split_requests(phoenix: str) -> None:
    project = f"lowtrace-bulk-{uuid.uuid4().hex[:8]}"
    exporter = OTLPExporter(
        f"{phoenix}/v1/traces", headers={"x-project-name": project}, max_request_bytes=64_000
    )
    with TracingClient("memory://", exporters=[exporter]) as client:
        ids = [build_trace(client).info.trace_id for _ in range(150)]
        assert client.flush(60)
    stats = exporter.stats()
    assert stats.exported_spans == 600 and stats.requests > 1
    spans = read_spans(phoenix, project, ids, 600)
    assert len({s["context"]["span_id"] for s in spans}) == 600


def test_environment_configuration_reaches_phoenix(
    phoenix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = f"env project {uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix)
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_HEADERS", f"x-project-name={project.replace(' ', '%20')}"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    with TracingClient("memory://", exporters=[OTLPExporter()]) as client:
        trace = build_trace(client)
        assert client.flush(30)
    assert len(read_spans(phoenix, project, [trace.info.trace_id], 4)) == 4


def test_phoenix_refuses_json_and_the_batch_is_rejected_not_resent(phoenix: str) -> None:
    exporter = OTLPExporter(f"{phoenix}/v1/traces", encoding="json")
    with TracingClient("memory://") as client:
        trace = build_trace(client)
    with pytest.raises(ExportRejectedError):  # 415: final, the pipeline never retries it
        exporter.export([trace])
    stats = exporter.stats()
    assert (stats.requests, stats.rejected_traces, stats.exported_traces) == (1, 1, 0)


def test_a_trace_across_two_services_is_one_tree_in_phoenix(phoenix: str) -> None:
    project = f"lowtrace-dist-{uuid.uuid4().hex[:8]}"
    url = f"{phoenix}/v1/traces"
    headers = {"x-project-name": project}
    agent_exporter = OTLPExporter(url, headers=headers, service_name="agent")
    service_exporter = OTLPExporter(url, headers=headers, service_name="tool-service")
    with (
        TracingClient("memory://", exporters=[agent_exporter]) as agent,
        TracingClient("memory://", exporters=[service_exporter]) as service_client,
    ):
        service = ToolService(service_client)
        try:
            trace_id, call_id = run_agent(agent, service.url)
        finally:
            service.close()
        assert agent.flush(30) and service_client.flush(30)
    spans = read_spans(phoenix, project, [trace_id], 4)
    by_name = {s["name"]: s for s in spans}
    assert {s["context"]["trace_id"] for s in spans} == {trace_id}
    assert by_name["agent"].get("parent_id") is None
    assert by_name["call tool-service"]["parent_id"] == by_name["agent"]["context"]["span_id"]
    assert by_name["tool-service"]["parent_id"] == call_id
    assert by_name["lookup"]["parent_id"] == by_name["tool-service"]["context"]["span_id"]
    assert all(s["status_code"] == SpanStatus.OK for s in spans)
