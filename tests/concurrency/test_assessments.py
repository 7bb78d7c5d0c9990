"""Assessments logged on one stored trace by many threads and many processes at once: each
change is a read-modify-write of the stored trace, and none may be lost."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lowtrace import TracingClient

THREADS = 8
PER_THREAD = 10


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_uri")
    else:
        yield {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/t.db"}[request.param]


def test_threads_logging_feedback_on_one_trace_lose_nothing(uri: str) -> None:
    with TracingClient(uri) as client:
        root = client.start_trace("reviewed")
        client.end_trace(root.trace_id)
        start = threading.Barrier(THREADS)
        errors: list[BaseException] = []

        def review(worker: int) -> None:
            try:
                start.wait(timeout=30)
                for n in range(PER_THREAD):
                    client.log_feedback(root.trace_id, f"w{worker}", n)
                    if n % 3 == 0:
                        client.set_trace_tags(root.trace_id, {f"w{worker}": n})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=review, args=(w,)) for w in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        trace = client.get_trace(root.trace_id)
        assert trace is not None
        assert len(trace.info.assessments) == THREADS * PER_THREAD
        assert len({a.assessment_id for a in trace.info.assessments}) == THREADS * PER_THREAD
        assert trace.info.tags == {f"w{w}": "9" for w in range(THREADS)}
        assert client.count_traces("feedback.w3 >= 0") == 1


def _review(uri: str, trace_id: str, worker: int, count: int) -> None:
    with TracingClient(uri) as client:
        for n in range(count):
            client.log_expectation(trace_id, f"p{worker}", {"n": n})


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_logging_on_one_trace_lose_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    uri = (
        f"sqlite:///{tmp_path}/shared.db"
        if kind == "sqlite"
        else request.getfixturevalue("postgres_uri")
    )
    with TracingClient(uri) as client:
        root = client.start_trace("shared")
        client.end_trace(root.trace_id)
        assert client.flush(10)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_review, args=(uri, root.trace_id, w, 15)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    with TracingClient(uri) as client:
        trace = client.get_trace(root.trace_id)
        assert trace is not None
        names = sorted(a.name for a in trace.info.assessments)
        assert names == sorted(f"p{w}" for w in range(4) for _ in range(15))
        assert client.count_traces("expectation.p2 IS NOT NULL") == 1
