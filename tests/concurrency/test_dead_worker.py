"""An export worker that dies (it should not; a bug or an interpreter-level failure could
make it) is restarted by the next trace that ends, not only by ``flush()`` or ``close()``."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from lowtrace import PipelineConfig, Trace, TracingClient
from lowtrace._lane import Lane

TIMEOUT = 30


class Sink:
    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.arrived = threading.Event()

    def export(self, traces: Sequence[Trace]) -> None:
        self.traces.extend(traces)
        self.arrived.set()


def test_the_next_trace_restarts_a_dead_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    deliver = Lane._deliver

    def dies_once(lane: Lane, batch: list[Trace]) -> tuple[int, int, int]:
        if not died:
            raise RuntimeError("the worker dies")
        return deliver(lane, batch)

    monkeypatch.setattr(Lane, "_deliver", dies_once)
    sink = Sink()
    client = TracingClient("none://", exporters=[sink], pipeline=PipelineConfig(export_delay_s=0))
    try:
        client.end_trace(client.start_trace("first").trace_id)
        (lane,) = client._pipeline.lanes
        assert lane.thread is not None
        lane.thread.join(TIMEOUT)  # the worker died exporting the first trace
        assert not lane.thread.is_alive()
        assert [str(exc) for exc in died] == ["the worker dies"]
        client.end_trace(client.start_trace("second").trace_id)
        # No flush(): the trace that ended restarted the worker, which delivers it.
        assert sink.arrived.wait(TIMEOUT)
        assert [t.info.name for t in sink.traces] == ["second"]
        (stats,) = client.stats().exporters
        assert (stats.exported, stats.failed) == (1, 1)  # the first was counted, not lost
    finally:
        client.close()
