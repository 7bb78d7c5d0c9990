"""Per-span cost of the client API, beside the OpenTelemetry SDK and MLflow when installed.

    python benchmarks/bench_client.py [--quick] [--keep-pages]

Prints, in one run:
1. microseconds per span for a root + 10 children with explicit parents and two attributes
   each: caller-side (the loop alone) and end-to-end (the loop plus ``flush()``, so the
   export worker's CPU, which shares the GIL, is counted too);
2. the same workload through the OpenTelemetry SDK (explicit parent context, simple span
   processor, null exporter) and MLflow's ``MlflowClient``, as ratios;
3. 8-thread throughput of the same workload;
4. the caller-side time to record and end traces carrying ~10 KB, ~1 MB and ~10 MB: ten
   spans sharing one document list (the original payload), and "many realistic spans" (chat
   messages, retrieved documents and tool results with distinct text, ~300 spans per MB),
   beside the floor: encoding every one of those values with orjson and keeping the bytes.
A benchmark, not a test: it reports numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from lowtrace import SpanType, Trace, TracingClient

CHILDREN = 10
SPANS = CHILDREN + 1
#: glibc malloc settings that keep freed memory in the process (see ``--keep-pages``).
KEEP_PAGES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647"


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


_VOCABULARY = (
    "agent model tool query answer document page section retrieval context vector index "
    "paris france capital river seine museum history revolution king republic population "
    "invoice customer order refund shipping payment account balance policy contract clause "
    "error retry timeout latency token prompt completion system user assistant function "
    "weather forecast temperature rain wind city region country north south east west "
    "python library thread lock queue worker trace span export store search filter"
)
_WORDS = _VOCABULARY.split()


class _Text:
    """Distinct pseudo-English text (seeded), so no two values share their strings."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __call__(self, size: int) -> str:
        words = self.rng.choices(_WORDS, k=max(1, size // 7))
        return " ".join(words)[:size]


#: One recorded span of a realistic trace: (name, type, inputs, outputs, attributes).
SpanSpec = tuple[str, SpanType, Any, Any, dict[str, Any]]


def realistic_spans(total_bytes: int, seed: int = 1) -> list[SpanSpec]:
    """Spans of an agent's trace (retrieval, chat and tool calls) carrying ~``total_bytes``.

    About 3.3 KB per span, so 1 MB is ~300 spans and 10 MB ~3,000; every text is distinct.
    """
    text = _Text(seed)
    spans: list[SpanSpec] = []
    history: list[dict[str, Any]] = [{"role": "system", "content": text(300)}]
    carried = 0
    turn = 0
    last_turn = 0
    while carried + last_turn // 2 < total_bytes:  # as close to total_bytes as turns go
        turn += 1
        query = text(80)
        docs = [
            {
                "page_content": text(760),
                "metadata": {"source": f"kb/{turn}/{n}.md", "page": n, "score": 0.9 - n / 10},
            }
            for n in range(4)
        ]
        spans.append(
            ("retrieve", SpanType.RETRIEVER, {"query": query}, docs, {"k": 4, "index": "kb"})
        )
        history = [*history[-4:], {"role": "user", "content": text(400)}]
        reply = {"role": "assistant", "content": text(900)}
        spans.append(
            (
                "chat",
                SpanType.CHAT_MODEL,
                {"messages": [*history, {"role": "user", "content": text(1200)}]},
                {"choices": [{"index": 0, "message": reply, "finish_reason": "stop"}]},
                {"model": "gpt-4o-mini", "temperature": 0.2, "input_tokens": 812},
            )
        )
        history.append(reply)
        spans.append(
            (
                "tool",
                SpanType.TOOL,
                {"name": "lookup", "arguments": {"q": text(60), "limit": 5}},
                {"result": text(1200), "rows": [text(200) for _ in range(4)]},
                {"tool": "lookup"},
            )
        )
        last_turn = sum(len(orjson.dumps(s[2])) + len(orjson.dumps(s[3])) for s in spans[-3:])
        carried += last_turn
    return spans


def record_realistic(client: TracingClient, spans: list[SpanSpec]) -> float:
    """Caller-side ms from ``start_trace`` to ``end_trace`` recording every span of ``spans``."""
    started = time.perf_counter()
    root = client.start_trace("agent", span_type=SpanType.AGENT, inputs={"goal": "answer"})
    trace_id, root_id = root.trace_id, root.span_id
    for name, kind, inputs, outputs, attributes in spans:
        span = client.start_span(
            name,
            trace_id=trace_id,
            parent_id=root_id,
            span_type=kind,
            inputs=inputs,
            attributes=attributes,
        )
        span.end(outputs=outputs)
    client.end_trace(trace_id, outputs={"answer": "done"})
    return (time.perf_counter() - started) * 1e3


def orjson_floor(spans: list[SpanSpec]) -> float:
    """The floor: ms to encode every input, output and attribute value with orjson and keep
    the bytes (what any recorder that snapshots values must do at least)."""
    dumps = orjson.dumps
    started = time.perf_counter()
    kept = [dumps({"goal": "answer"})]
    for _, _, inputs, outputs, attributes in spans:
        kept.append(dumps(inputs))
        kept.append(dumps(attributes))
        kept.append(dumps(outputs))
    kept.append(dumps({"answer": "done"}))
    elapsed = (time.perf_counter() - started) * 1e3
    del kept
    return elapsed


def realistic_ms(
    client: TracingClient, spans: list[SpanSpec], repeats: int
) -> tuple[list[float], list[float]]:
    """(lowtrace, floor) ms per trace, measured alternately so machine load hits both alike."""
    ours, floor = [], []
    for attempt in range(repeats + 1):  # the first round warms up and is not counted
        lowtrace_ms = record_realistic(client, spans)
        client.flush()  # keep the worker from overlapping the next measurement
        floor_ms = orjson_floor(spans)
        if attempt:
            ours.append(lowtrace_ms)
            floor.append(floor_ms)
    return ours, floor


def fmt(values: list[float], unit: str) -> str:
    med = statistics.median(values)
    return f"{med:8.2f} {unit}  (min {min(values):.2f}, max {max(values):.2f})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (~20 s)")
    parser.add_argument(
        "--keep-pages",
        action="store_true",
        help="run with glibc's malloc keeping freed memory (no page faults on reuse)",
    )
    args = parser.parse_args(argv)
    if args.keep_pages and KEEP_PAGES not in os.environ.get("GLIBC_TUNABLES", ""):
        # Section 4's floor keeps ~1-10 MB of fresh bytes per trace; by default glibc hands
        # freed memory back to the OS and every repeat pays page faults again, which made
        # the floor 2-9x slower from run to run. Set before the process starts, so re-exec.
        env = dict(os.environ, GLIBC_TUNABLES=KEEP_PAGES)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    traces, repeats, seconds = (2_000, 3, 1.0) if args.quick else (10_000, 7, 3.0)

    print(
        f"lowtrace client benchmark: Python {platform.python_version()} "
        f"({platform.python_implementation()}), {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"workload: root + {CHILDREN} children, explicit parents, 2 attributes each")
    kept = KEEP_PAGES in os.environ.get("GLIBC_TUNABLES", "")
    print(
        "malloc: keeps freed memory (--keep-pages)\n"
        if kept
        else "malloc: default (freed memory goes back to the OS: section 4's floor pays page "
        "faults; --keep-pages removes them)\n"
    )

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
        ratio = statistics.median(end_to_end) / peer_results[name]
        print(f"   {name:27} {fmt(result, 'us/span')}  -> lowtrace incl. export {ratio:.2f}x it")
    if "OpenTelemetry SDK" in peer_results:
        print("   (goal: lowtrace <= 0.25x OpenTelemetry per span)")

    print(f"\n2. throughput, spans per second ({seconds:g} s per run)")
    for threads in (1, 8):
        ours = throughput(one, threads, seconds, settle=client.flush)
        line = f"   {threads} thread(s): lowtrace {ours:12,.0f}"
        otel = peers["OpenTelemetry SDK"]
        if otel is not None:
            theirs = throughput(otel, threads, seconds)
            line += f"   OpenTelemetry {theirs:12,.0f}   ratio {ours / theirs:.2f}x"
        print(line)

    print("\n3. caller-side ms to record and end one trace of ten spans sharing one document list")
    goals = {10_000: 0.1, 1_000_000: 2.0, 10_000_000: 20.0}
    mlflow_doc = {10_000: "1", 1_000_000: "50-100", 10_000_000: "150"}
    big_repeats = 3 if args.quick else 7
    for size, goal in goals.items():
        result = big_trace_ms(client, size, big_repeats if size < 10_000_000 else 3)
        print(
            f"   ~{size / 1e6:>5g} MB: {fmt(result, 'ms')}   goal <= {goal} ms, "
            f"MLflow documents ~{mlflow_doc[size]} ms"
        )

    print(
        '\n4. "many realistic spans": caller-side ms from start_trace to end_trace of an agent '
        "trace\n   (retrieval, chat and tool spans with distinct text), beside the orjson floor "
        "in the same run"
    )
    for size, goal_text in ((10_000, "< 0.1 ms"), (1_000_000, "<= 1.5x"), (10_000_000, "<= 1.5x")):
        spans = realistic_spans(size)
        carried = sum(len(orjson.dumps(s[2])) + len(orjson.dumps(s[3])) for s in spans)
        rounds = {10_000: 50, 1_000_000: big_repeats}.get(size, 5)
        ours, floor = realistic_ms(client, spans, rounds)
        ratio = statistics.median(ours) / statistics.median(floor)
        best = min(ours) / min(floor)
        print(
            f"   {carried / 1e6:6.3f} MB, {len(spans) + 1:5} spans: "
            f"lowtrace     {fmt(ours, 'ms')}\n"
            f"   {'':26}orjson floor {fmt(floor, 'ms')}\n"
            f"   {'':26}ratio {ratio:.2f}x (of medians; {best:.2f}x of minimums), "
            f"goal {goal_text}"
        )
    client.close()
    stats = client.stats()
    print(f"\nexported {stats.exporters[-1].exported:,} traces, lost {stats.lost_traces}")


if __name__ == "__main__":
    sys.exit(main())
