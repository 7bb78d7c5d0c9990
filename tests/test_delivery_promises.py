"""What the export pipeline promises under faults: final answers, isolation, honest flush."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from lowtrace import ExportRejectedError, PipelineConfig, Trace, TracingClient

FAST_RETRY = PipelineConfig(backoff_initial_s=0.001, backoff_max_s=0.01, max_attempts=4)


class Recorder:
    """Keeps what it receives and how often it was called."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.calls = 0
        self.called = threading.Event()

    def export(self, traces: Sequence[Trace]) -> None:
        self.calls += 1
        self.called.set()
        self.check(traces)
        self.traces.extend(traces)

    def check(self, traces: Sequence[Trace]) -> None:
        """Raise to refuse the batch."""


def end_traces(client: TracingClient, *names: str) -> list[str]:
    ids = []
    for name in names:
        root = client.start_trace(name)
        client.end_trace(root.trace_id)
        ids.append(root.trace_id)
    return ids


def flush_in_thread(client: TracingClient) -> bool | None:
    """flush() without a timeout, run where a hang cannot hang the test run."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(client.flush()), daemon=True)
    thread.start()
    thread.join(20)
    return result[0] if result else None


@pytest.mark.parametrize(
    "error",
    [SystemExit(3), asyncio.CancelledError(), KeyboardInterrupt(), GeneratorExit()],
    ids=lambda e: type(e).__name__,
)
def test_an_exporter_raising_base_exception_keeps_its_worker(error: BaseException) -> None:
    class RaisesOnce(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            if self.calls == 1:
                raise error

    sink = RaisesOnce()
    with TracingClient("memory://", exporters=[sink], pipeline=FAST_RETRY) as client:
        ids = end_traces(client, "a", "b")
        assert flush_in_thread(client) is True  # returns, and nothing was lost
        assert [t.info.trace_id for t in sink.traces] == ids
        assert client.stats().exporters[1].failed == 0
        assert end_traces(client, "c") and flush_in_thread(client) is True


def test_a_rejected_batch_is_final_counted_and_makes_flush_false() -> None:
    class Rejects(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            if any(t.info.name == "refused" for t in traces):
                raise ExportRejectedError("400 Bad Request")

    sink = Rejects()
    with TracingClient("memory://", exporters=[sink], pipeline=FAST_RETRY) as client:
        end_traces(client, "refused")
        assert client.flush(10) is False
        assert sink.calls == 1  # a final answer is never retried
        stats = client.stats().exporters[1]
        assert (stats.rejected, stats.retried, stats.failed, stats.lost) == (1, 0, 0, 1)
        end_traces(client, "fine")
        assert client.flush(10) is True  # each loss is reported by the flush that saw it


class Unprintable(ConnectionError):
    """An error whose text cannot be made: logging it raises from the exporter's code."""

    def __str__(self) -> str:
        raise KeyboardInterrupt("from __str__")

    def __repr__(self) -> str:
        raise SystemExit("from __repr__")


class UnprintableRejection(ExportRejectedError):
    def __str__(self) -> str:
        raise KeyboardInterrupt("from __str__")

    def __repr__(self) -> str:
        raise SystemExit("from __repr__")


