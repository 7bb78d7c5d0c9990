"""The Delta Lake inference table: what lowtrace writes is what lowtrace, Polars and plain
Parquet readers read back; commits are few and large; old tables gain new columns; a killed
writer leaves a readable table; ``lowtrace compact`` merges small files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pds
import pytest
from deltalake import DeltaTable, write_deltalake

import lowtrace._stores.delta as delta_module
from lowtrace import SpanStatus, SpanType, StoreError, Trace, TracingClient
from lowtrace._model import merge_traces
from lowtrace._query.evaluate import search_in_memory
from lowtrace._stores.delta import DeltaStore
from lowtrace._stores.delta_table import to_arrow
from lowtrace._stores.uri import open_store
from tests.test_cli import lowtrace
from tests.test_store_search import make_trace

DAY_NS = 86_400 * 10**9
MIDNIGHT_NS = 1_700_006_400 * 10**9  # 2023-11-15 00:00:00 UTC


def record(client: TracingClient, n: int) -> Trace:
    root = client.start_trace(
        "serve",
        inputs={"question": n},
        tags={"env": "prod", "session_id": f"s{n % 2}", "user_id": "alice"},
    )
    llm = client.start_span(
        "llm", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.CHAT_MODEL
    )
    llm.set_token_usage(input_tokens=10 + n, output_tokens=5)
    llm.end(outputs="hi")
    trace = client.end_trace(
        root.trace_id,
        outputs={"answer": n * 2},
        status="ERROR" if n == 2 else None,
        status_message="boom" if n == 2 else None,
    )
    assert trace is not None
    return trace


def table_files(path: Path) -> list[str]:
    return DeltaTable(str(path)).file_uris()


def test_round_trip_and_the_same_rows_in_polars_and_parquet(tmp_path: Path) -> None:
    path = tmp_path / "inference"
    with TracingClient(f"delta://{path}") as client:
        written = [record(client, n) for n in range(3)]
        assert client.flush(30)
        for trace in written:
            assert client.get_trace(trace.info.trace_id) == trace
        assert client.search_traces("status = 'ERROR'") == [written[2]]
        with pytest.raises(StoreError, match="append-only"):
            client.delete_traces([written[0].info.trace_id])

    expected = [
        {
            "trace_id": t.info.trace_id,
            "name": "serve",
            "request": {"question": n},
            "response": {"answer": n * 2},
            "status": "ERROR" if n == 2 else "OK",
            "status_message": "boom" if n == 2 else None,
            "input_tokens": 10 + n,
            "output_tokens": 5,
            "session_id": f"s{n % 2}",
            "user_id": "alice",
            "span_count": 2,
        }
        for n, t in enumerate(written)
    ]

    def rows(records: list[dict[str, object]]) -> list[dict[str, object]]:
        out = []
        for r in sorted(records, key=lambda r: r["start_time"]):  # type: ignore[arg-type,return-value]
            assert r["trace"] and orjson.loads(r["trace"])["info"]["trace_id"] == r["trace_id"]  # type: ignore[arg-type]
            assert r["date"] == r["start_time"].date()  # type: ignore[attr-defined]
            assert r["duration_ms"] >= 0  # type: ignore[operator]
            out.append(
                {key: r[key] for key in expected[0]}
                | {"request": orjson.loads(r["request"]), "response": orjson.loads(r["response"])}  # type: ignore[arg-type]
            )
        return out

    polars_rows = pl.read_delta(str(path)).sort("start_time").to_dicts()
    assert rows(polars_rows) == expected
    assert [r["tags"] for r in polars_rows] == [
        {"env": "prod", "session_id": f"s{n % 2}", "user_id": "alice"} for n in range(3)
    ]

    # Any Parquet reader: the files the Delta log lists, with hive-style date directories.
    dataset = pds.dataset(
        table_files(path),
        format="parquet",
        partitioning=pds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive"),
        partition_base_dir=str(path),
    )
    arrow_rows = dataset.to_table().to_pylist()
    assert rows(arrow_rows) == expected
    assert all(dict(r["tags"])["env"] == "prod" for r in arrow_rows)


def test_rows_wait_for_a_big_commit_and_flush_forces_one(tmp_path: Path) -> None:
    path = tmp_path / "t"
    store = DeltaStore(path, commit_traces=10, commit_delay_s=3600)
    for n in range(4):  # 12 rows: the fourth batch reaches the bound and commits all
        store.export([make_trace(3 * n + k) for k in range(3)])
    assert DeltaTable(str(path)).version() == 0
    assert DeltaTable(str(path)).to_pyarrow_table().num_rows == 12
    store.export([make_trace(20), make_trace(21)])
    assert DeltaTable(str(path)).to_pyarrow_table().num_rows == 12  # still buffered
    store.flush()
    assert DeltaTable(str(path)).version() == 1
    assert DeltaTable(str(path)).to_pyarrow_table().num_rows == 14
    store.shutdown()


def test_the_byte_and_time_bounds_commit_too(tmp_path: Path) -> None:
    by_size = DeltaStore(tmp_path / "size", commit_bytes=1, commit_delay_s=3600)
    by_size.export([make_trace(0)])
    assert DeltaTable(str(tmp_path / "size")).to_pyarrow_table().num_rows == 1
    by_size.shutdown()

    by_time = DeltaStore(tmp_path / "time", commit_delay_s=0.05)
    by_time.export([make_trace(0)])  # nothing else arrives: the background timer commits
    deadline = time.monotonic() + 30
    while not DeltaTable.is_deltatable(str(tmp_path / "time")):
        assert time.monotonic() < deadline, "the timer never committed"
        time.sleep(0.02)
    assert DeltaTable(str(tmp_path / "time")).to_pyarrow_table().num_rows == 1
    by_time.shutdown()


def test_client_flush_commits_the_buffered_rows(tmp_path: Path) -> None:
    path = tmp_path / "t"
    with TracingClient(f"delta://{path}?commit_delay_s=3600&commit_traces=1000") as client:
        record(client, 0)
        assert client.flush(30)
        assert DeltaTable(str(path)).to_pyarrow_table().num_rows == 1  # read by another engine


def test_uri_parameters_are_checked(tmp_path: Path) -> None:
    store = open_store(f"delta://{tmp_path}/t?commit_traces=5&commit_bytes=1000&commit_delay_s=2")
    assert isinstance(store, DeltaStore)
    assert (store.commit_traces, store.commit_bytes, store.commit_delay_s) == (5, 1000, 2.0)
    with pytest.raises(StoreError, match="unknown delta URI parameter 'rows'"):
        open_store(f"delta://{tmp_path}/t?rows=5")
    with pytest.raises(StoreError, match="not a number"):
        open_store(f"delta://{tmp_path}/t?commit_traces=many")
    with pytest.raises(StoreError, match="needs a table path"):
        open_store("delta://")


def test_a_failed_commit_hands_the_batch_back_and_keeps_older_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delta_module, "_COMMIT_ATTEMPTS", 2)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the table's directory should be")
    store = DeltaStore(blocker / "t", commit_traces=2, commit_delay_s=3600)
    store.export([make_trace(0)])  # buffered
    with pytest.raises(StoreError, match="commit to"):
        store.export([make_trace(1)])  # reaches the bound; the commit cannot be written
    blocker.unlink()
    store.export([make_trace(2)])  # the pipeline would retry trace 1; trace 0 is still there
    stored = sorted(int(t.info.trace_id, 16) - 1 for t in store.search_traces())
    assert stored == [0, 2]
    store.shutdown()


FILTERS = (
    [
        f"{field} {op} {value}"
        for field in ("start_time_ms", "end_time_ms")
        for op in ("=", "!=", "<", "<=", ">", ">=")
        for value in (
            MIDNIGHT_NS // 10**6 - 1,
            MIDNIGHT_NS // 10**6,
            MIDNIGHT_NS // 10**6 + 1,
            MIDNIGHT_NS // 10**6 + 1000,
            MIDNIGHT_NS // 10**6 + 1000.5,
            MIDNIGHT_NS // 10**6 + 1100,
        )
    ]
    + [
        f"{field} {op} '{value}'"
        for field in ("name", "status", "status_message", "trace_id")
        for op in ("=", "!=", "<", "<=", ">", ">=", "LIKE")
        for value in ("agent", "ERROR", "OK", "boom", f"{2:032x}", "a%")
        # a status is one of UNSET, OK, ERROR: any other is a FilterError, not a comparison
        if field != "status" or op not in ("=", "!=") or value in ("ERROR", "OK")
    ]
    + [
        f"{field} {op} ('agent', 'OK', 'boom', '{3:032x}')"
        for field in ("name", "status_message", "trace_id")
        for op in ("IN", "NOT IN")
    ]
    + [f"status {op} ('OK', 'UNSET')" for op in ("IN", "NOT IN")]
    + [
        "status_message IS NULL",
        "status_message IS NOT NULL AND start_time_ms >= 1700006400000",
        "name NOT IN ('agent') OR start_time_ms < 1700006399999",
        "NOT (status = 'OK') AND end_time_ms > 1700006400100",
        "(name = 'agent' AND status = 'ERROR') OR trace_id = '00000000000000000000000000000003'",
    ]
)


def test_pushed_down_filters_return_what_the_reference_evaluator_returns(tmp_path: Path) -> None:
    # Traces around midnight (two date partitions), starting and ending on ms boundaries.
    data = []
    for n in range(6):
        trace = make_trace(n, status=SpanStatus.ERROR if n % 3 == 0 else SpanStatus.OK)
        shift = MIDNIGHT_NS - trace.info.start_time_ns + (n - 2) * 1_000_000 + (n % 2) * 999_999
        data.append(moved(trace, shift))
    store = DeltaStore(tmp_path / "t", commit_traces=1)  # one file per trace: pruning matters
    store.export(data[:3])
    store.export(data[3:])
    assert {d["date"] for d in DeltaTable(str(tmp_path / "t")).partitions()} == {
        "2023-11-14",
        "2023-11-15",
    }
    for text in FILTERS:
        expected = search_in_memory(data, text, max_results=None)
        assert store.search_traces(text, max_results=100) == expected, text
        assert store.count(text) == len(expected), text
    store.shutdown()


def moved(trace: Trace, shift_ns: int) -> Trace:
    """The same trace, ``shift_ns`` later."""

    def later(obj: Any) -> Any:
        return attrs.evolve(
            obj, start_time_ns=obj.start_time_ns + shift_ns, end_time_ns=obj.end_time_ns + shift_ns
        )

    return Trace(later(trace.info), tuple(later(s) for s in trace.spans))


def test_date_predicates_skip_the_other_partitions(tmp_path: Path) -> None:
    path = tmp_path / "t"
    store = DeltaStore(path)
    old, new = make_trace(0), make_trace(DAY_NS // 10**9 * 3)  # three days apart
    store.export([old, new])
    store.flush()
    for file in table_files(path):  # lose the old day's data file
        if "date=2023-11-14" in file:
            os.unlink(file)
    cutoff = new.info.start_time_ns // 10**6 - 1000
    assert store.search_traces(f"start_time_ms > {cutoff} AND status = 'OK'") == [new]
    assert store.get_trace(new.info.trace_id) == new  # (an id is not a partition: reads all)
    with pytest.raises(StoreError, match="cannot read"):
        store.search_traces()  # a full scan needs the lost file
    store.shutdown()


def test_an_older_table_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "t"
    old = make_trace(0)
    old_columns = ["date", "trace_id", "name", "request", "response", "status", "trace"]
    rows, _ = to_arrow([old])
    legacy = rows.select(old_columns).append_column("written_by", pa.array(["v0"], pa.string()))
    write_deltalake(str(path), legacy, partition_by=["date"])

    store = DeltaStore(path, commit_traces=1)
    new = make_trace(1, tags={"session_id": "s-1"})
    store.export([new])
    names = {f.name for f in DeltaTable(str(path)).schema().fields}
    assert names >= {"session_id", "user_id", "tags", "span_count", "written_by"}
    assert store.search_traces(order_by="start_time_ms") == [old, new]
    df = pl.read_delta(str(path)).sort("start_time", nulls_last=False)
    assert df["session_id"].to_list() == [None, "s-1"]
    assert df["written_by"].to_list() == ["v0", None]
    store.shutdown()


_WRITER = """
import sys
from lowtrace._stores.delta import DeltaStore
from tests.test_store_search import make_trace
store = DeltaStore(sys.argv[1], commit_traces=10**9, commit_delay_s=3600)
batch = 0
while True:
    store.export([make_trace(batch * 1000 + k) for k in range(1000)])
    print("committing", batch, flush=True)
    store.flush()
    print("committed", batch, flush=True)
    batch += 1
