"""Many processes open one NEW SQLite file at the same moment (a pool's workers each making
a client): every one of them creates or joins the store, writes and exits, none hangs.

The processes are separate interpreters released together by one byte on a pipe; each arms
``faulthandler.dump_traceback_later`` so a stuck one prints every thread's stack, and the
parent kills whatever outlives the bound. (No timer is armed in a process that forks: a
forked child inherits faulthandler's held timer lock and hangs when it arms its own.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lowtrace import TracingClient

PROCESSES = 8
ROUNDS = 2
BOUND_S = 60.0  # a healthy process takes about a second on a loaded machine

CHILD = """
import faulthandler, sys
faulthandler.dump_traceback_later(float(sys.argv[2]), exit=True)
from lowtrace import TracingClient
print("ready", flush=True)
sys.stdin.readline()
with TracingClient("sqlite:///" + sys.argv[1]) as client:
    client.end_trace(client.start_trace("opened-at-once").trace_id)
    assert client.flush(float(sys.argv[2]) / 2)
print("ok", flush=True)
"""


def open_at_once(path: Path) -> list[str]:
    """Start the processes, release them together; what each printed (or why it failed)."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(BOUND_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outcomes = []
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            try:
                out, err = child.communicate(timeout=BOUND_S + 10)
            except subprocess.TimeoutExpired:
                child.kill()
                out, err = child.communicate()
                out = f"HUNG\n{err}"
            outcomes.append(
                out if child.returncode == 0 else f"{out}\nexit {child.returncode}\n{err}"
            )
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return outcomes


@pytest.mark.slow
def test_processes_opening_one_new_file_at_once_all_write_and_exit(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        path = tmp_path / f"new-{round_}.db"
        outcomes = open_at_once(path)
        assert outcomes == ["ok\n"] * PROCESSES, "\n----\n".join(outcomes)
        with TracingClient(f"sqlite:///{path}") as reader:
            assert reader.count_traces() == PROCESSES
