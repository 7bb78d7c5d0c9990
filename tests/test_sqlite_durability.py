"""Flushed traces survive a killed process (WAL, synchronous=NORMAL): SIGKILL loses nothing."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lowtrace import TracingClient

CHILD = textwrap.dedent(
    """
    import sys, time
    from lowtrace import TracingClient

    client = TracingClient(sys.argv[1])
    ids = []
    for n in range(300):
        root = client.start_trace("agent", inputs={"n": n}, tags={"batch": "killed"})
        span = client.start_span("tool", trace_id=root.trace_id, parent_id=root.span_id)
        span.end(outputs={"n": n})
        client.end_trace(root.trace_id)
        ids.append(root.trace_id)
    assert client.flush(30)
    print(" ".join(ids), flush=True)
    time.sleep(60)  # killed here, with the store's connections still open
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_flushed_traces_survive_sigkill_of_the_writing_process(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"sqlite:///{path}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        ids = child.stdout.readline().split()
        assert len(ids) == 300
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()

    assert Path(f"{path}-wal").exists()  # not checkpointed: the data is in the WAL only
    with TracingClient(f"sqlite:///{path}") as client:
        assert client.count_traces("tags.batch = 'killed'") == 300
        trace = client.get_trace(ids[-1])
        assert trace is not None
        assert trace.spans[1].outputs == {"n": 299}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
