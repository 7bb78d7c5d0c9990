"""``multiprocessing`` fork workers exit through ``os._exit``: their traces still arrive."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from lowtrace import Trace, TracingClient

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs the fork start method",
)

WORKERS = 4
TRACES = 20


def record_in_new_client(uri: str, worker: int) -> None:
    """A worker that makes its own client and returns without flush() or close()."""
    client = TracingClient(uri)
    for n in range(TRACES):
        root = client.start_trace(f"w{worker}-{n}")
        client.end_trace(root.trace_id)


_inherited: dict[str, TracingClient] = {}  # set by the parent before it forks


def record_in_inherited_client(worker: int) -> None:
    """A worker that uses a client made by the parent before the fork."""
    client = _inherited["client"]
    for n in range(TRACES):
        root = client.start_trace(f"w{worker}-{n}")
        client.end_trace(root.trace_id)


def run_workers(target: object, args: list[tuple[object, ...]], method: str = "fork") -> None:
    context = multiprocessing.get_context(method)
    workers = [context.Process(target=target, args=a) for a in args]  # type: ignore[attr-defined]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_fork_workers_with_their_own_client_deliver_at_exit(tmp_path: Path, method: str) -> None:
    uri = f"sqlite:///{tmp_path}/workers.db"
    run_workers(record_in_new_client, [(uri, w) for w in range(WORKERS)], method)
    with TracingClient(uri) as reader:
        assert reader.count_traces() == WORKERS * TRACES


def test_fork_workers_using_the_parents_client_deliver_at_exit(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/inherited.db"
    client = _inherited["client"] = TracingClient(uri)
    try:
        run_workers(record_in_inherited_client, [(w,) for w in range(WORKERS)])
    finally:
        client.close()
        _inherited.clear()
    with TracingClient(uri) as reader:
        assert reader.count_traces() == WORKERS * TRACES


class Keep:
    def __init__(self) -> None:
        self.traces: list[Trace] = []

    def export(self, traces: Sequence[Trace]) -> None:
        self.traces.extend(traces)


def test_a_child_forked_while_the_pipeline_is_locked_gets_a_working_pipeline() -> None:
    sink = Keep()
    with TracingClient("memory://", exporters=[sink]) as client:
        root = client.start_trace("before")
        client.end_trace(root.trace_id)
        assert client.flush(5)
        lane = client._pipeline.lanes[1]
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with lane.lock:  # another thread is inside the lane when the fork happens
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        pid = os.fork()
        if pid == 0:  # child: the copied lock is held by a thread that does not exist here
            code = 2
            try:
                child = client.start_trace("child")
                client.end_trace(child.trace_id)
                code = 0 if client.flush(5) and len(sink.traces) == 2 else 1
            finally:
                os._exit(code)
        release.set()
        holder.join(10)
        deadline = time.monotonic() + 30
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if status[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the pipeline's inherited lock")
        assert os.waitstatus_to_exitcode(status[1]) == 0
