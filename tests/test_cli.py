"""The ``lowtrace`` command, run as a real subprocess: output, exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard

from lowtrace import SpanType, TracingClient


def lowtrace(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lowtrace", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('cli')}/traces.db"
    with TracingClient(uri) as client:
        for n in range(30):
            root = client.start_trace(f"agent{n % 3}", inputs={"n": n}, tags={"batch": n // 10})
            tool = client.start_span(
                "lookup", trace_id=root.trace_id, parent_id=root.span_id, span_type=SpanType.TOOL
            )
            tool.set_token_usage(input_tokens=n, output_tokens=1)
            if n % 5 == 0:
                tool.record_exception(ValueError(f"failure {n}"))
            tool.end(outputs={"value": n})
            client.end_trace(root.trace_id, outputs="done", status="ERROR" if n % 5 == 0 else None)
        assert client.flush(10)
    return uri


def test_list_shows_the_newest_traces(store: str) -> None:
    result = lowtrace("list", "--uri", store, "--limit", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("TRACE ID") and len(lines) == 6
    assert "agent2" in lines[1]  # n = 29, the newest


def test_search_with_the_filter_language(store: str) -> None:
    result = lowtrace("search", "status = 'ERROR' AND tags.batch = '0'", "--uri", store)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()[1:]
    assert len(rows) == 2 and all("ERROR" in row for row in rows)
    as_json = lowtrace("search", "span.type = 'TOOL'", "--uri", store, "--json", "--limit", "3")
    traces = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert len(traces) == 3 and all(t["spans"][1]["span_type"] == "TOOL" for t in traces)


def test_show_prints_a_tree(store: str) -> None:
    listing = lowtrace(
        "search", "name = 'agent0' AND status = 'ERROR'", "--uri", store, "--json", "--limit", "1"
    )
    trace_id = orjson.loads(listing.stdout.splitlines()[0])["info"]["trace_id"]
    result = lowtrace("show", trace_id, "--uri", store, "--io")
    assert result.returncode == 0, result.stderr
    assert f"Trace {trace_id}" in result.stdout
    assert "✗ lookup [TOOL]" in result.stdout and "ValueError: failure" in result.stdout
    assert 'out: {"value":' in result.stdout


def test_export_all_and_rows(store: str, tmp_path: Path) -> None:
    target = tmp_path / "golden.jsonl.zst"
    result = lowtrace("export", "--uri", store, "--filter", "tags.batch = '2'", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert "exported 10 traces" in result.stderr
    with zstandard.ZstdDecompressor().stream_reader(target.open("rb")) as reader:
        lines = reader.read().splitlines()
    assert len(lines) == 10
    rows = lowtrace("export", "--uri", store, "--rows", "--limit", "2")
    parsed = [orjson.loads(line) for line in rows.stdout.splitlines()]
    assert len(parsed) == 2 and {"request", "response", "status", "trace"} <= set(parsed[0])


def test_delete_needs_yes_and_deletes(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/del.db"
    with TracingClient(uri) as client:
        ids = []
        for _ in range(3):
            root = client.start_trace("t")
            client.end_trace(root.trace_id)
            ids.append(root.trace_id)
        assert client.flush(5)
    refused = lowtrace("delete", ids[0], "--uri", uri)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = lowtrace("delete", ids[0], ids[1], "--uri", uri, "--yes")
    assert done.returncode == 0 and "deleted 2 traces" in done.stdout
    assert len(lowtrace("list", "--uri", uri).stdout.strip().splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "status = 'ERROR' AND"], "FilterError"),
        (["search", "colour = 'red'"], "unknown field 'colour'"),
        (["show", "f" * 32], "no trace"),
        (["search", "status = 'EROR'"], "status is one of UNSET, OK, ERROR, not 'EROR'"),
        (["search", "span.type = 'TOLL'"], "unknown span type 'TOLL' (did you mean 'TOOL'?)"),
    ],
)
def test_errors_are_short_messages_not_tracebacks(
    store: str, args: list[str], message: str
) -> None:
    result = lowtrace(*args, "--uri", store)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    result = lowtrace("list", cwd=tmp_path)  # the default sqlite:///lowtrace.db
    assert result.returncode == 1
    assert "no lowtrace store" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    assert lowtrace("list", "--uri", "bogus://x").returncode == 1


def test_a_missing_store_names_its_absolute_path_and_the_way_out(tmp_path: Path) -> None:
    result = lowtrace("list", cwd=tmp_path)
    assert f"no lowtrace store at {tmp_path.resolve() / 'lowtrace.db'}" in result.stderr
    assert "--uri" in result.stderr and "LOWTRACE_URI" in result.stderr


def test_an_absolute_path_with_three_slashes_is_pointed_out(store: str, tmp_path: Path) -> None:
    # sqlite:/// + path is relative (as in SQLAlchemy and MLflow); jsonl:/// and delta:///
    # take the same spelling as absolute, so a newcomer writes sqlite:///tmp/... and
    # misses the store that is right there.
    absolute = store.removeprefix("sqlite:///")
    assert absolute.startswith("/")
    result = lowtrace("list", "--uri", f"sqlite://{absolute}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"did you mean sqlite:///{absolute}" in result.stderr, result.stderr
    assert "four slashes" in result.stderr


def test_show_html_writes_the_newest_trace_as_a_page(store: str, tmp_path: Path) -> None:
    result = lowtrace("show", "--uri", store, "--html", str(tmp_path / "trace.html"))
    assert result.returncode == 0, result.stderr
    newest = lowtrace("list", "--uri", store, "--limit", "1").stdout.splitlines()[1].split()[0]
    page = (tmp_path / "trace.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and newest in page and "agent2" in page
    # The README's one-liner in a folder with no store: a message, no file, no traceback.
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = lowtrace("show", "--html", "trace.html", cwd=empty)
    assert nothing.returncode == 1 and "no lowtrace store" in nothing.stderr
    assert "Traceback" not in nothing.stderr and list(empty.iterdir()) == []


def test_the_demo_hint_is_a_command_that_runs(tmp_path: Path) -> None:
    import os
    import shlex

    demo = Path(__file__).resolve().parents[1] / "examples" / "demo_agent.py"
    env = {**os.environ, "PATH": "/usr/bin:/bin", "LOWTRACE_URI": ""}  # no venv on PATH
    env.pop("LOWTRACE_URI")
    ran = subprocess.run(
        [sys.executable, str(demo)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    hint = ran.stdout.split("Look at it with:\n", 1)[1].splitlines()[0].strip()
    assert hint.endswith(" list")
    listed = subprocess.run(
        shlex.split(hint),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, (hint, listed.stderr)
    assert "weather" in listed.stdout or "agent" in listed.stdout


def test_environment_uri_is_the_default(store: str, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "LOWTRACE_URI": store}
    result = subprocess.run(
        [sys.executable, "-m", "lowtrace", "list", "--limit", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == 2


def _one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    """The failure contract: exit 1, nothing on stdout, exactly one line on stderr."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lowtrace: "), result.stderr
    return lines[0]