"""


def test_a_writer_killed_mid_commit_leaves_a_readable_table(tmp_path: Path) -> None:
    path = tmp_path / "t"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            if line.strip() == "committing 2":
                writer.send_signal(signal.SIGKILL)  # while it writes Parquet or commits
                break
    finally:
        writer.kill()
        writer.wait(30)
    assert writer.returncode == -signal.SIGKILL

    store = DeltaStore(path, commit_traces=1)
    count = store.count()
    assert count in (2000, 3000)  # whole commits only
    assert len({t.info.trace_id for t in store.search_traces(max_results=5000)}) == count
    store.export([make_trace(100_000)])  # the next writer carries on
    assert store.count() == count + 1
    store.compact(retention_hours=0)  # and vacuum removes what the dead writer left behind
    on_disk = {str(p) for p in path.rglob("*.parquet")}
    assert on_disk == set(table_files(path))
    store.shutdown()


def test_compact_merges_small_files(tmp_path: Path) -> None:
    path = tmp_path / "t"
    store = DeltaStore(path, commit_traces=1)
    data = [make_trace(n) for n in range(6)]
    for trace in data:
        store.export([trace])
    store.shutdown()
    assert len(table_files(path)) == 6

    result = lowtrace("compact", "--uri", f"delta://{path}", "--retention-hours", "0")
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.startswith("compacted 6 file(s) into 1;"), result.stdout
    assert len(table_files(path)) == 1
    assert len(list(path.rglob("*.parquet"))) == 1  # vacuumed
    reopened = open_store(f"delta://{path}", create=False)
    assert reopened.search_traces(order_by="start_time_ms") == data
    listed = lowtrace("search", "status = 'OK'", "--uri", f"delta://{path}")
    assert listed.returncode == 0, (listed.returncode, listed.stderr)
    assert len(listed.stdout.strip().splitlines()) == 7


def test_compact_is_only_for_delta_tables(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/t.db"
    with TracingClient(uri) as client:
        client.end_trace(client.start_trace("x").trace_id)
    result = lowtrace("compact", "--uri", uri)
    assert result.returncode == 2
    assert "compact works on delta:// tables" in result.stderr


def test_a_pushed_down_filter_still_merges_every_fragment(tmp_path: Path) -> None:
    local = make_trace(0, name="agent")
    remote = moved(make_trace(0, name="tool-service"), 5 * DAY_NS)  # another day's partition
    remote = Trace(
        attrs.evolve(remote.info, tags={"side": "server"}),
        tuple(
            attrs.evolve(s, span_id=f"{0xABC0 + i:016x}", parent_id=local.spans[1].span_id)
            for i, s in enumerate(remote.spans)
        ),
    )
    store = DeltaStore(tmp_path / "t", commit_traces=1)
    store.export([local])
    store.export([remote])
    merged = store.get_trace(local.info.trace_id)
    assert merged is not None and merged.info.span_count == 4
    assert store.search_traces("name = 'agent'") == [merged]
    start = local.info.start_time_ns // 10**6
    assert store.search_traces(f"start_time_ms <= {start}") == [merged]
    assert store.count(f"start_time_ms > {start}") == 0
    store.shutdown()


def wait_child(pid: int, timeout_s: float = 60) -> int:
    """The forked child's exit code; a child still running after ``timeout_s`` is killed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_commit_the_parents_buffered_rows(tmp_path: Path) -> None:
    path = tmp_path / "t"
    store = DeltaStore(path, commit_delay_s=3600)
    store.export([make_trace(0)])  # buffered in the parent
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            store.flush()  # what TracingClient.flush() does in the child: nothing to commit
            code = 0
        finally:
            os._exit(code)
    assert wait_child(pid) == 0
    store.flush()
    ids = DeltaTable(str(path)).to_pyarrow_table(columns=["trace_id"]).column("trace_id")
    assert ids.to_pylist() == [make_trace(0).info.trace_id]  # once, by the parent
    store.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_after_the_parent_wrote_gets_a_clear_error(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "t", commit_delay_s=3600)
    store.export([make_trace(0)])
    store.flush()  # deltalake's runtime now runs in this process; a fork cannot reuse it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            store.export([make_trace(1)])
            try:
                store.flush()
            except StoreError as exc:
                os.write(write, str(exc).encode())
                code = 0
        finally:
            os._exit(code)
    os.close(write)
    code = wait_child(pid)
    message = os.read(read, 4096).decode()
    os.close(read)
    assert code == 0, message
    assert "create the TracingClient after the fork" in message
    assert store.count() == 1
    store.shutdown()


