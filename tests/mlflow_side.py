"""MLflow's side of the MLflow receiver tests, run by the Python of ``.venv-mlflow``.

MLflow (server and client) lives in its own virtualenv: its dependency tree is large and
pins versions the test environment does not need. The tests run this script in a
subprocess, one command per call, and read one JSON document from its stdout:

    python tests/mlflow_side.py URI experiment NAME          -> {"experiment_id": ...}
    python tests/mlflow_side.py URI reference EXPERIMENT_ID  -> {"trace_id": ...}
    python tests/mlflow_side.py URI reference-error EXPERIMENT_ID -> {"trace_id": ...}
    python tests/mlflow_side.py URI read TRACE_ID...          -> {"traces": [...]}
    python tests/mlflow_side.py URI search EXPERIMENT_ID FILTER -> {"trace_ids": [...]}

``reference`` records, with MLflow's own client API, the trace the tests also record with
lowtrace (see ``tests/test_otlp_mlflow.py``); ``read`` returns traces as MLflow's client
shows them, in a form both can be compared in.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("MLFLOW_TELEMETRY_OPT_OUT", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
from mlflow import MlflowClient
from mlflow.entities import SpanStatusCode, SpanType

#: The inputs and outputs of the reference trace: every JSON type, empty ones included.
ROOT_INPUTS = {"question": "Where is my order?", "n": 7, "ratio": 3.5, "empty": {}, "none": []}
CHAT_INPUTS = {"messages": [{"role": "user", "content": "Where is my order?"}]}


def reference(client: MlflowClient, experiment_id: str) -> str:
    """The shared test trace, recorded through MLflow's own low-level client API."""
    root = client.start_trace(
        "support-agent",
        span_type=SpanType.AGENT,
        inputs=ROOT_INPUTS,
        attributes={"customer_tier": "gold"},
        tags={"env": "e2e", "team": "support"},
        experiment_id=experiment_id,
    )
    trace_id = root.trace_id
    retrieve = client.start_span(
        "search-orders",
        trace_id=trace_id,
        parent_id=root.span_id,
        span_type=SpanType.RETRIEVER,
        inputs=7,
    )
    client.end_span(trace_id, retrieve.span_id, outputs=[])
    chat = client.start_span(
        "chat",
        trace_id=trace_id,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
        inputs=CHAT_INPUTS,
        attributes={
            "mlflow.chat.tokenUsage": {"input_tokens": 31, "output_tokens": 9, "total_tokens": 40}
        },
    )
    client.end_span(trace_id, chat.span_id, outputs={"content": "It has shipped."})
    for name, span_type, outputs in (
        ("parse", SpanType.PARSER, ""),
        ("remember", SpanType.MEMORY, {}),
    ):
        span = client.start_span(
            name, trace_id=trace_id, parent_id=root.span_id, span_type=span_type, inputs=3.5
        )
        client.end_span(trace_id, span.span_id, outputs=outputs)
    tool = client.start_span(
        "notify", trace_id=trace_id, parent_id=root.span_id, span_type=SpanType.TOOL
    )
    try:
        raise TimeoutError("sms gateway timed out")
    except TimeoutError as exc:
        tool.record_exception(exc)
    client.end_span(trace_id, tool.span_id, status=SpanStatusCode.ERROR)
    client.end_trace(trace_id, outputs="It has shipped.")
    mlflow.flush_trace_async_logging()
    return str(trace_id)


def reference_error(client: MlflowClient, experiment_id: str) -> str:
    """A trace whose root fails, through MLflow's own client API."""
    root = client.start_trace(
        "failing-agent", span_type=SpanType.AGENT, inputs={"x": 1}, experiment_id=experiment_id
    )
    try:
        raise ValueError("no route to the tool")
    except ValueError as exc:
        root.record_exception(exc)
    client.end_trace(root.trace_id, status=SpanStatusCode.ERROR)
    mlflow.flush_trace_async_logging()
    return str(root.trace_id)


def _span(span: Any) -> dict[str, Any]:
    events = []
    for event in span.events:
        attributes = dict(event.attributes or {})
        events.append({"name": event.name, "attributes": attributes})
    return {
        "name": span.name,
        "parent_id": span.parent_id,
        "span_id": span.span_id,
        "span_type": span.span_type,
        "inputs": span.inputs,
        "outputs": span.outputs,
        "status": span.status.status_code.value
        if hasattr(span.status.status_code, "value")
        else str(span.status.status_code),
        "status_message": span.status.description or None,
        "events": events,
        "token_usage": span.get_attribute("mlflow.chat.tokenUsage"),
    }


def read(client: MlflowClient, trace_ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for trace_id in trace_ids:
        trace = client.get_trace(trace_id)
        info = trace.info
        out.append(
            {
                "trace_id": info.trace_id,
                "name": info.tags.get("mlflow.traceName"),
                "state": str(info.state.value if hasattr(info.state, "value") else info.state),
                "tags": {k: v for k, v in info.tags.items() if not k.startswith("mlflow.")},
                "token_usage": info.token_usage,
                "request_preview": info.request_preview,
                "response_preview": info.response_preview,
                "spans": [_span(s) for s in trace.data.spans],
            }
        )
    return out


def main(argv: list[str]) -> dict[str, Any]:
    uri, command, *args = argv
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    if command == "experiment":
        return {"experiment_id": client.create_experiment(args[0])}
    if command == "reference":
        return {"trace_id": reference(client, args[0])}
    if command == "reference-error":
        return {"trace_id": reference_error(client, args[0])}
    if command == "read":
        return {"traces": read(client, args)}
    if command == "search":
        found = client.search_traces(locations=[args[0]], filter_string=args[1])
        return {"trace_ids": [t.info.trace_id for t in found]}
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), default=str))
