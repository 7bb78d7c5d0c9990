"""Per-span cost of the client API, beside the OpenTelemetry SDK and MLflow when installed.

    python benchmarks/bench_client.py [--quick]

Prints, in one run:
1. microseconds per span for a root + 10 children with explicit parents and two attributes
   each: caller-side (the loop alone) and end-to-end (the loop plus ``flush()``, so the
   export worker's CPU, which shares the GIL, is counted too);
2. the same workload through the OpenTelemetry SDK (explicit parent context, simple span
   processor, null exporter) and MLflow's ``MlflowClient``, as ratios;
3. 8-thread throughput of the same workload;
4. the caller-side time to record and end traces carrying ~10 KB, ~1 MB and ~10 MB.
A benchmark, not a test: it reports numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from lowtrace import Trace, TracingClient

CHILDREN = 10
SPANS = CHILDREN + 1


class NullExporter:
    """Receives every finished trace and does nothing with it."""

    def export(self, traces: Sequence[Trace]) -> None:
        pass


# -- one trace of the workload, per library ----------------------------------------------------


def lowtrace_workload(client: TracingClient) -> Callable[[], None]:
    def one() -> None:
        root = client.start_trace("root", attributes={"i": -1, "kind": "agent"})
        trace_id, root_id = root.trace_id, root.span_id
        for i in range(CHILDREN):
            span = client.start_span(
                "child", trace_id=trace_id, parent_id=root_id, attributes={"i": i, "kind": "tool"}
            )
            client.end_span(trace_id, span.span_id)
        client.end_trace(trace_id)

    return one


def otel_workload() -> Callable[[], None] | None:
    try:
        from opentelemetry import trace as ot
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Null(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Null()))
    tracer = provider.get_tracer("bench")

    def one() -> None:
        root = tracer.start_span("root", attributes={"i": -1, "kind": "agent"})
        context = ot.set_span_in_context(root)
        for i in range(CHILDREN):
            span = tracer.start_span("child", context=context, attributes={"i": i, "kind": "tool"})
            span.end()
        root.end()

    return one


def mlflow_workload() -> Callable[[], None] | None:
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError:
        return None
    # A local file tracking store: what mlflow-skinny supports (it is "in maintenance mode").
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(f"file://{tempfile.mkdtemp(prefix='mlflow-bench-')}")
    mlflow.set_experiment("lowtrace-bench")
    client = MlflowClient()

    def one() -> None:
        root = client.start_trace("root", attributes={"i": -1, "kind": "agent"})
        for i in range(CHILDREN):
            span = client.start_span(
                "child",
                trace_id=root.trace_id,
                parent_id=root.span_id,
                attributes={"i": i, "kind": "tool"},
            )
            client.end_span(trace_id=root.trace_id, span_id=span.span_id)
        client.end_trace(root.trace_id)

    return one


# -- measuring ---------------------------------------------------------------------------------


def per_span_us(
    one: Callable[[], None], traces: int, repeats: int, settle: Callable[[], object] | None = None
) -> list[float]:
    for _ in range(max(10, traces // 10)):
        one()
    if settle:
        settle()
    results = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(traces):
            one()
        if settle:
            settle()
        results.append((time.perf_counter() - started) / (traces * SPANS) * 1e6)
    return results


def throughput(
    one: Callable[[], None],
    threads: int,
    seconds: float,
    settle: Callable[[], object] | None = None,
) -> float:
    """Spans per second with ``threads`` threads running ``one`` for ``seconds``."""
    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()
    counts = [0] * threads

    def run(index: int) -> None:
        barrier.wait()
        n = 0
        while not stop.is_set():
            one()
            n += 1
        counts[index] = n

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    if settle:
        settle()
    return sum(counts) * SPANS / (time.perf_counter() - started)


def payload(total_bytes: int) -> list[dict[str, Any]]:
    """Realistic JSON: retrieved documents with text and metadata, about ``total_bytes``."""
    count = max(1, total_bytes // 1000)
    text_size = max(10, min(900, total_bytes // count - 60))  # ~60 bytes of JSON around it
    doc_text = ("The quick brown fox jumps over the lazy dog. " * 20)[:text_size]
    return [
        {"id": f"doc-{n}", "score": 0.5, "text": doc_text, "meta": {"page": n}}
        for n in range(count)
    ]


def big_trace_ms(client: TracingClient, total_bytes: int, repeats: int) -> list[float]:
    per_value = total_bytes // (2 * CHILDREN)
    docs = payload(per_value)
    actual = 2 * CHILDREN * len(orjson.dumps({"docs": docs}))
    print(f"   (trace carries {actual / 1e6:.3g} MB of inputs and outputs)", end="")
    results = []
    for attempt in range(repeats + 1):  # the first round warms up and is not counted
        started = time.perf_counter()
        root = client.start_trace("rag", inputs={"question": "what?"})
        for _ in range(CHILDREN):
            span = client.start_span(
                "retrieve", trace_id=root.trace_id, parent_id=root.span_id, inputs={"docs": docs}
            )
            client.end_span(root.trace_id, span.span_id, outputs={"docs": docs})
        client.end_trace(root.trace_id)
        if attempt:
            results.append((time.perf_counter() - started) * 1e3)
        client.flush()  # keep the worker from overlapping the next measurement
    return results


def fmt(values: list[float], unit: str) -> str:
    med = statistics.median(values)
    return f"{med:8.2f} {unit}  (min {min(values):.2f}, max {max(values):.2f})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (~20 s)")
    args = parser.parse_args(argv)
    traces, repeats, seconds = (2_000, 3, 1.0) if args.quick else (10_000, 7, 3.0)

    print(
        f"lowtrace client benchmark: Python {platform.python_version()} "
        f"({platform.python_implementation()}), {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"workload: root + {CHILDREN} children, explicit parents, 2 attributes each\n")

    # none://: no local store, so lowtrace does what the peers do (spans to a null exporter).
    client = TracingClient("none://", exporters=[NullExporter()])
    one = lowtrace_workload(client)
    caller = per_span_us(one, traces, repeats)
    end_to_end = per_span_us(one, traces, repeats, settle=client.flush)
    print("1. microseconds per span (median of repeats)")
    print(f"   lowtrace, caller side       {fmt(caller, 'us/span')}")
    print(f"   lowtrace, incl. export      {fmt(end_to_end, 'us/span')}")
    peers: dict[str, Callable[[], None] | None] = {
        "OpenTelemetry SDK": otel_workload(),
        "MLflow MlflowClient": mlflow_workload(),
    }
    peer_results: dict[str, float] = {}
    for name, workload in peers.items():
        if workload is None:
            print(f"   {name:27} not installed")
            continue
        count = traces if "OpenTelemetry" in name else max(20, traces // 100)
        result = per_span_us(workload, count, repeats)
        peer_results[name] = statistics.median(result)
        ratio = peer_results[name] / statistics.median(end_to_end)
        print(f"   {name:27} {fmt(result, 'us/span')}  -> {ratio:.1f}x lowtrace incl. export")

    print(f"\n2. throughput, spans per second ({seconds:g} s per run)")
    for threads in (1, 8):
        ours = throughput(one, threads, seconds, settle=client.flush)
        line = f"   {threads} thread(s): lowtrace {ours:12,.0f}"
        otel = peers["OpenTelemetry SDK"]
        if otel is not None:
            theirs = throughput(otel, threads, seconds)
            line += f"   OpenTelemetry {theirs:12,.0f}   ratio {ours / theirs:.1f}x"
        print(line)

    print("\n3. caller-side ms to record and end one trace with big inputs and outputs")
    goals = {10_000: 0.1, 1_000_000: 2.0, 10_000_000: 20.0}
    mlflow_doc = {10_000: "1", 1_000_000: "50-100", 10_000_000: "150"}
    big_repeats = 3 if args.quick else 7
    for size, goal in goals.items():
        result = big_trace_ms(client, size, big_repeats if size < 10_000_000 else 3)
        print(
            f"   ~{size / 1e6:>5g} MB: {fmt(result, 'ms')}   goal <= {goal} ms, "
            f"MLflow documents ~{mlflow_doc[size]} ms"
        )
    client.close()
    stats = client.stats()
    print(f"\nexported {stats.exporters[-1].exported:,} traces, lost {stats.lost_traces}")


if __name__ == "__main__":
    sys.exit(main())
