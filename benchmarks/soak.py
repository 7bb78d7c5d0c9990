"""Soak: writers, forks, flapping and hostile exporters, hostile values; every trace counted.

    python benchmarks/soak.py [--seconds 20] [--threads 6] [--forks 4] [--rate 2000]
                              [--fork-method forkserver|fork]

For a bounded time, writer threads record traces (some carrying lone surrogates, ints past
64 bits and right-to-left overrides) into one client whose SQLite store is joined by three
exporters: one that flaps (down for a while, then up), one that sometimes raises a
``BaseException`` (``SystemExit``, ``CancelledError``, ``KeyboardInterrupt``), and one that
rejects the traces marked for it (a final answer). Meanwhile forked ``multiprocessing``
workers record traces with their own client and exit without flushing.

Then, per destination: produced = delivered + dropped + rejected + failed, where delivered
is what the destination itself holds; forked workers' traces must all be stored. Prints the
counts and exits 1 if any of them does not add up. A soak, not a benchmark: its timing
numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from lowtrace import ExportRejectedError, PipelineConfig, Trace, TracingClient

HOSTILE = ["lone \ud800 surrogate", "rtl \u202egnp.exe", "plain", "emoji \U0001f600"]
HUGE = 2**70
FORK_TRACES = 50


class Destination:
    """An exporter that remembers which traces it accepted (once each)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: set[str] = set()
        self.duplicates = 0
        self.calls = 0

    def accept(self, traces: Sequence[Trace]) -> None:
        with self.lock:
            for trace in traces:
                if trace.info.trace_id in self.accepted:
                    self.duplicates += 1
                self.accepted.add(trace.info.trace_id)

    def export(self, traces: Sequence[Trace]) -> None:
        with self.lock:
            self.calls += 1
        self.check(traces)
        self.accept(traces)

    def check(self, traces: Sequence[Trace]) -> None:
        """Raise to refuse the batch."""


class Flapping(Destination):
    """Down for ``period`` seconds, up for ``period`` seconds, until told to settle."""

    def __init__(self, period: float) -> None:
        super().__init__()
        self.period = period
        self.started = time.monotonic()
        self.settled = False

    def check(self, traces: Sequence[Trace]) -> None:
        phase = int((time.monotonic() - self.started) / self.period) % 2
        if phase == 1 and not self.settled:
            raise ConnectionError("collector down")


class Hostile(Destination):
    """Raises a BaseException now and then (what a cancelled task or a bad plugin does)."""

    ERRORS = (SystemExit, asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.random = random.Random(seed)

    def check(self, traces: Sequence[Trace]) -> None:
        with self.lock:
            unlucky = self.random.random() < 0.2
            error = self.random.choice(self.ERRORS)
        if unlucky:
            raise error()


class Picky(Destination):
    """Rejects (a final answer) every batch holding a trace marked ``reject-me``."""

    def check(self, traces: Sequence[Trace]) -> None:
        if any(t.info.tags.get("reject-me") for t in traces):
            raise ExportRejectedError("400 Bad Request: reject-me")


def writer(
    client: TracingClient, stop: threading.Event, seed: int, rate: float, out: list[int]
) -> None:
    rng = random.Random(seed)
    started = time.monotonic()
    produced = rejected = 0
    while not stop.is_set():
        text = rng.choice(HOSTILE)
        marked = rng.random() < 0.01
        tags = {"origin": "main", "text": text, **({"reject-me": "yes"} if marked else {})}
        root = client.start_trace(
            f"agent {text}", tags=tags, attributes={"n": HUGE, text: text}, inputs={"q": text}
        )
        span = client.start_span(
            f"step {text}", trace_id=root.trace_id, parent_id=root.span_id, inputs=[HUGE]
        )
        span.add_event(f"event {text}", {"n": -HUGE, "s": text})
        client.end_span(root.trace_id, span.span_id, outputs={text: HUGE}, status_message=text)
        client.end_trace(root.trace_id, outputs=text)
        produced += 1
        rejected += marked
        ahead = produced / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)  # full speed would only measure the queue's bound
    out.extend([produced, rejected])


