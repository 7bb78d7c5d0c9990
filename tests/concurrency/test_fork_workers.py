"""``multiprocessing`` fork workers exit through ``os._exit``: their traces still arrive."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import pytest

from lowtrace import TracingClient

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