def _corrupt_sqlite(path: Path, store_uri: str) -> None:
    data = bytearray(Path(store_uri.split("///", 1)[1]).read_bytes())
    page = int.from_bytes(data[16:18], "big")  # the file's page size (header offset 16)
    data[page : page * 3] = b"\xa5" * (page * 2)  # pages of the schema and the tables
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "kind",
    [
        "text-file",
        "directory",
        "corrupted-db",
        "garbage-table",
        "directory-table",
        "postgres-bad-port",
        "postgres-bad-option",
        "postgres-bad-host",
    ],
)
def test_every_store_failure_is_one_line(store: str, tmp_path: Path, kind: str) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes, not a database\n" * 200)
    garbage = tmp_path / "garbage.jsonl.zst"
    garbage.write_bytes(bytes(range(256)) * 64)
    corrupted = tmp_path / "corrupted.db"
    _corrupt_sqlite(corrupted, store)
    uri = {
        "text-file": f"sqlite:///{text}",
        "directory": f"sqlite:///{tmp_path}",
        "corrupted-db": f"sqlite:///{corrupted}",
        "garbage-table": f"jsonl://{garbage}",
        "directory-table": f"jsonl://{tmp_path}",
        "postgres-bad-port": "postgresql://u@127.0.0.1:notaport/db",
        "postgres-bad-option": "postgresql://u@127.0.0.1:1/db?connect_timeout=abc",
        "postgres-bad-host": "postgresql://u@[::1/db",
    }[kind]
    for args in (["list"], ["show", "f" * 32], ["export"]):
        _one_line_failure(lowtrace(*args, "--uri", uri))


