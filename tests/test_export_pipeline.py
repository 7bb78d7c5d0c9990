"""The background export pipeline: never blocks the caller, retries, counts every loss."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from lowtrace import Limits, PipelineConfig, SpanStatus, Trace, TracingClient

FAST_RETRY = PipelineConfig(backoff_initial_s=0.001, backoff_max_s=0.01, max_attempts=4)


class Collector:
    """An exporter that keeps what it receives."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.shutdowns = 0

    def export(self, traces: Sequence[Trace]) -> None:
        self.traces.extend(traces)

    def shutdown(self) -> None:
        self.shutdowns += 1


class Flaky(Collector):
    """Fails the first ``failures`` calls, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def export(self, traces: Sequence[Trace]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("destination down")
        super().export(traces)


class Stuck(Collector):
    """Blocks inside export() until released (a hung network call)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def export(self, traces: Sequence[Trace]) -> None:
        self.entered.set()
        self.release.wait(30)
        super().export(traces)


def run_traces(client: TracingClient, count: int) -> list[str]:
    ids = []
    for n in range(count):
        root = client.start_trace(f"t{n}")
        client.end_trace(root.trace_id)
        ids.append(root.trace_id)
    return ids


def test_every_exporter_gets_every_trace() -> None:
    a, b = Collector(), Collector()
    with TracingClient("memory://", exporters=[a, b]) as client:
        ids = run_traces(client, 25)
        assert client.flush(5)
        assert [t.info.trace_id for t in a.traces] == ids
        assert [t.info.trace_id for t in b.traces] == ids
        assert client.count_traces() == 25
        stats = client.stats().exporters
        assert [s.exported for s in stats] == [25, 25, 25]
    assert a.shutdowns == b.shutdowns == 1


def test_a_flaky_exporter_is_retried_until_it_delivers() -> None:
    flaky = Flaky(failures=3)
    with TracingClient("memory://", exporters=[flaky], pipeline=FAST_RETRY) as client:
        ids = run_traces(client, 3)
        assert client.flush(10)
        assert sorted(t.info.trace_id for t in flaky.traces) == sorted(ids)
        stats = client.stats().exporters[1]
        assert stats.retried >= 1 and stats.failed == 0 and stats.exported == 3


def test_a_dead_exporter_is_counted_never_blocks_and_flush_says_so() -> None:
    dead = Flaky(failures=10**9)
    with TracingClient("memory://", exporters=[dead], pipeline=FAST_RETRY) as client:
        run_traces(client, 2)
        assert client.flush(10) is False
        stats = client.stats()
        assert stats.exporters[1].failed >= 1
        assert stats.exporters[0].exported == 2  # the store is not held back by it
        assert stats.lost_traces >= 1


def test_a_full_queue_drops_instead_of_blocking() -> None:
    stuck = Stuck()
    config = PipelineConfig(max_queue_traces=2)
    with TracingClient("memory://", exporters=[stuck], pipeline=config) as client:
        run_traces(client, 1)
        assert stuck.entered.wait(5)  # the worker is now stuck inside export()
        started = time.perf_counter()
        run_traces(client, 10)
        assert time.perf_counter() - started < 1.0  # the caller never waited
        assert client.stats().exporters[1].dropped == 8
        stuck.release.set()
        assert client.flush(5) is False  # losses since the last flush are reported once
        run_traces(client, 2)
        assert client.flush(5) is True
        assert len(stuck.traces) == 5


def test_close_is_bounded_when_the_destination_hangs() -> None:
    stuck = Stuck()
    client = TracingClient("memory://", exporters=[stuck])
    run_traces(client, 1)
    assert stuck.entered.wait(5)
    started = time.perf_counter()
    assert client.close(timeout=0.5) is False
    assert time.perf_counter() - started < 2.0
    stuck.release.set()


