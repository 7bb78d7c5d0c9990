"""The README's Python examples, pasted into a file and run as they are, in an empty folder.

A newcomer copies them first; an example that no longer runs is a bug of the docs. The model
APIs are the local fake servers the integration tests use (their base URL and a key in the
environment, as a user sets them). An example that cannot run here says why in ``NOT_RUN``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.integrations.anthropic_server import FakeAnthropicServer
from tests.integrations.openai_server import FakeOpenAIServer

README = Path(__file__).resolve().parents[1] / "README.md"

#: First line of an example that is not run here -> why.
NOT_RUN = {
    "import polars as pl  # Polars reads the Delta log itself": "reads a table at /mnt/lake",
    "import duckdb": "reads a table at /mnt/lake, and duckdb is not a dependency",
    "from pyspark.sql import SparkSession": "needs a JVM and Maven (the README says so)",
    "import asyncio": "the Agents SDK also uploads to OpenAI's own tracing service",
}


def examples() -> list[tuple[int, str]]:
    """Every ```python block of the README with the line it starts on."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
    ]


def runnable() -> list[tuple[int, str]]:
    return [(line, code) for line, code in examples() if code.splitlines()[0] not in NOT_RUN]


@contextmanager
def model_apis() -> Iterator[dict[str, str]]:
    """The fake OpenAI and Anthropic servers, as the environment a user's shell would give."""
    with ExitStack() as stack:
        openai = stack.enter_context(FakeOpenAIServer())
        anthropic = stack.enter_context(FakeAnthropicServer())
        yield {
            "OPENAI_BASE_URL": openai.base_url,
            "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_BASE_URL": anthropic.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test",
        }


def test_every_example_is_run_or_says_why_not() -> None:
    firsts = [code.splitlines()[0] for _, code in examples()]
    assert set(NOT_RUN) <= set(firsts), "NOT_RUN names an example the README no longer has"
    assert len(runnable()) >= 10


@pytest.mark.parametrize(("line", "code"), runnable(), ids=[f"line {n}" for n, _ in runnable()])
def test_the_readme_example_runs_as_pasted(line: int, code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOWTRACE_", "OTEL_"))}
    is_test = "\ndef test_" in code
    script = tmp_path / ("test_example.py" if is_test else "example.py")
    script.write_text(code, encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    with model_apis() as apis:
        done = subprocess.run(
            command if is_test else [sys.executable, script.name],
            cwd=tmp_path,
            env={**env, **apis},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, f"README line {line}:\n{done.stdout}\n{done.stderr}"
