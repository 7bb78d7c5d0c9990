"""SQLite store: ingest rate and search latency over a large store.

    python benchmarks/bench_store.py [--traces 100000] [--quick]

1. Ingest: traces of 5 spans with ~1 KB of inputs+outputs per span, ended through a
   TracingClient and written by its background worker into a fresh SQLite file; reports
   spans/s and traces/s from the first start_trace to the end of ``flush()``.
   With ``--postgres`` the server's CPU is measured too: on a 2-core machine the client
   and the server share the cores, so the wall-clock rate is bounded by their sum.
2. Search: median latency of indexed searches returning one page (100 traces) over the
   whole store: by status, by tag, by duration range, by span type, plus a count.
A benchmark, not a test: it reports numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lowtrace import SpanType, TracingClient

SPANS_PER_TRACE = 5
TEXT = ("Retrieved passage about the capital of France and its history. " * 8)[:480]


def ingest(uri: str, traces: int, spread_s: float = 0.0) -> tuple[float, float]:
    """(traces/s, spans/s) from the first start to the end of flush().

    ``spread_s`` back-dates the traces evenly over that many seconds before now (as a day
    of traffic looks to a dashboard); 0 stamps each with the time it is recorded.
    Also prints spans per CPU-second of this process (caller and worker threads together):
    on a loaded machine the wall-clock rate says more about the neighbours than about us.
    """
    client = TracingClient(uri)
    kinds = [SpanType.RETRIEVER, SpanType.TOOL, SpanType.CHAT_MODEL, SpanType.PARSER]
    cpu_started = time.process_time()
    started = time.perf_counter()
    for n in range(traces):
        root = client.start_trace(
            "agent",
            inputs={"question": TEXT},
            tags={"env": ("prod", "dev")[n % 2], "user": f"u{n % 100}"},
            start_time_ns=time.time_ns() - int(spread_s * 1e9 * (1 - n / traces)),
        )
        for k in range(SPANS_PER_TRACE - 1):
            span = client.start_span(
                f"step{k}",
                trace_id=root.trace_id,
                parent_id=root.span_id,
                span_type=kinds[(n + k) % 4],
                inputs={"text": TEXT},
            )
            span.end(outputs={"text": TEXT})
        client.end_trace(
            root.trace_id,
            outputs={"answer": TEXT},
            status="ERROR" if n % 10 == 0 else None,
            end_time_ns=root.start_time_ns + (n % 1000) * 1_000_000,
        )
        if n % 2000 == 1999:
            client.flush()  # keep the queue bounded: the benchmark should not drop
    ok = client.flush()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"   ({traces * SPANS_PER_TRACE / cpu:,.0f} spans per CPU-second of this process, "
        f"{cpu / elapsed:.2f} CPUs busy on average)"
    )
    lost = client.stats().lost_traces
    client.close()
    if not ok or lost:
        print(f"   WARNING: {lost} traces lost during ingest")
    return traces / elapsed, traces * SPANS_PER_TRACE / elapsed


def search_ms(uri: str, repeats: int) -> dict[str, list[float]]:
    client = TracingClient(uri)
    queries = {
        "status = 'ERROR'": {"filter": "status = 'ERROR'"},
        "tags.user = 'u42'": {"filter": "tags.user = 'u42'"},
        "duration_ms range": {"filter": "duration_ms >= 200 AND duration_ms < 300"},
        "span.type = 'TOOL'": {"filter": "span.type = 'TOOL'"},
        "newest page": {"filter": None},
        "by duration DESC": {"filter": "status = 'OK'", "order_by": "duration_ms DESC"},
    }
    results: dict[str, list[float]] = {}
    for label, query in queries.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            page = client.search_traces(
                query["filter"], order_by=query.get("order_by"), max_results=100
            )
            times.append((time.perf_counter() - started) * 1e3)
            assert len(page) == 100
        results[label] = times
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.count_traces("status = 'ERROR'")
        times.append((time.perf_counter() - started) * 1e3)
    results["count status = 'ERROR'"] = times
    client.close()
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 traces")
    parser.add_argument(
        "--postgres", action="store_true", help="also PostgreSQL: a throwaway local server"
    )
    args = parser.parse_args(argv)
    traces = 10_000 if args.quick else args.traces
    print(f"lowtrace store benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        report("SQLite (WAL, synchronous=NORMAL)", f"sqlite:///{tmp}/bench.db", traces)
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.postgres_server import postgres_server

        with postgres_server(fsync=True) as dsn:
            report("PostgreSQL (local server, fsync on)", dsn, traces)


def server_cpu_s(dsn: str) -> float | None:
    """CPU seconds used so far by a local PostgreSQL server: its processes, and those that
    ended (the postmaster's reaped children). None when it runs elsewhere or as another
    user whose /proc entries cannot be read."""
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            data = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
        postmaster = int(Path(data, "postmaster.pid").read_text().split()[0])
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(entry.name) == postmaster:
                ticks += sum(int(f) for f in fields[11:15])  # own and reaped children's
            elif int(fields[1]) == postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, psycopg.Error):
        return None


def report(label: str, uri: str, traces: int) -> None:
    server_started = server_cpu_s(uri) if uri.startswith("postgresql") else None
    per_trace, per_span = ingest(uri, traces)
    if server_started is not None:
        time.sleep(0.2)  # the store's connections ended: let the postmaster reap them
        server = server_cpu_s(uri)
        if server is not None:
            used = server - server_started
            print(
                f"   (server: {used:.2f} CPU-s, "
                f"{traces * SPANS_PER_TRACE / max(used, 1e-9):,.0f} spans per server CPU-second)"
            )
    if uri.startswith("postgresql"):
        # What autovacuum does on its own soon after a bulk load: fresh planner statistics.
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("ANALYZE")
        label += ", after ANALYZE"
    print(
        f"{label}\n1. ingest of {traces:,} traces x {SPANS_PER_TRACE} spans (~1 KB per span): "
        f"{per_span:,.0f} spans/s, {per_trace:,.0f} traces/s"
    )
    print(f"2. search over {traces:,} traces, one page of 100 (median of 7, ms)")
    for query, times in search_ms(uri, 7).items():
        print(
            f"   {query:28} {statistics.median(times):8.2f} ms   "
            f"(min {min(times):.2f}, max {max(times):.2f})"
        )


if __name__ == "__main__":
    main()
