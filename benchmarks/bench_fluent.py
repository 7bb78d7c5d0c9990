"""Overhead of ``@lowtrace.trace`` on an empty function, beside ``mlflow.trace`` if installed.

    python benchmarks/bench_fluent.py [--quick]

Prints ns per call of an undecorated function, the traced one (a new trace per call), a
traced call nested in a traced parent (a child span), and the difference. A benchmark, not
a test: it reports numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import lowtrace
from lowtrace import Trace, TracingClient


class NullExporter:
    def export(self, traces: Sequence[Trace]) -> None:
        pass


def empty(x: int) -> int:
    return x


def ns_per_call(fn: Callable[[int], Any], calls: int, repeats: int) -> float:
    for i in range(calls // 10):
        fn(i)
    results = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for i in range(calls):
            fn(i)
        results.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(results)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    calls, repeats = (20_000, 3) if args.quick else (100_000, 7)
    print(f"lowtrace fluent benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs")

    client = TracingClient("none://", exporters=[NullExporter()])
    lowtrace.set_default_client(client)
    traced = lowtrace.trace(empty)

    @lowtrace.trace
    def parent(n: int) -> int:
        total = 0
        for i in range(n):
            total += traced(i)
        return total

    def nested(i: int) -> int:  # 100 child calls per parent: the cost of a child span
        return parent(100)

    bare = ns_per_call(empty, calls, repeats)
    root = ns_per_call(traced, calls, repeats)
    child = ns_per_call(nested, calls // 100, repeats) / 100
    client.flush()
    print(f"   undecorated call            {bare:10,.0f} ns")
    print(f"   @lowtrace.trace, new trace  {root:10,.0f} ns   (+{root - bare:,.0f} ns)")
    print(f"   @lowtrace.trace, child span {child:10,.0f} ns   (+{child - bare:,.0f} ns)")
    try:
        import mlflow
    except ImportError:
        print("   mlflow.trace                not installed")
    else:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # what mlflow-skinny supports
        mlflow.set_tracking_uri(f"file://{tempfile.mkdtemp(prefix='mlflow-bench-')}")
        mlflow.set_experiment("lowtrace-bench")
        theirs = ns_per_call(mlflow.trace(empty), calls // 10, repeats)
        print(
            f"   mlflow.trace, new trace     {theirs:10,.0f} ns   ({theirs / root:.1f}x lowtrace)"
        )
    lowtrace.set_default_client(None)
    client.close()


if __name__ == "__main__":
    main()
