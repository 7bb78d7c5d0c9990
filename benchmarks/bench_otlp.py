"""OTLP export throughput: the encoder alone, a null HTTP sink, and a real Phoenix server.

    python benchmarks/bench_otlp.py [--quick] [--phoenix URL | --phoenix-python PYTHON]

Workload: traces of 11 spans (an agent root and 10 children alternating CHAT_MODEL with
token usage and TOOL), each with ~100-byte inputs/outputs and a few attributes. Prints
spans per second for:
1. encoding only (protobuf, protobuf + gzip, OTLP/JSON), no I/O;
2. ``OTLPExporter.export`` to a null sink (a local HTTP server in a separate process that
   answers 200 at once), batches of 64 traces, and the whole client pipeline to that sink;
3. the same to Phoenix (``--phoenix`` a running server's base URL, or ``--phoenix-python``
   a Python with ``arize-phoenix`` to start one on loopback), with fewer, fresh traces:
   spans/s accepted (HTTP 200), and spans/s until the last trace is readable through
   Phoenix's API (Phoenix answers 200 first and writes to its database afterwards).
A benchmark, not a test: it reports numbers and asserts nothing. Loopback only.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from lowtrace import SpanType, Trace, TracingClient
from lowtrace._otlp.encode import encode_json, encode_protobuf
from lowtrace.exporters.otlp import OTLPExporter

SPANS = 11
RESOURCE = {"service.name": "bench"}

_SINK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""

# Phoenix's gRPC receiver listens on every interface; pin it to loopback before serving.
_PHOENIX = """
import sys
import grpc.aio._server as server
def _lo(add):
    return lambda self, address, *a: add(self, address.replace("[::]", "127.0.0.1"), *a)
server.Server.add_insecure_port = _lo(server.Server.add_insecure_port)
from phoenix.server.main import main
sys.argv = ["phoenix", "serve"]
sys.exit(main())
"""


def make_traces(n: int) -> list[Trace]:
    out: list[Trace] = []
    with TracingClient("memory://") as client:
        for i in range(n):
            out.append(one_trace(client, i))
    for trace in out:
        len(trace.spans)  # build the records now, not inside the timed loops
    return out


def one_trace(client: TracingClient, i: int) -> Trace:
    root = client.start_trace(
        "agent", span_type=SpanType.AGENT, inputs={"question": "q" * 100}, tags={"i": str(i)}
    )
    for j in range(SPANS - 1):
        kind = SpanType.CHAT_MODEL if j % 2 else SpanType.TOOL
        span = client.start_span(
            f"step-{j}",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=kind,
            inputs={"text": "x" * 100},
            attributes={"j": j, "model": "gpt-bench", "temperature": 0.1},
        )
        if kind == SpanType.CHAT_MODEL:
            span.set_token_usage(input_tokens=100, output_tokens=20)
        span.end(outputs="y" * 100)
    trace = client.end_trace(root.trace_id, outputs={"answer": "z" * 100})
    assert trace is not None
    return trace


def rate(label: str, spans: int, seconds: float) -> None:
    print(
        f"  {label:<46} {spans / seconds:>10,.0f} spans/s  ({seconds / spans * 1e6:6.1f} us/span)"
    )


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bench_encoder(traces: list[Trace], repeat: int) -> None:
    spans = len(traces) * SPANS
    print(f"1. encoding {len(traces)} traces ({spans} spans), best of {repeat}:")
    body = encode_protobuf(traces, RESOURCE)
    rate("protobuf", spans, best_of(repeat, lambda: encode_protobuf(traces, RESOURCE)))
    rate(
        "protobuf + gzip",
        spans,
        best_of(repeat, lambda: gzip.compress(encode_protobuf(traces, RESOURCE), 6)),
    )
    rate("OTLP/JSON", spans, best_of(repeat, lambda: encode_json(traces, RESOURCE)))
    zipped = gzip.compress(body, 6)
    print(f"  body: {len(body) / spans:.0f} B/span protobuf, {len(zipped) / spans:.0f} B/span gzip")


def export_rate(exporter: OTLPExporter, traces: list[Trace], batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(traces), batch):
        exporter.export(traces[i : i + batch])
    return time.perf_counter() - started


def bench_sink(traces: list[Trace], batch: int) -> None:
    sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{int(sink.stdout.readline())}/v1/traces"
        spans = len(traces) * SPANS
        print(f"2. null HTTP sink (separate process), {spans} spans in batches of {batch}:")
        for compression in ("none", "gzip"):
            exporter = OTLPExporter(url, compression=compression)
            exporter.export(traces[:1])
            rate(f"export(), {compression}", spans, export_rate(exporter, traces, batch))
        exporter = OTLPExporter(url)
        with TracingClient("memory://", exporters=[exporter]) as client:
            started = time.perf_counter()
            for i in range(len(traces)):
                one_trace(client, i)
            client.flush()
            rate("client: record + end + export + flush", spans, time.perf_counter() - started)
    finally:
        sink.terminate()
        sink.wait(10)


def start_phoenix(python: str, workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    env.update(
        PHOENIX_WORKING_DIR=workdir,
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(ports[0]),
        PHOENIX_GRPC_PORT=str(ports[1]),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    log = Path(workdir, "phoenix.log").open("wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([python, "-c", _PHOENIX], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{ports[0]}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"Phoenix did not start; see {workdir}/phoenix.log")


def bench_phoenix(base: str, n: int, batch: int) -> None:
    from phoenix.client import Client

    spans = n * SPANS
    print(f"3. Phoenix at {base}, {spans} spans in batches of {batch}:")
    client = Client(base_url=base)
    for compression in ("none", "gzip"):
        traces = make_traces(n)  # fresh ids: Phoenix keeps the first copy of a span id
        project = f"bench-{compression}-{uuid.uuid4().hex[:6]}"
        exporter = OTLPExporter(
            f"{base}/v1/traces", headers={"x-project-name": project}, compression=compression
        )
        started = time.perf_counter()
        export_rate(exporter, traces, batch)
        rate(f"accepted (HTTP 200), {compression}", spans, time.perf_counter() - started)
        last = traces[-1].info.trace_id
        found = 0
        while found < SPANS and time.perf_counter() - started < 300:
            time.sleep(0.25)
            try:
                found = len(client.spans.get_spans(project_identifier=project, trace_ids=[last]))
            except Exception:  # the project appears with its first span
                found = 0
        if found < SPANS:
            print(f"  readable through Phoenix's API, {compression}: not within 300 s")
        else:
            rate(
                f"readable through Phoenix's API, {compression}",
                spans,
                time.perf_counter() - started,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer traces")
    parser.add_argument("--phoenix", help="base URL of a running Phoenix server")
    parser.add_argument("--phoenix-python", help="a Python with arize-phoenix, to start one")
    args = parser.parse_args()
    n = 200 if args.quick else 1000
    print(f"lowtrace OTLP export, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    traces = make_traces(n)
    bench_encoder(traces, 3 if args.quick else 5)
    bench_sink(traces, 64)
    phoenix_traces = 100 if args.quick else 300  # Phoenix ingests a few hundred spans/s here
    if args.phoenix:
        bench_phoenix(args.phoenix, phoenix_traces, 64)
    elif args.phoenix_python:
        with tempfile.TemporaryDirectory() as workdir:
            process, base = start_phoenix(args.phoenix_python, workdir)
            try:
                bench_phoenix(base, phoenix_traces, 64)
            finally:
                process.terminate()
                process.wait(20)
    else:
        print("3. Phoenix: skipped (pass --phoenix URL or --phoenix-python PYTHON)")


if __name__ == "__main__":
    main()
