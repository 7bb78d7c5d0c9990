"""``lowtrace --help`` and each subcommand's ``--help``: what a newcomer reads first."""

from __future__ import annotations

import re

import pytest

from tests.test_cli import lowtrace

#: Every subcommand, as the usage line lists them (a new one is checked too).
COMMANDS = re.findall(r"\{(.*?)\}", lowtrace("--help").stdout)[0].split(",")


def undescribed(help_text: str) -> list[str]:
    """Arguments listed in an argparse help text without a description."""
    missing: list[str] = []
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        entry = re.match(r"  (\S.*?)(?:  +\S.*)?$", line)
        if entry is None or line.strip().endswith(":") or "  " in line.strip():
            continue  # not an argument, a section title, or one with its help on the line
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if not re.match(r" {4,}\S", following):
            missing.append(entry.group(1))
    return missing


def test_the_overview_says_everything_the_command_does() -> None:
    result = lowtrace("--help")
    assert result.returncode == 0
    description = " ".join(result.stdout.split("positional arguments:")[0].split())
    for what in ("search", "feedback", "export", "delete", "compact", "web UI"):
        assert what in description


@pytest.mark.parametrize("command", COMMANDS)
def test_every_argument_says_what_it_is(command: str) -> None:
    result = lowtrace(command, "--help")
    assert result.returncode == 0, result.stderr
    assert undescribed(result.stdout) == []


def test_compact_asks_for_a_delta_table() -> None:
    help_text = " ".join(lowtrace("compact", "--help").stdout.split())
    assert "delta:///" in help_text
    assert "else sqlite:///lowtrace.db" not in help_text  # compact refuses that default
