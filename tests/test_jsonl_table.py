"""The inference table under damage: a torn write, garbage bytes or a bad row cost only
themselves; every row around them, and every row appended later, is still read."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from lowtrace import StoreError, TracingClient
from lowtrace._stores.jsonl import JsonlStore, iter_rows
from lowtrace._stores.rowframes import Damage
from tests.test_store_search import make_trace

FIXTURE = Path(__file__).parent / "data" / "table-v1.jsonl.zst"


def names(store: JsonlStore) -> list[str]:
    return sorted(t.info.name for t in store.search_traces(max_results=1000))


@pytest.fixture(params=["table.jsonl.zst", "table.jsonl"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> JsonlStore:
    return JsonlStore(tmp_path / request.param)


def test_a_torn_write_hides_nothing_appended_later(table: JsonlStore) -> None:
    table.export([make_trace(0, name="before")])
    size = table.path.stat().st_size
    table.export([make_trace(1, name="torn")])
    with table.path.open("r+b") as f:  # a writer killed half way through its write
        f.truncate(size + (table.path.stat().st_size - size) // 2)
    table.export([make_trace(2, name="after"), make_trace(3, name="after too")])
    table.export([make_trace(4, name="later")])
    assert names(table) == ["after", "after too", "before", "later"]
    assert table.damage.bad_bytes + table.damage.bad_lines > 0


def test_garbage_between_rows_costs_only_itself(table: JsonlStore) -> None:
    table.export([make_trace(0, name="a")])
    with table.path.open("ab") as f:
        f.write(b"\x28\xb5\x2f\xfd\x00garbage\n" + bytes(range(256)) * 4 + b"\n")
    table.export([make_trace(1, name="b")])
    with table.path.open("ab") as f:
        f.write(b"\x00" * 100)
    table.export([make_trace(2, name="c")])
    assert names(table) == ["a", "b", "c"]
    assert table.damage.bad_bytes or table.damage.bad_lines


def test_a_flipped_byte_inside_a_row_costs_only_that_row(tmp_path: Path) -> None:
    table = JsonlStore(tmp_path / "t.jsonl.zst")
    for n in range(3):
        table.export([make_trace(n, name=f"row{n}")])
    data = bytearray(table.path.read_bytes())
    third = len(data) // 2
    data[third] ^= 0xFF
    table.path.write_bytes(bytes(data))
    assert len(names(table)) == 2
    assert table.damage.bad_bytes > 0


def test_a_row_that_is_not_a_trace_is_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.jsonl"
    table = JsonlStore(path)
    table.export([make_trace(0, name="good")])
    with path.open("ab") as f:
        f.write(b'{"trace": {"info": 1}}\n[1, 2]\n{"no": "trace"}\nnot json\n')
    table.export([make_trace(1, name="also good")])
    with caplog.at_level(logging.WARNING, logger="lowtrace"):
        assert names(table) == ["also good", "good"]
    assert table.damage.bad_lines == 4
    assert "4 unreadable row(s)" in caplog.text


def test_the_file_stays_one_zstd_stream(tmp_path: Path) -> None:
    if shutil.which("zstd") is None:
        pytest.skip("the zstd command is not installed")
    table = JsonlStore(tmp_path / "t.jsonl.zst")
    table.export([make_trace(0), make_trace(1)])
    table.export([make_trace(2)])
    out = subprocess.run(["zstd", "-dc", str(table.path)], capture_output=True, check=True).stdout
    assert [orjson.loads(line)["trace_id"] for line in out.splitlines()] == [
        f"{n + 1:032x}" for n in range(3)
    ]


def test_tables_of_the_older_format_are_still_read_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl.zst"
    shutil.copy(FIXTURE, path)
    table = JsonlStore(path)
    assert names(table) == ["agent", "agent", "rag"]
    table.export([make_trace(7, name="new")])
    assert names(table) == ["agent", "agent", "new", "rag"]
    assert not table.damage
    with TracingClient(f"jsonl://{path}") as client:
        client.end_trace(client.start_trace("via client").trace_id)
        assert client.flush(10)
    assert len(list(iter_rows(path))) == 5


def test_a_file_that_is_no_table_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    for name in ("garbage.jsonl.zst", "garbage.jsonl"):
        path = tmp_path / name
        path.write_bytes(b"\x00\x01 this is not an inference table \xff" * 50)
        with pytest.raises(StoreError, match="not a lowtrace inference table"):
            JsonlStore(path, create=False).search_traces()
    empty = tmp_path / "empty.jsonl.zst"
    empty.touch()
    assert JsonlStore(empty, create=False).search_traces() == []


def test_damage_is_counted_by_iter_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.zst"
    JsonlStore(path).export([make_trace(0)])
    with path.open("ab") as f:
        f.write(b"junk" * 10)
    damage = Damage()
    assert len(list(iter_rows(path, damage))) == 1
    assert damage.bad_bytes == 40
    assert damage.good_lines == 1


def test_damage_is_logged_once_per_file_and_counted_on_every_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.jsonl"
    table = JsonlStore(path)
    table.export([make_trace(0, name="good")])
    with path.open("ab") as f:
        f.write(b"not json\n")
    again = JsonlStore(path)  # another store over the same file in this process
    with caplog.at_level(logging.WARNING, logger="lowtrace"):
        for _ in range(3):
            assert names(table) == ["good"]
            assert names(again) == ["good"]
    assert table.damage.bad_lines == again.damage.bad_lines == 1
    assert caplog.text.count("unreadable row(s)") == 1
    with path.open("ab") as f:  # new damage is news: logged once more
        f.write(b"[1, 2]\n")
    with caplog.at_level(logging.WARNING, logger="lowtrace"):
        assert names(table) == ["good"]
        assert names(again) == ["good"]
    assert again.damage.bad_lines == 2
    assert caplog.text.count("unreadable row(s)") == 2
