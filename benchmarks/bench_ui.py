"""Web UI: server-side time per page over a large SQLite (and PostgreSQL) store.

    python benchmarks/bench_ui.py [--traces 100000] [--quick] [--postgres]

Fills a fresh SQLite file the way ``bench_store.py`` does (5 spans, ~1 KB per span, start
times spread over the last 24 hours), then
times requests through the ASGI app in process (Starlette's TestClient: no sockets, so
this is the server's own cost, not the browser's): the first list page, a filtered page, a
page 20 deep reached through page tokens, a sorted page, one trace view, a comparison, and
the dataset export of every trace tagged env=prod (half the store), and the dashboard (all
time, last 24 hours, with a tag filter, a status filter, both a range and a filter; SQL
aggregates over every trace and span in range).
A benchmark, not a test: it reports numbers only.
"""

from __future__ import annotations

import argparse
import html
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import ingest

REPEATS = 7


def timed(label: str, request: Callable[[], object]) -> None:
    """Median wall time, and this process's CPU time (on a loaded machine the wall time
    waits for a core; a PostgreSQL server's own CPU is not in it)."""
    times, cpu = [], []
    for _ in range(REPEATS):
        started, cpu_started = time.perf_counter(), time.process_time()
        request()
        times.append((time.perf_counter() - started) * 1e3)
        cpu.append((time.process_time() - cpu_started) * 1e3)
    print(
        f"   {label:34} {statistics.median(times):8.1f} ms   "
        f"(min {min(times):.1f}, max {max(times):.1f}; CPU {statistics.median(cpu):.1f})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 traces")
    parser.add_argument(
        "--postgres", action="store_true", help="also PostgreSQL: a throwaway local server"
    )
    args = parser.parse_args(argv)
    traces = 10_000 if args.quick else args.traces
    try:
        import starlette.testclient  # noqa: F401
    except ImportError:
        print("needs the 'ui' extra and httpx: pip install 'lowtrace[ui]' httpx")
        return
    print(f"lowtrace UI benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{tmp}/bench.db", traces)
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.postgres_server import postgres_server

        with postgres_server() as dsn:
            run("PostgreSQL (local server)", dsn, traces)


def run(label: str, uri: str, traces: int) -> None:
    from starlette.testclient import TestClient

    from lowtrace._stores.uri import open_store
    from lowtrace._ui.app import create_app

    _, per_span = ingest(uri, traces, spread_s=86_400.0)  # a day of traffic
    if uri.startswith("postgresql"):
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:  # as autovacuum soon would
            conn.execute("VACUUM ANALYZE")
    print(f"{label}: {traces:,} traces x 5 spans (ingested at {per_span:,.0f} spans/s)")
    store = open_store(uri, create=False)
    http = TestClient(create_app(store, allowed_hosts={"127.0.0.1"}), "http://127.0.0.1")
    first = http.get("/").text
    ids = re.findall(r'name="id" form="ui-selection" value="([0-9a-f]+)"', first)
    url = "/"
    for _ in range(19):
        found = re.search(r'rel="next" href="([^"]+)"', http.get(url).text)
        assert found is not None
        url = html.unescape(found.group(1))
    print(f"server time per request, median of {REPEATS}")
    timed("list, first page of 50 + count", lambda: http.get("/"))
    timed("list, status = 'ERROR'", lambda: http.get("/", params={"q": "status = 'ERROR'"}))
    timed(
        "list, tag + span type filter",
        lambda: http.get("/", params={"q": "tags.user = 'u42' AND span.type = 'TOOL'"}),
    )
    timed("list, page 20 (keyset token)", lambda: http.get(url))
    timed("list, sorted by duration DESC", lambda: http.get("/?order=duration_ms+DESC"))
    timed("trace view (5 spans)", lambda: http.get(f"/traces/{ids[0]}"))
    timed(
        "compare two traces",
        lambda: http.get("/compare", params=[("id", ids[0]), ("id", ids[1])]),
    )
    timed("dashboard, all time", lambda: http.get("/dashboard"))
    timed("dashboard, last 24 hours", lambda: http.get("/dashboard?range=24h"))
    timed(
        "dashboard, tags.env = 'prod'",
        lambda: http.get("/dashboard", params={"q": "tags.env = 'prod'"}),
    )
    timed(
        "dashboard, status = 'ERROR'",
        lambda: http.get("/dashboard", params={"q": "status = 'ERROR'"}),
    )
    timed(
        "dashboard, 24 hours + tag filter",
        lambda: http.get("/dashboard", params={"range": "24h", "q": "tags.env = 'prod'"}),
    )
    started = time.perf_counter()
    body = http.get("/export", params={"q": "tags.env = 'prod'"}).content
    rows = body.count(b"\n")
    elapsed = time.perf_counter() - started
    print(f"   dataset export, {rows:,} traces          {rows / elapsed:8,.0f} traces/s")
    store.shutdown()


if __name__ == "__main__":
    main()
