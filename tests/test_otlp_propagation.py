"""A trace across two services: an agent calls a real HTTP tool service with ``traceparent``.

The tool service runs its own ``TracingClient`` and continues the agent's trace; both sides
write to one SQLite file, and ``get_trace`` returns one merged tree.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lowtrace import SpanStatus, SpanType, Trace, TracingClient, propagation
from lowtrace._model import merge_traces

pytestmark = pytest.mark.timeout(60)


class ToolService:
    """A tool service on 127.0.0.1 that traces each request with its own client."""

    def __init__(self, client: TracingClient) -> None:
        self.client = client
        self.seen_tracestate: list[str | None] = []
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["content-length"])))
                remote = propagation.extract(self.headers)
                service.seen_tracestate.append(remote.tracestate if remote else None)
                result = service.handle(payload, remote)
                body = json.dumps(result).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tool"

    def handle(
        self, payload: dict[str, Any], remote: propagation.RemoteContext | None
    ) -> dict[str, Any]:
        client = self.client
        root = client.start_trace(
            "tool-service",
            span_type=SpanType.TOOL,
            inputs=payload,
            **(remote.start_args() if remote else {}),
        )
        lookup = client.start_span(
            "lookup", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.RETRIEVER
        )
        documents = [f"doc about {payload['query']}"]
        lookup.end(outputs=documents)
        result = {"documents": documents}
        client.end_trace(root.trace_id, outputs=result)
        return result

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_agent(client: TracingClient, url: str, query: str = "weather") -> tuple[str, str]:
    """The agent's side: a root, a span that calls the service; returns (trace id, call id)."""
    root = client.start_trace(
        "agent", span_type=SpanType.AGENT, inputs={"question": query}, tracestate="agent=1"
    )
    call = client.start_span(
        "call tool-service", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.TOOL
    )
    headers = {"content-type": "application/json"}
    propagation.inject(call, headers)  # traceparent, and the trace's tracestate
    request = urllib.request.Request(
        url, data=json.dumps({"query": query}).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    call.end(outputs=answer)
    client.end_trace(root.trace_id, outputs={"answer": answer["documents"][0]})
    return root.trace_id, call.span_id


def check_tree(trace: Trace, trace_id: str, call_id: str) -> None:
    """One tree: agent > call tool-service > tool-service > lookup, one trace id."""
    assert trace.info.trace_id == trace_id
    assert trace.info.name == "agent"
    assert trace.info.span_count == 4
    assert {s.trace_id for s in trace.spans} == {trace_id}
    shape = [(depth, span.name) for depth, span in trace.walk()]
    assert shape == [(0, "agent"), (1, "call tool-service"), (2, "tool-service"), (3, "lookup")]
    service_root = next(s for s in trace.spans if s.name == "tool-service")
    assert service_root.parent_id == call_id
    assert all(s.status == SpanStatus.OK for s in trace.spans)


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


def test_two_clients_on_one_sqlite_store_merge_into_one_tree(store_uri: str) -> None:
    with TracingClient(store_uri) as agent, TracingClient(store_uri) as service_client:
        service = ToolService(service_client)
        try:
            trace_id, call_id = run_agent(agent, service.url)
        finally:
            service.close()
        assert service_client.flush(10) and agent.flush(10)
        assert service.seen_tracestate == ["agent=1"]
        for reader in (agent, service_client):
            merged = reader.get_trace(trace_id)
            assert merged is not None
            check_tree(merged, trace_id, call_id)
        [found] = agent.search_traces("span.name = 'lookup'")
        assert found.info.trace_id == trace_id and found.info.name == "agent"


class Collect:
    """An exporter that keeps what it receives."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.lock = threading.Lock()

    def export(self, traces: Sequence[Trace]) -> None:
        with self.lock:
            self.traces.extend(traces)


def test_a_shared_exporter_sees_two_fragments_that_merge() -> None:
    collect = Collect()
    with (
        TracingClient("memory://", exporters=[collect]) as agent,
        TracingClient("memory://", exporters=[collect]) as service_client,
    ):
        service = ToolService(service_client)
        try:
            trace_id, call_id = run_agent(agent, service.url)
        finally:
            service.close()
        assert service_client.flush(10) and agent.flush(10)
    fragments = [t for t in collect.traces if t.info.trace_id == trace_id]
    assert sorted(f.info.name for f in fragments) == ["agent", "tool-service"]
    service_fragment = next(f for f in fragments if f.info.name == "tool-service")
    assert service_fragment.root is not None and service_fragment.root.parent_id == call_id
    check_tree(merge_traces(fragments), trace_id, call_id)


def test_service_without_incoming_context_starts_its_own_trace() -> None:
    with TracingClient("memory://") as service_client:
        service = ToolService(service_client)
        try:
            request = urllib.request.Request(
                service.url, data=b'{"query": "q"}', headers={"traceparent": "bogus"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.loads(response.read())["documents"]
        finally:
            service.close()
        service_client.flush(10)
        [trace] = service_client.search_traces()
        assert trace.root is not None and trace.root.parent_id is None