@pytest.mark.parametrize("order_by", [None, "start_time_ms", "start_time_ms DESC"])
@pytest.mark.parametrize("page_size", [1, 2, 5, 100])
def test_unfiltered_pages_by_start_time_match_the_reference(
    tmp_path: Path, order_by: str | None, page_size: int
) -> None:
    # Traces sharing a microsecond (the table keeps microseconds; the order uses ns), and a
    # trace whose fragment from another process started first.
    fragments = []
    for n in range(9):
        shift = MIDNIGHT_NS - make_trace(n).info.start_time_ns + (n // 3) * 1000 + n % 3 * 300
        fragments.append(moved(make_trace(n), shift))
    head = fragments[4]
    remote = make_trace(4, name="remote")
    early = moved(remote, head.info.start_time_ns - remote.info.start_time_ns - 5000)
    early = Trace(
        early.info,
        tuple(
            attrs.evolve(s, span_id=f"{0xEE00 + i:016x}", parent_id=head.spans[0].span_id)
            for i, s in enumerate(early.spans)
        ),
    )
    fragments.append(early)
    merged = [
        merge_traces([f for f in fragments if f.info.trace_id == t.info.trace_id])
        for t in fragments[:9]
    ]
    store = DeltaStore(tmp_path / "t", commit_traces=4)
    for fragment in fragments:
        store.export([fragment])
    token = None
    while True:
        page = store.search_traces(order_by=order_by, max_results=page_size, page_token=token)
        expected = search_in_memory(
            merged, None, order_by=order_by, max_results=page_size, page_token=token
        )
        assert page == expected
        assert page.next_page_token == expected.next_page_token
        token = page.next_page_token
        if token is None:
            break
    store.shutdown()


def test_session_and_user_columns_come_from_the_trace_then_tags_then_metadata(
    tmp_path: Path,
) -> None:
    own = make_trace(0, tags={"session_id": "from-tag"})
    own = Trace(attrs.evolve(own.info, session_id="conv-1", user_id="bob"), own.spans)
    tagged = make_trace(1, tags={"session_id": "conv-2", "user_id": "carol"})
    mlflow = make_trace(2)
    mlflow = Trace(
        attrs.evolve(mlflow.info, metadata={"mlflow.trace.session": "conv-3"}), mlflow.spans
    )
    store = DeltaStore(tmp_path / "t")
    store.export([own, tagged, mlflow, make_trace(3)])
    store.flush()
    rows = pl.read_delta(str(tmp_path / "t")).sort("start_time")
    assert rows["session_id"].to_list() == ["conv-1", "conv-2", "conv-3", None]
    assert rows["user_id"].to_list() == ["bob", "carol", None, None]
    assert store.get_trace(own.info.trace_id) == own
    store.shutdown()