@pytest.mark.parametrize("error", [Unprintable, UnprintableRejection])
def test_an_error_that_cannot_be_printed_is_counted_and_keeps_the_worker(
    error: type[Exception],
) -> None:
    class FailsOnce(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            if self.calls == 1:
                raise error()

    sink = FailsOnce()
    config = PipelineConfig(max_attempts=1, export_delay_s=0)
    with TracingClient("memory://", exporters=[sink], pipeline=config) as client:
        end_traces(client, "lost")
        assert flush_in_thread(client) is False
        stats = client.stats().exporters[1]
        assert (stats.failed, stats.rejected) == ((1, 0) if error is Unprintable else (0, 1))
        sink.called.clear()
        end_traces(client, "next")  # no flush: the worker itself must still be there
        assert sink.called.wait(10)
        assert [t.info.name for t in sink.traces] == ["next"]


class Disguised(ConnectionError):
    """An error whose ``__class__`` raises: ``isinstance`` on it raises too."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise KeyboardInterrupt("from __class__")


def test_an_error_whose_class_cannot_be_read_is_retried_and_keeps_the_worker() -> None:
    class FailsOnce(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            if self.calls == 1:
                raise Disguised()

    sink = FailsOnce()
    config = PipelineConfig(
        backoff_initial_s=0.001, backoff_max_s=0.01, max_attempts=4, export_delay_s=0
    )
    with TracingClient("none://", exporters=[sink], pipeline=config) as client:
        end_traces(client, "retried")
        assert sink.called.wait(10)
        sink.called.clear()
        end_traces(client, "next")  # no flush: the worker itself must still be there
        assert sink.called.wait(10)
        assert flush_in_thread(client) is True
        (stats,) = client.stats().exporters
        assert (stats.exported, stats.failed) == (2, 0)


def test_one_bad_trace_is_isolated_and_the_rest_of_its_batch_delivered() -> None:
    class ChokesOnOne(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            if any(t.info.name == "poison" for t in traces):
                raise ValueError("cannot encode")

    sink = ChokesOnOne()
    config = PipelineConfig(
        export_delay_s=60, backoff_initial_s=0.001, backoff_max_s=0.01, max_attempts=3
    )
    with TracingClient("memory://", exporters=[sink], pipeline=config) as client:
        names = [f"t{n}" for n in range(40)]
        names[17] = "poison"
        ids = end_traces(client, *names)
        assert client.flush(10) is False  # one trace was given up on
        delivered = [t.info.trace_id for t in sink.traces]
        assert delivered == [tid for tid, name in zip(ids, names, strict=True) if name != "poison"]
        stats = client.stats().exporters[1]
        assert (stats.exported, stats.failed, stats.lost) == (39, 1, 1)


def test_a_rejected_batch_is_split_so_the_acceptable_traces_arrive() -> None:
    class RejectsOne(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            if any(t.info.name == "refused" for t in traces):
                raise ExportRejectedError("400")

    sink = RejectsOne()
    config = PipelineConfig(export_delay_s=60)
    with TracingClient("memory://", exporters=[sink], pipeline=config) as client:
        end_traces(client, "a", "refused", "b")
        assert client.flush(10) is False
        assert [t.info.name for t in sink.traces] == ["a", "b"]
        stats = client.stats().exporters[1]
        assert (stats.exported, stats.rejected, stats.failed) == (2, 1, 0)


def test_retry_sleeps_are_not_cut_short_by_new_work_or_flush() -> None:
    class Down(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            raise ConnectionError("collector down")

    sink = Down()
    # A first pause drawn from [0, 1000 s): new traces and flush() calls must not end it.
    config = PipelineConfig(
        backoff_initial_s=1000, max_attempts=6, max_batch_traces=4, export_delay_s=0
    )
    client = TracingClient("memory://", exporters=[sink], pipeline=config)
    end_traces(client, "first")
    assert sink.called.wait(10)
    end_traces(client, *[f"t{n}" for n in range(200)])  # full batches notify the worker
    assert client.flush(0.3) is False
    assert sink.calls == 1  # still asleep before its second attempt
    started = time.monotonic()
    client.close(timeout=0.5)  # close() does end the sleep
    assert time.monotonic() - started < 5


def test_stats_do_not_count_a_none_store_as_a_destination() -> None:
    sink = Recorder()
    with TracingClient("none://", exporters=[sink]) as client:
        end_traces(client, "a")
        assert client.flush(5)
        assert [s.name for s in client.stats().exporters] == ["Recorder"]
        assert client.stats().exporters[0].exported == 1


class Stuck(Recorder):
    """Blocks inside export() until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def check(self, traces: Sequence[Trace]) -> None:
        self.release.wait(30)


def test_when_full_drop_drops_the_newest_whole_trace() -> None:
    stuck = Stuck()
    config = PipelineConfig(max_queue_traces=2, when_full="drop")
    with TracingClient("memory://", exporters=[stuck], pipeline=config) as client:
        end_traces(client, "taken")
        assert stuck.called.wait(5)
        end_traces(client, "q1", "q2", "newest")
        assert client.stats().exporters[1].dropped == 1
        stuck.release.set()
        assert client.flush(10) is False
        assert [t.info.name for t in stuck.traces] == ["taken", "q1", "q2"]


def test_when_full_block_waits_for_room_then_drops_and_counts() -> None:
    stuck = Stuck()
    config = PipelineConfig(max_queue_traces=1, when_full="block", block_timeout_s=0.2)
    with TracingClient("memory://", exporters=[stuck], pipeline=config) as client:
        end_traces(client, "taken")
        assert stuck.called.wait(5)
        end_traces(client, "queued", "waits then dropped")
        assert client.stats().exporters[1].dropped == 1
        stuck.release.set()
        assert client.flush(10) is False


def test_when_full_block_delivers_when_room_appears_in_time() -> None:
    stuck = Stuck()
    config = PipelineConfig(max_queue_traces=1, when_full="block", block_timeout_s=30)
    with TracingClient("memory://", exporters=[stuck], pipeline=config) as client:
        end_traces(client, "taken")
        assert stuck.called.wait(5)
        end_traces(client, "queued")
        releaser = threading.Timer(0.2, stuck.release.set)
        releaser.start()
        end_traces(client, "blocked until room")  # waits for the worker, then is queued
        releaser.join()
        assert client.flush(10) is True
        assert client.stats().exporters[1].dropped == 0
        assert [t.info.name for t in stuck.traces] == ["taken", "queued", "blocked until room"]


def test_when_full_is_validated() -> None:
    with pytest.raises(ValueError, match="when_full"):
        PipelineConfig(when_full="wait")  # type: ignore[arg-type]


def test_a_destination_that_rejects_everything_is_not_asked_once_per_trace() -> None:
    class RefusesAll(Recorder):
        def check(self, traces: Sequence[Trace]) -> None:
            raise ExportRejectedError("401 Unauthorized")

    sink = RefusesAll()
    config = PipelineConfig(export_delay_s=60)
    with TracingClient("memory://", exporters=[sink], pipeline=config) as client:
        end_traces(client, *[f"t{n}" for n in range(100)])
        assert client.flush(10) is False
        assert sink.calls <= 4  # the batch, then a few single probes
        stats = client.stats().exporters[1]
        assert (stats.rejected, stats.failed, stats.retried) == (100, 0, 0)


class Draining:
    """Sends traces by popping them off the batch it was given (it consumes the list)."""

    def __init__(self) -> None:
        self.sent: list[Trace] = []

    def export(self, traces: Sequence[Trace]) -> None:
        assert isinstance(traces, list)
        while traces:
            self.sent.append(traces.pop())


def test_an_exporter_that_consumes_its_batch_is_counted_as_delivered() -> None:
    drain = Draining()
    with TracingClient("none://", exporters=[drain], pipeline=FAST_RETRY) as client:
        for n in range(5):
            client.end_trace(client.start_trace(f"t{n}").trace_id)
        assert client.flush() is True
        (stats,) = client.stats().exporters
        assert (stats.exported, stats.failed) == (5, 0)
    assert len(drain.sent) == 5