def fork_worker(uri: str, number: int) -> None:
    """Runs in a forked process: records with its own client, exits without flush.

    (A client inherited from the parent works for memory and JSONL destinations; SQLite
    connections are not fork-safe until the store re-opens them in the child.)
    """
    client = TracingClient(uri, pipeline=PipelineConfig(shutdown_timeout_s=60))
    for n in range(FORK_TRACES):
        root = client.start_trace(f"fork {number}.{n}", tags={"origin": "fork"})
        client.end_trace(root.trace_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--forks", type=int, default=4, help="forked workers per second")
    parser.add_argument("--rate", type=float, default=2000, help="traces/s per writer")
    parser.add_argument(
        "--fork-method",
        choices=("fork", "forkserver"),
        default="forkserver",
        help="how workers start (both end with os._exit, skipping atexit); with fork, a "
        "worker forked during a SQLite write can hang until the store's fork handler lands",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="lowtrace-soak-"))
    uri = f"sqlite:///{workdir}/soak.db"
    flapping, hostile, picky = Flapping(period=0.7), Hostile(seed=7), Picky()
    config = PipelineConfig(backoff_initial_s=0.1, backoff_max_s=1.0, shutdown_timeout_s=120)
    client = TracingClient(uri, exporters=[flapping, hostile, picky], pipeline=config)

    stop = threading.Event()
    results: list[list[int]] = [[] for _ in range(args.threads)]
    threads = [
        threading.Thread(target=writer, args=(client, stop, seed, args.rate, results[seed]))
        for seed in range(args.threads)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    stopper = threading.Timer(args.seconds, stop.set)
    stopper.start()
    context = multiprocessing.get_context(args.fork_method)
    forks = hung = 0
    while not stop.is_set():
        batch = [
            context.Process(target=fork_worker, args=(uri, forks + i)) for i in range(args.forks)
        ]
        for process in batch:
            process.start()
        for process in batch:
            process.join(90)
            if process.exitcode is None:
                hung += 1
                process.kill()
                process.join()
            elif process.exitcode != 0:
                print(f"worker exited with {process.exitcode}", file=sys.stderr)
        forks += len(batch)
        stop.wait(1.0)
    stop.set()
    for thread in threads:
        thread.join(60)
    flapping.settled = True  # the collector comes back for good: what is queued drains
    client.close()
    elapsed = time.monotonic() - started

    produced = sum(r[0] for r in results)
    marked = sum(r[1] for r in results)
    stats = {s.name: s for s in client.stats().exporters}
    with TracingClient(uri) as reader:
        stored_main = reader.count_traces("tags.origin = 'main'")
        stored_fork = reader.count_traces("tags.origin = 'fork'")
        sample = reader.search_traces("tags.origin = 'main'", max_results=1)

    print(f"soak: {elapsed:.1f} s, {args.threads} writer threads, {forks} forked workers")
    print(f"produced: {produced} traces in threads ({marked} marked reject-me), ", end="")
    print(f"{forks * FORK_TRACES} in forked workers")
    ok = True
    held = {
        "Flapping": len(flapping.accepted),
        "Hostile": len(hostile.accepted),
        "Picky": len(picky.accepted),
    }
    for name, s in stats.items():
        delivered = stored_main if name.startswith("sqlite") else held[name]
        total = delivered + s.dropped + s.rejected + s.failed + s.queued
        line = (
            f"  {name[:40]:40} stored/held {delivered:>7}  exported {s.exported:>7}  "
            f"dropped {s.dropped:>5}  rejected {s.rejected:>5}  failed {s.failed:>5}  "
            f"queued {s.queued}  retried {s.retried}"
        )
        adds_up = total == produced and delivered == s.exported and s.queued == 0
        print(line + ("" if adds_up else "   <-- DOES NOT ADD UP"))
        ok = ok and adds_up
    if stats["Picky"].rejected + stats["Picky"].dropped < marked:
        print("  Picky rejected fewer traces than were marked")
        ok = False
    duplicates = flapping.duplicates + hostile.duplicates + picky.duplicates
    if duplicates:
        print(f"  {duplicates} trace(s) delivered twice")
        ok = False
    fork_ok = stored_fork == forks * FORK_TRACES and not hung
    print(f"  forked workers: stored {stored_fork} of {forks * FORK_TRACES}, {hung} hung")
    ok = ok and fork_ok
    if sample:
        print(f"  a stored hostile trace reads back: {sample[0].info.name!r}")
    print("OK: every trace is accounted for" if ok else "FAILED: the counts do not add up")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
