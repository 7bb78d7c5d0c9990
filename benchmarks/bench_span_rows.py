"""SQLite span rows alone: insert rate of the old and the new ``spans`` layout as a store grows.

    python benchmarks/bench_span_rows.py [--traces 100000]

Inserts 5 span rows per trace (random trace and span ids, as the client makes them) in
batches of 2,000 traces, one transaction each, with the store's pragmas; prints rows/s
over the whole run and for the last batch, and the file size. Then shows the plan of the
``span.type`` filter's probe. A benchmark, not a test: it reports numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time

BATCH = 2_000
TYPES = ["CHAIN", "RETRIEVER", "TOOL", "CHAT_MODEL", "PARSER"]
TABLE = """CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
    name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
)"""
LAYOUTS = {
    "before: WITHOUT ROWID + name/type/status indexes": [
        f"{TABLE} WITHOUT ROWID",
        *(f"CREATE INDEX spans_{c} ON spans ({c})" for c in ("name", "type", "status")),
    ],
    "after: rowid table + (trace_id, type, name, status)": [
        TABLE,
        "CREATE INDEX spans_trace ON spans (trace_id, type, name, status)",
    ],
}
PROBE = (
    "EXPLAIN QUERY PLAN SELECT 1 FROM traces t WHERE EXISTS "
    "(SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND s.type = 'TOOL')"
)


def batch(rng: random.Random, first: int) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for n in range(first, first + BATCH):
        trace_id = f"{rng.getrandbits(128):032x}"
        for k in range(5):
            kind = TYPES[(n + k) % 5]
            rows.append((trace_id, f"{rng.getrandbits(64):016x}", f"step{k}", kind, "OK"))
    return rows


def run(label: str, statements: list[str], traces: int) -> None:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/spans.db", isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -65536"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("CREATE TABLE traces (trace_id TEXT NOT NULL UNIQUE)")
        for statement in statements:
            conn.execute(statement)
        total = last = 0.0
        for first in range(0, traces, BATCH):
            rows = batch(rng, first)
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO spans VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            last = time.perf_counter() - started
            total += last
        plan = " / ".join(row[3] for row in conn.execute(PROBE))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(f"{tmp}/spans.db")
        conn.close()
    print(
        f"{label}\n   {traces * 5 / total:10,.0f} rows/s overall, "
        f"{BATCH * 5 / last:10,.0f} rows/s in the last batch, {size / 1e6:.0f} MB\n"
        f"   span.type probe: {plan}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    args = parser.parse_args()
    print(f"{args.traces:,} traces x 5 span rows, SQLite {sqlite3.sqlite_version}")
    for label, statements in LAYOUTS.items():
        run(label, statements, args.traces)


if __name__ == "__main__":
    main()