class HangsInFlushAndShutdown(Collector):
    """Takes every trace, but its ``flush()`` and ``shutdown()`` hang (a dead backend)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def flush(self) -> None:
        self.release.wait(60)

    def shutdown(self) -> None:
        self.release.wait(60)


def test_flush_and_close_are_bounded_when_the_exporters_own_flush_or_shutdown_hangs() -> None:
    hangs = HangsInFlushAndShutdown()
    client = TracingClient("memory://", exporters=[hangs])
    run_traces(client, 1)
    started = time.perf_counter()
    assert client.flush(timeout=0.5) is False  # its flush() did not finish: not delivered
    assert client.close(timeout=0.5) is False
    assert time.perf_counter() - started < 5.0
    hangs.release.set()
    assert len(hangs.traces) == 1


def test_close_abandons_live_traces_and_delivers_them() -> None:
    sink = Collector()
    client = TracingClient("memory://", exporters=[sink])
    root = client.start_trace("still running")
    client.start_span("child", trace_id=root.trace_id, parent_id=root.span_id)
    assert client.close()
    (trace,) = sink.traces
    assert trace.info.status is SpanStatus.ERROR
    assert "abandoned" in (trace.info.status_message or "")
    assert all(s.status is SpanStatus.ERROR for s in trace.spans)


def test_idle_traces_are_abandoned_and_exported() -> None:
    sink = Collector()
    limits = Limits(idle_timeout_s=0.05)
    with TracingClient("memory://", exporters=[sink], limits=limits) as client:
        root = client.start_trace("forgotten")
        deadline = time.monotonic() + 10
        while not sink.traces and time.monotonic() < deadline:
            client.flush(0.1)
        (trace,) = sink.traces
        assert trace.info.trace_id == root.trace_id
        assert "idle" in (trace.info.status_message or "")
        assert client.stats().abandoned_traces == 1


def test_live_trace_cap_abandons_the_oldest() -> None:
    sink = Collector()
    with TracingClient("memory://", exporters=[sink], limits=Limits(max_live_traces=2)) as c:
        first = c.start_trace("first")
        c.start_trace("second")
        c.start_trace("third")
        assert c.flush(5)
        assert [t.info.trace_id for t in sink.traces] == [first.trace_id]
        assert "more than 2 live traces" in (sink.traces[0].info.status_message or "")
        assert c.stats().live_traces == 2


def test_stats_count_what_happened() -> None:
    with TracingClient("memory://") as client:
        run_traces(client, 3)
        client.start_trace("open")
        assert client.flush(5)
        stats = client.stats()
    assert (stats.started_traces, stats.finished_traces, stats.live_traces) == (4, 3, 1)


def test_interpreter_exit_delivers_what_is_queued(tmp_path: Path) -> None:
    db = tmp_path / "exit.db"
    script = textwrap.dedent(f"""
        from lowtrace import TracingClient
        client = TracingClient("sqlite:///{db}")
        for n in range(20):
            root = client.start_trace(f"t{{n}}")
            client.end_trace(root.trace_id)
        # no flush, no close: atexit must deliver
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with TracingClient(f"sqlite:///{db}") as reader:
        assert reader.count_traces() == 20


def test_interpreter_exit_with_a_hung_destination_is_bounded() -> None:
    script = textwrap.dedent("""
        import threading
        from lowtrace import PipelineConfig, TracingClient
        class Hang:
            def export(self, traces):
                threading.Event().wait()
        client = TracingClient("memory://", exporters=[Hang()],
                               pipeline=PipelineConfig(shutdown_timeout_s=1))
        root = client.start_trace("t")
        client.end_trace(root.trace_id)
    """)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert time.perf_counter() - started < 15


@pytest.mark.parametrize("size", [10_000, 1_000_000])
def test_end_trace_does_not_wait_for_the_store(tmp_path: Path, size: int) -> None:
    stuck = Stuck()
    with TracingClient(f"sqlite:///{tmp_path}/t.db", exporters=[stuck]) as client:
        run_traces(client, 1)
        assert stuck.entered.wait(5)
        root = client.start_trace("big", inputs={"text": "x" * size})
        started = time.perf_counter()
        client.end_trace(root.trace_id, outputs={"text": "y" * size})
        assert time.perf_counter() - started < 0.5
        stuck.release.set()
        assert client.flush(10)
        assert client.get_trace(root.trace_id) is not None