def test_a_filter_with_a_lone_surrogate_or_control_is_one_line(store: str) -> None:
    line = _one_line_failure(lowtrace("search", "name = '\udcff\u202e'", "--uri", store))
    assert "FilterError" in line and "\u202e" not in line
    line = _one_line_failure(lowtrace("search", "name = ", "--uri", store))
    assert "FilterError" in line and "position 7" in line


def test_a_bad_row_in_a_table_is_skipped_with_a_one_line_warning(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TracingClient(f"jsonl://{path}") as client:
        client.end_trace(client.start_trace("kept").trace_id)
        assert client.flush(10)
    with path.open("ab") as f:
        f.write(b'{"trace": {"not": "a trace"}}\n')
    result = lowtrace("list", "--uri", f"jsonl://{path}")
    assert result.returncode == 0 and "kept" in result.stdout
    assert "1 unreadable row(s)" in result.stderr and len(result.stderr.splitlines()) == 1


def test_feedback_sessions_and_a_golden_dataset_from_expectations(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/chat.db"
    with TracingClient(uri) as client:
        turns = []
        for n, question in enumerate(["hi", "what is 6 x 7?", "thanks"]):
            root = client.start_trace("chat", inputs={"q": question}, metadata={"app": "v2"})
            client.set_trace_metadata(root.trace_id, session_id="conv-1", user_id="alice")
            client.end_trace(root.trace_id, outputs={"a": f"answer {n}"})
            turns.append(root.trace_id)
        other = client.start_trace("chat")
        client.end_trace(other.trace_id)
        client.log_expectation(turns[1], "answer", {"a": "42"})

    result = lowtrace(
        "feedback",
        turns[1],
        "correct",
        "false",
        "--uri",
        uri,
        "--source",
        "alice",
        "--rationale",
        "it is 42",
    )
    assert result.returncode == 0, result.stderr
    assert "feedback correct = false  by HUMAN/alice  (it is 42)" in result.stdout
    assert lowtrace("feedback", turns[1], "note", "too short", "--uri", uri).returncode == 0

    listed = lowtrace("list", "--session", "conv-1", "--uri", uri)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == turns  # in order
    assert other.trace_id not in listed.stdout

    shown = lowtrace("show", turns[1], "--uri", uri).stdout
    assert "session: conv-1  user: alice" in shown and "metadata: app=v2" in shown
    assert 'expectation answer = {"a":"42"}' in shown
    assert "feedback correct = false  by HUMAN/alice  (it is 42)" in shown

    golden = lowtrace("export", "--golden", "--filter", "session_id = 'conv-1'", "--uri", uri)
    rows = {row["trace_id"]: row for row in map(orjson.loads, golden.stdout.splitlines())}
    reviewed = rows[turns[1]]
    assert reviewed["outputs"] == {"a": "42"}  # the expectation is the expected output
    assert reviewed["recorded_outputs"] == {"a": "answer 1"}
    assert reviewed["feedback"] == {"correct": False, "note": "too short"}
    assert reviewed["session_id"] == "conv-1" and reviewed["metadata"] == {"app": "v2"}
    assert rows[turns[0]]["outputs"] == {"a": "answer 0"} and "feedback" not in rows[turns[0]]

    missing = lowtrace("feedback", "f" * 32, "correct", "true", "--uri", uri)
    assert missing.returncode == 1 and "TraceNotFoundError" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_price_files_may_price_prompt_cache_tokens(tmp_path: Path) -> None:
    from lowtrace._cli import _Failure, _load_prices

    prices = tmp_path / "prices.json"
    prices.write_text('{"m": [1, 2, 0.1, 1.25], "n": [3, 4]}')
    assert _load_prices(str(prices)) == {"m": (1.0, 2.0, 0.1, 1.25), "n": (3.0, 4.0)}
    prices.write_text('{"m": [1]}')
    with pytest.raises(_Failure):
        _load_prices(str(prices))


@pytest.mark.parametrize("days", ["nan", "inf", "-1"])
def test_delete_older_than_no_number_of_days_is_a_usage_error(store: str, days: str) -> None:
    result = lowtrace("delete", "--older-than-days", days, "--yes", "--uri", store)
    assert result.returncode == 2, result.stderr
    assert "--older-than-days" in result.stderr and "internal error" not in result.stderr
    assert len(lowtrace("list", "--uri", store).stdout.strip().splitlines()) > 1


def test_delete_older_than_before_the_epoch_deletes_nothing(store: str) -> None:
    result = lowtrace("delete", "--older-than-days", "1e308", "--yes", "--uri", store)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted 0 trace")


def test_list_marks_an_ok_trace_whose_tool_failed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/oslo.db"
    with TracingClient(uri) as client:
        for city, fails in (("Oslo", True), ("Paris", False)):
            root = client.start_trace(f"weather in {city}")
            tool = client.start_span(
                "get_weather", trace_id=root.trace_id, parent_id=root.span_id, span_type="TOOL"
            )
            if fails:
                tool.record_exception(ConnectionError("weather API unreachable"))
            tool.end()
            client.end_trace(root.trace_id, status="OK")
        assert client.flush(10)
    header, paris, oslo = lowtrace("list", "--uri", uri).stdout.splitlines()
    assert " OK ⚠1 " in oslo and "⚠" not in paris and " OK " in paris
    # Still a table: numbers end where their header ends, names start where theirs starts.
    for row in (paris, oslo):
        for column in ("DURATION", "SPANS", "TOKENS"):
            end = header.index(column) + len(column)
            assert row[end - 1] != " " and row[end] == " ", (column, row)
        at = header.index("NAME / TAGS")
        assert row[at - 1] == " " and row[at:].startswith("weather in ")
    rows = lowtrace("list", "--uri", uri, "--json").stdout.splitlines()
    assert [orjson.loads(row)["failed_spans"] for row in rows] == [0, 1]


def test_list_stays_a_table_when_an_error_trace_has_a_hundred_failed_spans(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path}/batch.db"
    with TracingClient(uri) as client:
        for name, failures in (("nightly batch", 100), ("ping", 0)):
            root = client.start_trace(name)
            for _ in range(failures):
                client.start_span("call", trace_id=root.trace_id, parent_id=root.span_id).end(
                    status="ERROR"
                )
            client.end_trace(root.trace_id, status="ERROR" if failures else "OK")
        assert client.flush(10)
    header, *rows = lowtrace("list", "--uri", uri).stdout.splitlines()
    assert any(" ERROR ⚠101 " in row for row in rows)  # the root span failed too
    for row in rows:
        for column in ("DURATION", "SPANS", "TOKENS"):
            end = header.index(column) + len(column)
            assert row[end - 1] != " " and row[end] == " ", (column, row)
        assert row[header.index("NAME / TAGS") - 1] == " "


def test_list_and_show_print_numbers_as_the_ui_does(tmp_path: Path) -> None:
    """The same duration and counts read alike in the terminal and in the browser: the CLI
    uses the UI's formatting (``2.13 s``, ``1,010``); ``--json`` keeps the raw numbers."""
    uri = f"sqlite:///{tmp_path}/numbers.db"
    with TracingClient(uri) as client:
        root = client.start_trace("slow agent", start_time_ns=1_000_000_000)
        step = client.start_span(
            "model",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.LLM,
            start_time_ns=1_000_000_000,
        )
        step.set_token_usage(input_tokens=1_000, output_tokens=10)
        step.end(end_time_ns=1_000_000_000 + 640_000_000)  # 640 ms
        client.end_trace(root.trace_id, end_time_ns=1_000_000_000 + 2_125_000_000)  # 2.125 s
    listing = lowtrace("list", "--uri", uri)
    assert listing.returncode == 0, listing.stderr
    row = listing.stdout.splitlines()[1]
    assert "2.13 s" in row and "1,010" in row
    assert "2,125.0 ms" not in row and " 1010 " not in row
    tree = lowtrace("show", "--uri", uri).stdout
    assert "2.13 s" in tree.splitlines()[0]
    assert "model [LLM] 640 ms  1,010 tok (1,000 in / 10 out)" in tree
    (as_json,) = lowtrace("list", "--uri", uri, "--json").stdout.splitlines()
    info = orjson.loads(as_json)["info"]
    assert info["end_time_ns"] - info["start_time_ns"] == 2_125_000_000
    assert info["token_usage"]["total_tokens"] == 1_010


@pytest.mark.parametrize("command", [["list"], ["search", "status = 'OK'"], ["export"]])
def test_a_negative_limit_is_a_usage_error_not_an_empty_answer(
    store: str, command: list[str]
) -> None:
    result = lowtrace(*command, "--limit", "-1", "--uri", store)
    assert result.returncode == 2, result.stdout
    assert "--limit" in result.stderr and "0 or more" in result.stderr
