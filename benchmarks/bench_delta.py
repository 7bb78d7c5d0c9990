"""Delta Lake inference table beside the ``jsonl.zst`` table: ingest rate and bytes on disk.

    python benchmarks/bench_delta.py [--traces 20000] [--quick]

1. Ingest: the traces of ``bench_store.py`` (5 spans, ~1 KB of inputs+outputs per span)
   ended through a TracingClient into a fresh table; spans/s and traces/s from the first
   start_trace to the end of ``flush()`` (the client flushes every 2,000 traces, so the
   Delta table gets one commit per 2,000 traces).
2. Size: bytes on disk per trace (all files of the table, Delta log included), and for
   Delta the number of data files before and after ``compact()``.
3. Reads over the Delta table: the newest page, a time-pruned search, full-scan searches,
   ``get_trace``.
A benchmark, not a test: it reports numbers and asserts nothing. It prints the load
average, since the numbers mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import SPANS_PER_TRACE, ingest

from lowtrace._stores.uri import open_store


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median_ms(call: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="4,000 traces")
    args = parser.parse_args(argv)
    traces = 4_000 if args.quick else args.traces
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"lowtrace Delta benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load}"
    )
    print(f"{traces:,} traces x {SPANS_PER_TRACE} spans (~1 KB per span)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, uri, path in (
            ("jsonl.zst", f"jsonl://{tmp}/t.jsonl.zst", Path(tmp, "t.jsonl.zst")),
            ("delta", f"delta://{tmp}/table", Path(tmp, "table")),
        ):
            per_trace, per_span = ingest(uri, traces)
            size = disk_bytes(path)
            print(
                f"{label:10} ingest {per_span:10,.0f} spans/s {per_trace:8,.0f} traces/s   "
                f"on disk {size / traces:7,.0f} bytes/trace ({size / 1e6:.1f} MB)"
            )
        store = open_store(f"delta://{tmp}/table", create=False)
        files = len(list(Path(tmp, "table").rglob("*.parquet")))
        done = store.compact(retention_hours=0)  # type: ignore[attr-defined]
        size = disk_bytes(Path(tmp, "table"))
        print(
            f"delta after compact: {files} -> {files - done['files_removed'] + done['files_added']}"
            f" data files, {size / traces:,.0f} bytes/trace"
        )
        newest = store.search_traces(max_results=1)[0]
        recent = f"start_time_ms > {newest.info.start_time_ms - 1000}"
        print("delta reads (median of 5):")
        newest_page = median_ms(lambda: store.search_traces(max_results=50))
        print(f"   {'newest 50 (the traces list)':42} {newest_page:9.1f} ms")
        print(f"   {recent!r:42} {median_ms(lambda: store.search_traces(recent)):9.1f} ms")
        for text in ("tags.user = 'u42'", "span.type = 'TOOL' AND status = 'ERROR'"):
            print(f"   {text!r:42} {median_ms(lambda t=text: store.search_traces(t)):9.1f} ms")
        tid = newest.info.trace_id
        print(f"   {'get_trace':42} {median_ms(lambda: store.get_trace(tid)):9.1f} ms")
        store.shutdown()


if __name__ == "__main__":
    main()
