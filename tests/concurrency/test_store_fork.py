"""``os.fork()`` while store threads are busy: a child forked in the middle of another
thread's SQLite transaction or inference-table write can still write, and exits promptly."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lowtrace import TracingClient
from lowtrace._stores.base import TraceStore
from lowtrace._stores.uri import open_store
from tests.test_store_search import make_trace

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILDREN = 30
#: A child that has not exited by then is hung (a healthy one takes milliseconds).
CHILD_BOUND_S = 20.0


def child_writes(uri: str, inherited: TraceStore, n: int) -> int:
    """In the child: write through the inherited store and through a new client."""
    try:
        inherited.export([make_trace(10**9 + n, name="child-inherited")])
        with TracingClient(uri) as client:
            client.end_trace(client.start_trace("child-new-client").trace_id)
            return 0 if client.flush(CHILD_BOUND_S / 2) else 3
    except BaseException:
        return 4


def wait_bounded(pid: int) -> int:
    """The child's exit status, or -1 (after killing it) when it outlives the bound."""
    deadline = time.monotonic() + CHILD_BOUND_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def fork_while_writing(uri: str, writer: Callable[[TraceStore, int], None]) -> list[int]:
    store = open_store(uri)
    stop = threading.Event()
    started = threading.Event()

    def write_forever() -> None:
        n = 0
        while not stop.is_set():
            writer(store, n)
            n += 1
            started.set()

    thread = threading.Thread(target=write_forever)
    thread.start()
    statuses = []
    try:
        assert started.wait(30)
        for n in range(CHILDREN):
            pid = os.fork()
            if pid == 0:  # the child
                os._exit(child_writes(uri, store, n))
            statuses.append(wait_bounded(pid))
            if statuses[-1] != 0:
                break  # one hung or failed child is enough to know
    finally:
        stop.set()
        thread.join(30)
    store.shutdown()
    return statuses


def big_batches(store: TraceStore, n: int) -> None:
    store.export([make_trace(n * 50 + i, name="parent") for i in range(50)])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
def test_children_forked_during_writes_write_and_exit(tmp_path: Path, kind: str) -> None:
    uri = {"sqlite": f"sqlite:///{tmp_path}/t.db", "jsonl": f"jsonl://{tmp_path}/t.jsonl.zst"}[kind]
    statuses = fork_while_writing(uri, big_batches)
    assert statuses == [0] * CHILDREN
    store = open_store(uri, create=False)
    assert store.count("name = 'child-inherited'") == CHILDREN
    assert store.count("name = 'child-new-client'") == CHILDREN


@pytest.mark.timeout(300)
def test_children_forked_during_reads_write_and_exit(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/t.db"
    open_store(uri).export([make_trace(i) for i in range(300)])

    def read(store: TraceStore, n: int) -> None:
        store.search_traces("name LIKE '%a%'", max_results=300)

    assert fork_while_writing(uri, read) == [0] * CHILDREN


@pytest.mark.timeout(120)
def test_a_postgres_child_forked_while_another_thread_makes_a_connection_can_write(
    postgres_uri: str,
) -> None:
    store = open_store(postgres_uri)
    inside, release = threading.Event(), threading.Event()

    def making_a_connection() -> None:  # holds the connection list, as _conn does
        with store._all_lock:  # type: ignore[attr-defined]
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=making_a_connection)
    thread.start()
    try:
        assert inside.wait(30)
        pid = os.fork()
        if pid == 0:  # the child: its first use makes its own connection
            os._exit(child_writes(postgres_uri, store, 0))
        status = wait_bounded(pid)
    finally:
        release.set()
        thread.join(30)
    assert status == 0
    assert store.count("name = 'child-inherited'") == 1
    store.shutdown()


@pytest.mark.timeout(120)
def test_a_postgres_child_shutting_its_store_down_leaves_the_parents_connection(
    postgres_uri: str,
) -> None:
    store = open_store(postgres_uri)
    store.export([make_trace(0)])
    pid = os.fork()
    if pid == 0:  # the child: uses the store, then closes it (as a client's exit does)
        code = 0 if store.count() == 1 else 3
        store.shutdown()
        os._exit(code)
    assert wait_bounded(pid) == 0
    assert store.count() == 1  # the parent's connection still answers
    store.shutdown()
