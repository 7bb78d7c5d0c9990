"""The README's first command: the demo agent, and the follow-up commands it prints, pasted
into a shell as they are (a fresh virtualenv that is not activated, a store path with a
space, and the ``?`` and ``&`` of a ``delta://...?commit_traces=20000&commit_delay_s=60`` URI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lowtrace._stores.uri import open_store

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo_agent.py"
BASH = shutil.which("bash")


def run_demo(cwd: Path, uri: str | None) -> tuple[str, dict[str, str]]:
    """Run the demo as the README does (venv not activated); its output and environment."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir)
    env = {**os.environ, "PATH": path}
    env.pop("LOWTRACE_URI", None)
    if uri is not None:
        env["LOWTRACE_URI"] = uri
    done = demo_process(cwd, env, check=True)
    env.pop("LOWTRACE_URI", None)  # the commands must work in a fresh shell
    return done.stdout, env


def demo_process(
    cwd: Path, env: dict[str, str], *, check: bool
) -> subprocess.CompletedProcess[str]:
    """The demo run once in ``cwd`` with ``env``, its output captured."""
    return subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def printed_commands(stdout: str) -> list[str]:
    """The lines after "Look at it with:", up to the blank line before the browser's."""
    tail = stdout.split("Look at it with:\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in tail.splitlines() if line.strip()]


@pytest.mark.skipif(BASH is None, reason="needs bash to paste the commands into")
@pytest.mark.parametrize(
    "uri",
    [
        None,
        "sqlite:///{tmp}/my traces/demo.db",
        "sqlite:///{tmp}/a&b?c.db",  # what a delta:// URI's ?x=1&y=2 options do to a shell
    ],
    ids=["default store", "path with a space", "uri with options"],
)
def test_the_commands_the_demo_prints_work_when_pasted(tmp_path: Path, uri: str | None) -> None:
    if uri is not None:
        uri = uri.format(tmp=tmp_path)
        (tmp_path / "my traces").mkdir()
    stdout, env = run_demo(tmp_path, uri)
    trace_id = stdout.split()[1]
    commands = printed_commands(stdout)
    assert [c.split()[0].endswith("lowtrace") for c in commands] == [True, True, True]
    for command in commands:
        done = subprocess.run(
            [str(BASH), "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert trace_id in done.stdout, (command, done.stdout)


@pytest.mark.timeout(120)
@pytest.mark.skipif(BASH is None, reason="needs bash to paste the command into")
def test_the_demo_says_how_to_open_the_ui_and_that_command_serves_the_trace(
    tmp_path: Path,
) -> None:
    pytest.importorskip("starlette", reason="the UI command needs the 'ui' extra")
    stdout, env = run_demo(tmp_path, None)
    trace_id = stdout.split()[1]
    command = stdout.split("Or in the browser (Ctrl+C stops it):\n", 1)[1].strip()
    assert command.endswith("lowtrace ui") and "\n" not in command
    server = subprocess.Popen(  # --port 0: whatever port is free, printed on the first line
        [str(BASH), "-c", f"exec {command} --port 0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("lowtrace ui: http://127.0.0.1:"), first
        url = first.split()[2]
        with urllib.request.urlopen(url, timeout=30) as response:
            assert trace_id in response.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_with_a_store_that_keeps_nothing_the_demo_still_shows_its_trace(tmp_path: Path) -> None:
    """``LOWTRACE_URI=none://`` (the collector deployment) set in the shell: no traceback."""
    stdout, _ = run_demo(tmp_path, "none://")
    assert stdout.startswith("Trace ") and "✗ get_weather [TOOL]" in stdout
    assert "none:// keeps no traces" in stdout and "lowtrace list" not in stdout


def test_with_tracing_off_the_demo_says_so_without_a_traceback(tmp_path: Path) -> None:
    done = demo_process(tmp_path, {**os.environ, "LOWTRACE_ENABLED": "false"}, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "LOWTRACE_ENABLED=false" in done.stderr and not (tmp_path / "lowtrace.db").exists()


def test_each_run_of_the_demo_is_one_more_turn_of_its_conversation(tmp_path: Path) -> None:
    # A newcomer's Sessions page has something to show after the second run.
    uri = f"sqlite:///{tmp_path}/demo.db"
    for _ in range(2):
        run_demo(tmp_path, uri)
    store = open_store(uri, create=False)
    try:
        (session,) = store.sessions()
        assert (session.session_id, session.traces, session.user_id) == (
            "demo-conversation",
            2,
            "alice",
        )
    finally:
        store.shutdown()
