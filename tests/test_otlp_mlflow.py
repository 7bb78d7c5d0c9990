"""End to end: lowtrace's OTLP exporter against a real MLflow tracking server on 127.0.0.1.

The fixture starts ``mlflow server`` (SQLite backend, a free loopback port) and stops it
afterwards. MLflow lives in its own virtualenv (``.venv-mlflow``, created by ``.ci/run``;
``LOWTRACE_MLFLOW_PYTHON`` may name another Python that has ``mlflow``): its dependency
tree is large and not needed by the test environment. Its client runs in that Python too,
through ``tests/mlflow_side.py``: it records the same trace with MLflow's own API, and
reads both back, so every field is compared against what MLflow itself makes of its own.

Without MLflow these tests are reported as SKIPPED with the reason; set
``LOWTRACE_REQUIRE_RECEIVER=1`` (CI does) to make that a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lowtrace import SpanType, Trace, TracingClient
from lowtrace.exporters.otlp import OTLPExporter, OTLPRejectedError
from tests.test_otlp_phoenix import _free_port, _unavailable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
SIDE = Path(__file__).with_name("mlflow_side.py")


def _mlflow_python() -> str | None:
    explicit = os.environ.get("LOWTRACE_MLFLOW_PYTHON", "").strip()
    if explicit:
        return explicit
    local = ROOT / ".venv-mlflow" / "bin" / "python"
    return str(local) if local.exists() else None


class MLflow:
    """A running MLflow server and its client, driven through ``mlflow_side.py``."""

    def __init__(self, python: str, uri: str, env: dict[str, str]) -> None:
        self.python = python
        self.uri = uri
        self.env = env

    def call(self, *args: str) -> Any:
        done = subprocess.run(
            [self.python, str(SIDE), self.uri, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"mlflow_side.py {args[0]} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def experiment(self) -> str:
        return str(self.call("experiment", f"lowtrace-{uuid.uuid4().hex[:8]}")["experiment_id"])

    def read(self, *trace_ids: str) -> list[dict[str, Any]]:
        return list(self.call("read", *trace_ids)["traces"])

    def search(self, experiment_id: str, filter_string: str) -> set[str]:
        return set(self.call("search", experiment_id, filter_string)["trace_ids"])


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflow]:
    python = _mlflow_python()
    if python is None:
        _unavailable("MLflow is not installed (.venv-mlflow, see the module docstring)")
    assert python is not None
    workdir = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_"))}
    env.update(
        MLFLOW_TELEMETRY_OPT_OUT="true",
        DO_NOT_TRACK="true",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",  # no background job workers: not needed
    )
    command = [
        python,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root",
        str(workdir / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log_path = workdir / "mlflow.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the server and its workers
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"MLflow exited with {process.returncode} at startup:\n{tail}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("MLflow did not answer /health within 180 s")
            time.sleep(0.25)
        yield MLflow(python, base, env)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def record_reference_trace(client: TracingClient) -> Trace:
    """The trace ``mlflow_side.reference`` records with MLflow's API, made with lowtrace."""
    root = client.start_trace(
        "support-agent",
        span_type=SpanType.AGENT,
        inputs={"question": "Where is my order?", "n": 7, "ratio": 3.5, "empty": {}, "none": []},
        attributes={"customer_tier": "gold"},
        tags={"env": "e2e", "team": "support"},
    )
    tid = root.trace_id
    retrieve = client.start_span(
        "search-orders", trace_id=tid, parent_id=root.span_id, span_type="RETRIEVER", inputs=7
    )
    retrieve.end(outputs=[])
    chat = client.start_span(
        "chat",
        trace_id=tid,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
        inputs={"messages": [{"role": "user", "content": "Where is my order?"}]},
    )
    chat.set_token_usage(input_tokens=31, output_tokens=9, total_tokens=40)
    chat.end(outputs={"content": "It has shipped."})
    for name, span_type, outputs in (
        ("parse", SpanType.PARSER, ""),
        ("remember", SpanType.MEMORY, {}),
    ):
        span = client.start_span(
            name, trace_id=tid, parent_id=root.span_id, span_type=span_type, inputs=3.5
        )
        span.end(outputs=outputs)
    tool = client.start_span("notify", trace_id=tid, parent_id=root.span_id, span_type="TOOL")
    try:
        raise TimeoutError("sms gateway timed out")
    except TimeoutError as exc:
        tool.record_exception(exc)
    tool.end()
    trace = client.end_trace(tid, outputs="It has shipped.")
    assert trace is not None
    return trace


def comparable(trace: dict[str, Any]) -> dict[str, Any]:
    """A trace as MLflow shows it, without what differs between any two recordings."""
    spans = []
    for span in trace["spans"]:
        events = [
            {
                "name": e["name"],
                "attributes": {
                    k: v for k, v in e["attributes"].items() if k != "exception.stacktrace"
                },
            }
            for e in span["events"]
        ]
        spans.append(
            {
                **{k: span[k] for k in ("name", "span_type", "inputs", "outputs", "status")},
                "token_usage": span["token_usage"],
                "events": events,
                "is_root": span["parent_id"] is None,
            }
        )
    return {
        **{k: trace[k] for k in ("name", "state", "token_usage")},
        **{k: trace[k] for k in ("request_preview", "response_preview")},
        "tags": {k: v for k, v in trace["tags"].items() if k != "service.name"},
        "spans": spans,
    }


