"""``multiprocessing`` fork workers exit through ``os._exit``: their traces still arrive."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
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


_pool_clients: dict[str, TracingClient] = {}  # per worker process: one client per store


def record_in_pool_worker(uri: str, task: int) -> int:
    """A pool task recording into its worker's client, which it never flushes."""
    client = _pool_clients.get(uri) or _pool_clients.setdefault(uri, TracingClient(uri))
    for n in range(TRACES):
        root = client.start_trace(f"task{task}-{n}")
        client.end_trace(root.trace_id)
    return task


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_pool_used_as_a_context_manager_delivers_its_workers_traces(
    tmp_path: Path, method: str
) -> None:
    # Pool.__exit__ calls terminate(): workers get SIGTERM, which skips every finalizer.
    uri = f"sqlite:///{tmp_path}/pool.db"
    tasks = [(uri, task) for task in range(6)]
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert pool.starmap(record_in_pool_worker, tasks, chunksize=1) == list(range(6))
    with TracingClient(uri) as reader:
        assert reader.count_traces() == len(tasks) * TRACES


def record_then_wait(uri: str, recorded: multiprocessing.synchronize.Event) -> None:
    """A worker that records, says so, and waits until it is terminated."""
    client = TracingClient(uri)
    for n in range(TRACES):
        root = client.start_trace(f"t{n}")
        client.end_trace(root.trace_id)
    recorded.set()
    time.sleep(60)


def test_a_terminated_worker_delivers_its_traces_and_still_dies_of_sigterm(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path}/terminated.db"
    context = multiprocessing.get_context("fork")
    recorded = context.Event()
    worker = context.Process(target=record_then_wait, args=(uri, recorded))
    worker.start()
    assert recorded.wait(30)
    worker.terminate()
    worker.join(30)
    assert worker.exitcode == -signal.SIGTERM
    with TracingClient(uri) as reader:
        assert reader.count_traces() == TRACES
