"""Fixtures for the integration tests: the fake OpenAI server, and helpers to read traces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lowtrace import Trace, TracingClient
from tests.integrations.openai_server import FakeOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def finished_traces(client: TracingClient) -> list[Trace]:
    """Every trace the client stored, oldest first (flushes first)."""
    assert client.flush(timeout=10)
    return sorted(client.search_traces(max_results=1000), key=lambda t: t.info.start_time_ns)


def tree(trace: Trace) -> list[tuple[int, str, str]]:
    """(depth, name, span type) of every span, depth-first: compact to assert on."""
    return [(depth, span.name, str(span.span_type)) for depth, span in trace.walk()]