def test_mlflow_shows_our_trace_as_it_shows_its_own(mlflow: MLflow) -> None:
    experiment = mlflow.experiment()
    exporter = OTLPExporter(
        f"{mlflow.uri}/v1/traces",
        headers={"x-mlflow-experiment-id": experiment},
        compression="gzip",
    )
    with TracingClient("memory://", exporters=[exporter]) as client:
        trace = record_reference_trace(client)
        assert client.flush(60)
    assert exporter.stats().exported_spans == 6 and exporter.stats().rejected_spans == 0
    theirs_id = mlflow.call("reference", experiment)["trace_id"]
    ours_id = f"tr-{trace.info.trace_id}"
    ours, theirs = mlflow.read(ours_id, theirs_id)

    assert comparable(ours) == comparable(theirs)
    # the fields compared there, spelled out: what this test is about
    by_name = {s["name"]: s for s in ours["spans"]}
    assert [s["name"] for s in ours["spans"]] == [s.name for s in trace.spans]
    assert by_name["chat"]["span_type"] == "CHAT_MODEL"
    assert (by_name["parse"]["span_type"], by_name["remember"]["span_type"]) == (
        "PARSER",
        "MEMORY",
    )
    assert by_name["support-agent"]["inputs"]["n"] == 7
    assert by_name["support-agent"]["inputs"]["empty"] == {}
    assert by_name["search-orders"]["inputs"] == 7 and by_name["search-orders"]["outputs"] == []
    assert (by_name["parse"]["outputs"], by_name["remember"]["outputs"]) == ("", {})
    assert ours["name"] == "support-agent" and ours["tags"]["env"] == "e2e"
    assert ours["state"] == "OK" and by_name["notify"]["status"] == "ERROR"
    assert ours["token_usage"] == {"input_tokens": 31, "output_tokens": 9, "total_tokens": 40}
    # what only lowtrace records: the span's status message; the sender's service name
    assert by_name["notify"]["status_message"] == "TimeoutError: sms gateway timed out"
    assert ours["tags"]["service.name"] == "lowtrace"
    [event] = by_name["notify"]["events"]
    assert "sms gateway timed out" in event["attributes"]["exception.stacktrace"]
    # the spans keep their ids and parents
    for span, got in zip(trace.spans, ours["spans"], strict=True):
        assert (got["span_id"], got["parent_id"]) == (span.span_id, span.parent_id)

    both = {ours_id, theirs_id}
    for filter_string in (
        "tags.env = 'e2e'",
        "trace.name = 'support-agent'",
        "span.type = 'CHAT_MODEL'",
        "span.type = 'PARSER'",
        "span.type = 'MEMORY'",
        "trace.status = 'OK'",
    ):
        assert mlflow.search(experiment, filter_string) == both, filter_string


def test_a_failed_trace_reads_back_as_mlflow_shows_its_own(mlflow: MLflow) -> None:
    experiment = mlflow.experiment()
    exporter = OTLPExporter(
        f"{mlflow.uri}/v1/traces", headers={"x-mlflow-experiment-id": experiment}
    )
    with TracingClient("memory://", exporters=[exporter]) as client:
        root = client.start_trace("failing-agent", span_type=SpanType.AGENT, inputs={"x": 1})
        try:
            raise ValueError("no route to the tool")
        except ValueError as exc:
            root.record_exception(exc)
        trace = client.end_trace(root.trace_id)
        assert trace is not None and client.flush(60)
    theirs_id = mlflow.call("reference-error", experiment)["trace_id"]
    ours, theirs = mlflow.read(f"tr-{trace.info.trace_id}", theirs_id)
    assert comparable(ours) == comparable(theirs)
    assert ours["state"] == "ERROR" and ours["spans"][0]["status"] == "ERROR"
    [event] = ours["spans"][0]["events"]
    assert event["attributes"]["exception.type"] == "ValueError"
    assert mlflow.search(experiment, "trace.status = 'ERROR'") == {ours["trace_id"], theirs_id}


def test_mlflow_refuses_a_batch_without_an_experiment_and_it_is_not_resent(
    mlflow: MLflow,
) -> None:
    exporter = OTLPExporter(f"{mlflow.uri}/v1/traces")  # no x-mlflow-experiment-id
    with TracingClient("memory://") as client:
        trace = record_reference_trace(client)
    with pytest.raises(OTLPRejectedError) as info:
        exporter.export([trace])
    assert 400 <= info.value.status < 500
    stats = exporter.stats()
    assert (stats.requests, stats.rejected_traces, stats.failed_requests) == (1, 1, 0)
