"""``lowtrace ui`` as users start it: loopback by default, refusals, a real server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from lowtrace._stores.uri import redact
from lowtrace._ui.compare import NameStats, compare_traces
from lowtrace._ui.guard import host_name
from lowtrace._ui.server import is_loopback, serve
from lowtrace.errors import InvalidArgumentError, StoreNotFoundError
from tests.test_cli import lowtrace
from tests.ui.conftest import Seeded


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_header_parsing() -> None:
    assert host_name("127.0.0.1:5800") == "127.0.0.1"
    assert host_name("[::1]:5800") == "::1"
    assert host_name("[::1]") == "::1"
    assert host_name("LocalHost") == "localhost"


def test_store_passwords_are_not_shown() -> None:
    assert redact("postgresql://app:s3cret@db:5432/traces") == "postgresql://app:***@db:5432/traces"
    assert redact("sqlite:///lowtrace.db") == "sqlite:///lowtrace.db"


def test_serve_refuses_a_non_loopback_address_unless_allowed(seeded: Seeded) -> None:
    with pytest.raises(InvalidArgumentError, match="--allow-remote"):
        serve(seeded.uri, host="0.0.0.0", port=0)


def test_serve_never_creates_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        serve(f"sqlite:///{tmp_path}/missing.db", port=0)
    assert not (tmp_path / "missing.db").exists()


def test_cli_refusals_are_one_line_and_non_zero(seeded: Seeded, tmp_path: Path) -> None:
    remote = lowtrace("ui", "--uri", seeded.uri, "--host", "0.0.0.0", "--port", "0")
    assert remote.returncode == 1 and "--allow-remote" in remote.stderr
    assert "Traceback" not in remote.stderr
    missing = lowtrace("ui", "--uri", f"sqlite:///{tmp_path}/nope.db")
    assert missing.returncode == 1 and "no lowtrace store" in missing.stderr
    bad_prices = tmp_path / "prices.json"
    bad_prices.write_text('{"m": 3}')
    prices = lowtrace("ui", "--uri", seeded.uri, "--prices", str(bad_prices))
    assert prices.returncode == 2 and "--prices" in prices.stderr


def test_cli_serves_on_loopback_and_stops_on_ctrl_c(seeded: Seeded, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"small-model": [1.0, 4.0]}')
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lowtrace",
            "ui",
            "--uri",
            seeded.uri,
            "--port",
            "0",
            "--prices",
            str(prices),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()  # printed once the socket listens
        assert "loopback only" in banner, banner
        url = banner.split()[2]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        assert "13 traces match" in page
        trace_id = seeded.agents[1].info.trace_id
        with urllib.request.urlopen(f"{url}traces/{trace_id}", timeout=10) as response:
            assert "cost 0.000260" in response.read().decode()
        request = urllib.request.Request(url, headers={"Host": "rebound.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 421
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
    assert code == 0


def test_cli_exports_a_golden_dataset(seeded: Seeded) -> None:
    result = lowtrace("export", "--uri", seeded.uri, "--golden", "--filter", "status = 'ERROR'")
    assert result.returncode == 0, result.stderr
    (row,) = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert row == {
        "inputs": {"question": "question 7"},
        "outputs": None,
        "tags": {"app.version": "v2"},
        "trace_id": seeded.agents[7].info.trace_id,
        "name": "answer_question",
        "status": "ERROR",
    }


def test_compare_traces_rows(seeded: Seeded) -> None:
    rows = {row.name: row for row in compare_traces(seeded.agents[0], seeded.agents[7])}
    assert set(rows) == {"answer_question", "retrieve", "chat"}
    assert (rows["retrieve"].a.count, rows["retrieve"].b.count) == (1, 2)
    assert (rows["chat"].a.errors, rows["chat"].b.errors) == (0, 1)
    assert rows["chat"].tokens_delta == 80
    alone = compare_traces(seeded.agents[0], seeded.hostile)
    assert {r.name for r in alone if r.b == NameStats()} == {"answer_question", "retrieve", "chat"}


def test_ui_module_names_the_extra_when_starlette_is_missing(tmp_path: Path) -> None:
    blocker = tmp_path / "starlette.py"
    blocker.write_text("raise ImportError('starlette blocked for this test')\n")
    result = subprocess.run(
        [sys.executable, "-c", "import lowtrace._ui.app"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "pip install 'lowtrace[ui]'" in result.stderr


def test_a_full_page_selection_fits_in_the_request(live_ui: str, seeded: Seeded) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    ids = [t.info.trace_id for t in seeded.all] + [f"{n:032x}" for n in range(487)]
    assert len(ids) == 500
    query = urllib.parse.urlencode([("id", i) for i in ids])
    assert len(query) > 16 * 1024  # over h11's default limit
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{live_ui}/export?{query}", timeout=30)
    assert missing.value.code == 404  # our page about the unknown ids, not a refused request
    real = urllib.parse.urlencode([("id", t.info.trace_id) for t in seeded.all])
    with urllib.request.urlopen(f"{live_ui}/delete?{real}", timeout=30) as response:
        assert "Delete 13 traces?" in response.read().decode()
