"""Without its framework installed, an integration says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "package", "extra"),
    [
        ("lowtrace.integrations.anthropic", "anthropic", "anthropic"),
        ("lowtrace.integrations.openai_agents", "agents", "openai-agents"),
        ("lowtrace.integrations.langchain", "langchain_core", "langchain"),
    ],
)
def test_import_without_the_package_names_the_extra(module: str, package: str, extra: str) -> None:
    script = (
        "import sys\n"
        f"sys.modules[{package!r}] = None  # as if it were not installed\n"
        "from lowtrace.errors import MissingExtraError\n"
        "try:\n"
        f"    __import__({module!r})\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"pip install 'lowtrace[{extra}]'" in done.stdout
