"""Framework integrations under threads: runs that overlap in time still build their own trees."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import agents
import anthropic
import pytest
from agents import Agent, Runner, function_tool

from lowtrace import SpanStatus, TracingClient
from lowtrace.integrations import anthropic as lt_anthropic
from lowtrace.integrations import openai_agents as lt_agents
from tests.integrations.agents_model import ScriptedModel, call, say
from tests.integrations.anthropic_server import REPLY, FakeAnthropicServer
from tests.integrations.conftest import finished_traces

THREADS = 4


def run_in_threads(work: Any) -> list[Any]:
    results: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


@pytest.fixture
def agents_traced(client: TracingClient) -> Iterator[None]:
    agents.set_trace_processors([])
    lt_agents.autolog(client)
    yield
    lt_agents.disable()


def test_agent_runs_on_threads_at_once_each_get_their_own_trace(
    client: TracingClient, agents_traced: None
) -> None:
    all_in_tool = threading.Barrier(THREADS)

    @function_tool
    def wait_for_others(worker: int) -> str:
        """Blocks until every worker is inside its tool call."""
        all_in_tool.wait(timeout=20)
        return f"worker {worker} done"

    def work(i: int) -> str:
        agent = Agent(
            name=f"Worker{i}",
            tools=[wait_for_others],
            model=ScriptedModel(
                [call("wait_for_others", f'{{"worker": {i}}}', f"c{i}")], [say(f"answer {i}")]
            ),
        )
        return str(Runner.run_sync(agent, f"job {i}").final_output)

    answers = run_in_threads(work)

    traces = finished_traces(client)
    assert answers == [f"answer {i}" for i in range(THREADS)]
    assert len(traces) == THREADS
    for trace in traces:
        (agent,) = [s for s in trace.spans if s.name.startswith("Worker")]
        i = int(agent.name.removeprefix("Worker"))
        (tool,) = [s for s in trace.spans if s.name == "wait_for_others"]
        assert tool.inputs == {"worker": i}
        assert tool.outputs == f"worker {i} done"
        assert {s.trace_id for s in trace.spans} == {trace.info.trace_id}
        ids = {s.span_id for s in trace.spans}
        assert all(s.parent_id in ids for s in trace.spans if s.parent_id is not None)


def test_anthropic_streams_on_threads_each_end_their_own_span(client: TracingClient) -> None:
    lt_anthropic.autolog(client)
    started = threading.Barrier(THREADS)
    try:
        with FakeAnthropicServer() as server:
            claude = anthropic.Anthropic(base_url=server.base_url, api_key="t", max_retries=0)

            def work(i: int) -> str:
                messages = [{"role": "user", "content": f"question {i}"}]
                with claude.messages.stream(
                    model=f"m-{i}",
                    max_tokens=10,
                    messages=messages,  # type: ignore[arg-type]
                ) as stream:
                    started.wait(timeout=20)  # every stream is open before any is read
                    return stream.get_final_text()

            texts = run_in_threads(work)
    finally:
        lt_anthropic.disable()

    traces = finished_traces(client)
    assert texts == [REPLY] * THREADS
    assert sorted(t.spans[0].attributes["model"] for t in traces) == [
        f"m-{i}" for i in range(THREADS)
    ]
    for trace in traces:
        (span,) = trace.spans
        i = span.attributes["model"].removeprefix("m-")
        assert span.inputs["messages"][0]["content"] == f"question {i}"
        assert span.status is SpanStatus.OK
        assert span.outputs["content"][0]["text"] == REPLY
