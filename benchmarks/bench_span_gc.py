"""CPU per span and the garbage collector's share, lowtrace beside OpenTelemetry, alternating.

    python benchmarks/bench_span_gc.py [--rounds 5] [--traces 2000] [--threads 8]

The ``bench_client.py`` workload (a root + 10 children, explicit parents, two attributes
each). Each round runs ``--traces`` traces of lowtrace including export (``flush()``), then
as many through the OpenTelemetry SDK (simple processor, null exporter), and prints the
CPU time per span of both (``time.process_time``, so the export worker's share counts),
the collector's CPU time (a ``gc.callbacks`` timer) and the collections per generation.
Alternating keeps both sides under the same machine load; the ratio is the number to read.
It also prints how many objects the collector tracks per finished trace waiting in the
export queue (every young and old collection scans them until the worker takes them), and
the ``--threads`` throughput of both per CPU-second of the process as well as per second
of wall clock: on a shared machine the first does not depend on how much CPU others leave.
A benchmark, not a test: it reports numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench_client import SPANS, NullExporter, lowtrace_workload, otel_workload, throughput

from lowtrace import PipelineConfig, TracingClient


class GcTimer:
    """CPU time spent in collections, and how many ran per generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.runs = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started
            self.runs[info["generation"]] += 1

    def reset(self) -> None:
        self.seconds, self.runs = 0.0, [0, 0, 0]


def cpu_per_span(
    one: Callable[[], None], traces: int, settle: Callable[[], object], timer: GcTimer
) -> tuple[float, float, list[int]]:
    """(CPU us per span, collector CPU us per span, collections per generation)."""
    timer.reset()
    started = time.process_time()
    for _ in range(traces):
        one()
    settle()
    spans = traces * SPANS
    return (time.process_time() - started) / spans * 1e6, timer.seconds / spans * 1e6, timer.runs


def tracked_per_queued_trace(traces: int = 1000) -> float:
    """Objects the collector tracks per finished trace while it waits in the queue."""
    held = PipelineConfig(export_delay_s=60, max_batch_traces=traces * 2)
    with TracingClient("none://", exporters=[NullExporter()], pipeline=held) as client:
        one = lowtrace_workload(client)
        one()
        gc.collect()
        before = len(gc.get_objects())
        for _ in range(traces):
            one()
        gc.collect()
        return (len(gc.get_objects()) - before) / traces


def threaded(
    one: Callable[[], None], threads: int, settle: Callable[[], object]
) -> tuple[float, float]:
    """(spans per CPU-second, spans per second) with ``threads`` threads for one second."""
    cpu, wall = time.process_time(), time.perf_counter()
    rate = throughput(one, threads, 1.0, settle=settle)
    spans = rate * (time.perf_counter() - wall)
    return spans / (time.process_time() - cpu), rate


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    otel = otel_workload()
    if otel is None:
        sys.exit("needs the OpenTelemetry SDK: pip install opentelemetry-sdk")
    print(f"objects tracked per queued trace: {tracked_per_queued_trace():.1f}")
    client = TracingClient("none://", exporters=[NullExporter()])
    ours = lowtrace_workload(client)
    for _ in range(300):  # warm up both, and the export worker
        ours()
        otel()
    client.flush()
    timer = GcTimer()
    gc.callbacks.append(timer)
    ratios = []
    for _ in range(args.rounds):
        lt, lt_gc, lt_runs = cpu_per_span(ours, args.traces, client.flush, timer)
        ot, ot_gc, _ = cpu_per_span(otel, args.traces, lambda: None, timer)
        ratios.append(lt / ot)
        print(
            f"lowtrace {lt:5.2f} us/span (collector {lt_gc:4.2f}, collections {lt_runs})"
            f"   OpenTelemetry {ot:5.2f} (collector {ot_gc:4.2f})   ratio {lt / ot:.3f}"
        )
    print(f"median ratio {statistics.median(ratios):.3f} (goal <= 0.25)")
    gc.callbacks.remove(timer)
    per_cpu, per_wall = [], []
    for _ in range(3):
        (lt_cpu, lt_wall), (ot_cpu, ot_wall) = (
            threaded(ours, args.threads, client.flush),
            threaded(otel, args.threads, lambda: None),
        )
        per_cpu.append(lt_cpu / ot_cpu)
        per_wall.append(lt_wall / ot_wall)
        print(
            f"{args.threads} threads: lowtrace {lt_cpu:,.0f} spans/CPU-s ({lt_wall:,.0f}/s)"
            f"   OpenTelemetry {ot_cpu:,.0f} ({ot_wall:,.0f}/s)"
            f"   ratio {lt_cpu / ot_cpu:.2f}x (wall clock {lt_wall / ot_wall:.2f}x)"
        )
    print(
        f"median ratio {statistics.median(per_cpu):.2f}x per CPU-second, "
        f"{statistics.median(per_wall):.2f}x wall clock (goal >= 3x)"
    )
    client.close()


if __name__ == "__main__":
    main()
