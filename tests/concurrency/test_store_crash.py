"""A writer process killed with SIGKILL in the middle of writing an inference-table row
leaves a torn record; every row flushed before it, and every row appended after it by
other processes, stays readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lowtrace import TracingClient
from lowtrace._stores.jsonl import JsonlStore

#: A writer of large traces that reports each flushed trace id, and whose
#: ``write_torn``-th file write stops half way (then waits to be killed).
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from lowtrace import TracingClient

    uri, label, write_torn = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_write, writes = os.write, [0]

    def write(fd, data):
        if os.fstat(fd).st_size and not os.isatty(fd) and fd > 2:
            writes[0] += 1
            if writes[0] == write_torn:
                real_write(fd, bytes(data)[: len(data) // 2])
                print("TORN", flush=True)
                time.sleep(60)
        return real_write(fd, data)

    os.write = write
    client = TracingClient(uri)
    for n in range(100):
        root = client.start_trace(f"{label}-{n}", inputs={"blob": os.urandom(600_000).hex()})
        client.end_trace(root.trace_id, outputs={"n": n})
        assert client.flush(30)
        print("FLUSHED", root.trace_id, flush=True)
    """
)


def run_until_torn(uri: str, label: str, write_torn: int) -> list[str]:
    """Start a writer, SIGKILL it while it is half way through a write; its flushed ids."""
    flushed: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, uri, label, str(write_torn)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOWTRACE_ENABLED": "true"},
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "FLUSHED":
                flushed.extend(rest)
            elif word == "TORN":
                proc.send_signal(signal.SIGKILL)
                break
        assert proc.wait(60) == -signal.SIGKILL
    return flushed


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["table.jsonl.zst", "table.jsonl"])
def test_rows_survive_writers_killed_mid_write(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    uri = f"jsonl://{path}"
    flushed: list[str] = []
    for round, torn_at in enumerate([3, 5, 2]):
        flushed += run_until_torn(uri, f"round{round}", torn_at)
    with TracingClient(uri) as client:  # appends after the last torn write
        for n in range(3):
            root = client.start_trace(f"after-{n}")
            client.end_trace(root.trace_id)
            flushed.append(root.trace_id)
        assert client.flush(30)
    store = JsonlStore(path, create=False)
    stored = {t.info.trace_id for t in store.search_traces(max_results=1000)}
    assert len(flushed) >= 3 + 3
    assert set(flushed) <= stored
    assert store.damage  # the torn writes were there, and were skipped
