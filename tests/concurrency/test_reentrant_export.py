"""An exporter that calls back into its client from inside ``export()``: no hang, no error
outside the ``lowtrace.errors`` tree, and the pipeline still shuts down completely."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from lowtrace import Trace, TracingClient


class CallsBack:
    """Runs ``action(client)`` from inside its first ``export()`` and keeps the outcome."""

    def __init__(self, action: Callable[[TracingClient], object]) -> None:
        self.action = action
        self.client: TracingClient | None = None
        self.outcome: list[object] = []
        self.traces: list[Trace] = []
        self.shut_down = threading.Event()
        self.called_back = threading.Event()

    def export(self, traces: Sequence[Trace]) -> None:
        self.traces.extend(traces)
        if not self.outcome and self.client is not None:
            try:
                self.outcome.append(self.action(self.client))
            except Exception as exc:  # what the callback raised is the finding
                self.outcome.append(exc)
            self.called_back.set()

    def shutdown(self) -> None:
        self.shut_down.set()


def in_thread(call: Callable[[], object], timeout: float = 20) -> list[object]:
    """Run ``call`` where a hang cannot hang the test run; [] if it did not return."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(timeout)
    return result


def test_flush_without_timeout_inside_export_returns_instead_of_waiting_for_itself() -> None:
    sink = CallsBack(lambda client: client.flush())
    client = TracingClient("memory://", exporters=[sink])
    sink.client = client
    root = client.start_trace("agent")
    client.end_trace(root.trace_id)
    assert in_thread(client.flush) == [True]  # the outer flush sees the trace delivered
    assert sink.outcome == [False]  # the inner one could not wait for its own batch
    assert [t.info.trace_id for t in sink.traces] == [root.trace_id]
    client.close()


def test_close_inside_export_stops_everything_without_raising() -> None:
    sink = CallsBack(lambda client: client.close(timeout=2))
    client = TracingClient("memory://", exporters=[sink])
    sink.client = client
    root = client.start_trace("agent")
    client.end_trace(root.trace_id)
    assert sink.called_back.wait(5)
    assert sink.shut_down.is_set()  # close() went all the way, to the exporters' shutdown
    # Its own batch was still being exported, so close() could not call it delivered.
    assert sink.outcome == [False]
    assert client.get_trace(root.trace_id) is not None
