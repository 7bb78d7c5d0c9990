"""A worker told to stop by SIGTERM while its main thread is blocked in C still delivers.

Python runs a signal handler only when the main thread is back in the interpreter. A
SIGTERM that the main thread does not see as an interrupted call (it landed on another
thread, or just before a blocking wait) leaves the handler unrun: the worker's traces must
still arrive, and the worker must still end.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from lowtrace import TracingClient
from lowtrace._forksafe import _TERM_GRACE_S

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs the fork start method",
)

TRACES = 10
BOUND_S = _TERM_GRACE_S + 10  # the delivery's own bound, plus room for a loaded machine
SETTLE_S = 0.5  # lets the worker's main thread reach its blocking call (no assertion on it)


def record(uri: str) -> None:
    client = TracingClient(uri)  # never flushed or closed: only the SIGTERM path delivers
    for n in range(TRACES):
        root = client.start_trace(f"t{n}")
        client.end_trace(root.trace_id)


def record_then_wait_on_a_lock(
    uri: str, held: multiprocessing.synchronize.Lock, recorded: multiprocessing.synchronize.Event
) -> None:
    """Records, then blocks on a lock the parent holds; the SIGTERM lands on another thread."""
    record(uri)

    def terminate_this_process_on_this_thread() -> None:
        time.sleep(SETTLE_S)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=terminate_this_process_on_this_thread, daemon=True).start()
    recorded.set()
    held.acquire()  # sem_wait in the main thread: the SIGTERM does not interrupt it


def test_a_sigterm_the_blocked_main_thread_never_saw_still_delivers_and_kills(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path}/lock.db"
    context = multiprocessing.get_context("fork")
    held, recorded = context.Lock(), context.Event()
    held.acquire()
    worker = context.Process(target=record_then_wait_on_a_lock, args=(uri, held, recorded))
    worker.start()
    try:
        assert recorded.wait(30)
        worker.join(BOUND_S)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        if worker.exitcode is None:
            worker.kill()
            worker.join(10)
        held.release()
    with TracingClient(uri) as reader:
        assert reader.count_traces() == TRACES


def record_then_busy_wait_in_sqlite(
    uri: str, locked_db: str, recorded: multiprocessing.synchronize.Event
) -> None:
    """Records, then waits in SQLite's busy loop, which sleeps and retries in C for minutes."""
    record(uri)
    waiting = sqlite3.connect(locked_db, timeout=300, isolation_level=None)
    recorded.set()
    waiting.execute("BEGIN IMMEDIATE")


def test_a_worker_stuck_in_c_code_is_terminated_after_delivering(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/busy.db"
    locked_db = str(tmp_path / "locked.db")
    holder = sqlite3.connect(locked_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    context = multiprocessing.get_context("fork")
    recorded = context.Event()
    worker = context.Process(
        target=record_then_busy_wait_in_sqlite, args=(uri, locked_db, recorded)
    )
    worker.start()
    try:
        assert recorded.wait(30)
        time.sleep(SETTLE_S)
        worker.terminate()
        worker.join(BOUND_S)
        # The main thread never returns to Python, so it cannot die of the signal itself:
        # the worker ends with the shell's status for "terminated by SIGTERM".
        assert worker.exitcode == 128 + signal.SIGTERM
    finally:
        if worker.exitcode is None:
            worker.kill()
            worker.join(10)
        holder.close()
    with TracingClient(uri) as reader:
        assert reader.count_traces() == TRACES


def keep_own_wakeup_fd_then_record(uri: str) -> None:
    """A spawned worker that set its own wakeup fd before it made a client: it keeps it."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    record(uri)
    assert signal.set_wakeup_fd(-1) == writer.fileno()
    signal.set_wakeup_fd(writer.fileno())
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert reader.recv(1) == bytes([signal.SIGUSR1])


def test_a_wakeup_fd_the_program_set_first_is_left_alone(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/own-fd.db"
    worker = multiprocessing.get_context("spawn").Process(
        target=keep_own_wakeup_fd_then_record, args=(uri,)
    )
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    with TracingClient(uri) as reader:
        assert reader.count_traces() == TRACES


def record_after_an_asyncio_signal_handler(
    uri: str, recorded: multiprocessing.synchronize.Event
) -> None:
    """asyncio takes the wakeup fd for its own signal handling, which keeps working."""

    async def main() -> None:
        got = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, got.set)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(got.wait(), 30)

    asyncio.run(main())
    record(uri)
    recorded.set()
    time.sleep(60)


def test_a_worker_whose_asyncio_took_the_wakeup_fd_still_delivers_on_sigterm(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path}/asyncio.db"
    context = multiprocessing.get_context("fork")
    recorded = context.Event()
    worker = context.Process(target=record_after_an_asyncio_signal_handler, args=(uri, recorded))
    worker.start()
    try:
        assert recorded.wait(30)
        worker.terminate()
        worker.join(BOUND_S)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        if worker.exitcode is None:
            worker.kill()
            worker.join(10)
    with TracingClient(uri) as reader:
        assert reader.count_traces() == TRACES


def fork_a_child_that_is_terminated(uri: str) -> None:
    """A worker whose own forked child gets SIGTERM: the worker itself carries on."""
    record(uri)
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGTERM
    time.sleep(2 * SETTLE_S)  # a watcher misled by the child's byte would have ended us by now


def test_a_sigterm_to_a_workers_forked_child_leaves_the_worker_running(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/grandchild.db"
    worker = multiprocessing.get_context("fork").Process(
        target=fork_a_child_that_is_terminated, args=(uri,)
    )
    worker.start()
    worker.join(BOUND_S)
    assert worker.exitcode == 0


ROUNDS = 5
POOL = 4
_pool_clients: dict[str, TracingClient] = {}  # per worker process


def record_after_the_barrier(barrier: threading.Barrier, uri: str) -> int:
    """All of a pool's workers finish together, so terminate() finds them going idle."""
    barrier.wait(30)
    client = _pool_clients.get(uri) or _pool_clients.setdefault(uri, TracingClient(uri))
    for n in range(TRACES):
        root = client.start_trace(f"t{n}")
        client.end_trace(root.trace_id)
    return os.getpid()


def test_terminating_pools_whose_workers_just_went_idle_never_hangs(tmp_path: Path) -> None:
    # The reported shape: workers back in the pool's task loop, entering a blocking wait
    # just as terminate() sends SIGTERM. Each round gets its own pool of fresh workers.
    uri = f"sqlite:///{tmp_path}/pools.db"
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        for _ in range(ROUNDS):
            barrier = manager.Barrier(POOL)  # type: ignore[attr-defined]
            pool = context.Pool(POOL)
            pids = pool.starmap(record_after_the_barrier, [(barrier, uri)] * POOL, chunksize=1)
            stopper = threading.Thread(target=pool.terminate, daemon=True)
            stopper.start()
            stopper.join(BOUND_S)
            if stopper.is_alive():
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                stopper.join(10)
                pytest.fail("pool.terminate() hung on a worker that never ran its handler")
    with TracingClient(uri) as reader:
        assert reader.count_traces() == ROUNDS * POOL * TRACES
