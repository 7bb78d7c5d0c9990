"""The real OpenAI Agents SDK, run on a scripted fake ``Model``, traced by ``autolog()``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import agents
import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    Runner,
    function_tool,
    input_guardrail,
)
from agents.tracing import custom_span, trace

from lowtrace import SpanStatus, SpanType, Trace, TracingClient
from lowtrace.integrations import openai_agents as lt_agents
from tests.integrations.agents_model import ScriptedModel, call, say
from tests.integrations.conftest import finished_traces


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny in {city}"


@input_guardrail
def no_secrets(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info="checked", tripwire_triggered="secret" in str(text))


def agents_pair() -> Agent[Any]:
    """Triage hands off to Weather, which calls a tool and answers."""
    weather = Agent(
        name="Weather",
        instructions="Answer about the weather.",
        tools=[get_weather],
        model=ScriptedModel(
            [call("get_weather", '{"city": "Paris"}', "call_1")],
            [say("It is sunny in Paris.")],
        ),
    )
    return Agent(
        name="Triage",
        instructions="Route the question.",
        handoffs=[weather],
        input_guardrails=[no_secrets],
        model=ScriptedModel([call("transfer_to_weather", "{}", "call_0")]),
    )


@pytest.fixture(autouse=True)
def traced(client: TracingClient) -> Iterator[None]:
    agents.set_trace_processors([])  # no exporting to the SDK's own backend from tests
    lt_agents.autolog(client)
    yield
    lt_agents.disable()


def agent_of(trace: Trace, span: Any) -> str | None:
    """The name of the nearest AGENT span above ``span`` (None at the top)."""
    by_id = {s.span_id: s for s in trace.spans}
    parent = by_id.get(span.parent_id)
    while parent is not None and parent.span_type is not SpanType.AGENT:
        parent = by_id.get(parent.parent_id)
    return None if parent is None or parent.parent_id is None else parent.name


def named(trace: Trace, name: str) -> Any:
    (span,) = [s for s in trace.spans if s.name == name]
    return span


def test_run_with_guardrail_handoff_and_tool_keeps_the_sdk_parentage(
    client: TracingClient,
) -> None:
    result = asyncio.run(Runner.run(agents_pair(), "What is the weather in Paris?"))

    (trace,) = finished_traces(client)
    assert result.final_output == "It is sunny in Paris."
    assert trace.info.name == "Agent workflow"
    triage, weather = named(trace, "Triage"), named(trace, "Weather")
    # the SDK's own tree: agents under the workflow, each step under its agent
    assert trace.spans[0].name == "Agent workflow"
    assert agent_of(trace, triage) is None and agent_of(trace, weather) is None
    assert agent_of(trace, named(trace, "no_secrets")) == "Triage"
    assert agent_of(trace, named(trace, "handoff")) == "Triage"
    assert agent_of(trace, named(trace, "get_weather")) == "Weather"
    generations = [s for s in trace.spans if s.name == "generation"]
    assert [agent_of(trace, g) for g in generations] == ["Triage", "Weather", "Weather"]
    assert {s.trace_id for s in trace.spans} == {trace.info.trace_id}
    assert len({s.span_id for s in trace.spans}) == len(trace.spans)

    assert triage.span_type is SpanType.AGENT
    assert triage.attributes["handoffs"] == ["Weather"]
    assert weather.attributes["tools"] == ["get_weather"]


def test_spans_carry_inputs_outputs_and_usage(client: TracingClient) -> None:
    asyncio.run(Runner.run(agents_pair(), "What is the weather in Paris?"))

    (trace,) = finished_traces(client)
    tool = named(trace, "get_weather")
    assert tool.span_type is SpanType.TOOL
    assert tool.inputs == {"city": "Paris"}
    assert tool.outputs == "Sunny in Paris"
    handoff = named(trace, "handoff")
    assert handoff.outputs == {"from_agent": "Triage", "to_agent": "Weather"}
    guardrail = named(trace, "no_secrets")
    assert guardrail.span_type is SpanType.GUARDRAIL
    assert guardrail.attributes["triggered"] is False
    last = [s for s in trace.spans if s.name == "generation"][-1]
    assert last.span_type is SpanType.CHAT_MODEL
    assert last.attributes["model"] == "scripted"
    assert last.attributes["model_config"] == {"temperature": 0.0}
    assert last.inputs[0] == {"role": "system", "content": "Answer about the weather."}
    assert last.outputs[0]["content"][0]["text"] == "It is sunny in Paris."
    assert (last.token_usage.input_tokens, last.token_usage.output_tokens) == (10, 4)
    assert trace.info.token_usage.total_tokens == 3 * 14
    assert all(span.status is SpanStatus.OK for span in trace.spans)


def test_tripped_guardrail_is_recorded_and_the_error_reaches_the_caller(
    client: TracingClient,
) -> None:
    with pytest.raises(InputGuardrailTripwireTriggered):
        asyncio.run(Runner.run(agents_pair(), "tell me the secret"))

    (trace,) = finished_traces(client)
    guardrail = named(trace, "no_secrets")
    assert guardrail.attributes["triggered"] is True
    assert guardrail.outputs == {"triggered": True}
    # the SDK marks the step the guardrail stopped (its parent) with the error
    (stopped,) = [s for s in trace.spans if s.span_id == guardrail.parent_id]
    assert stopped.status is SpanStatus.ERROR
    assert "tripwire" in (stopped.status_message or "")
    assert [e.name for e in stopped.events] == ["error"]
    assert agent_of(trace, guardrail) == "Triage"


def test_failing_tool_marks_its_span_error(client: TracingClient) -> None:
    @function_tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"tool failed: {reason}")

    agent = Agent(
        name="Clumsy",
        tools=[explode],
        model=ScriptedModel([call("explode", '{"reason": "bad"}', "c1")], [say("Sorry.")]),
    )
    result = asyncio.run(Runner.run(agent, "go"))

    (trace,) = finished_traces(client)
    assert result.final_output == "Sorry."
    span = named(trace, "explode")
    assert span.status is SpanStatus.ERROR
    assert span.status_message


def test_custom_spans_and_a_trace_around_two_runs(client: TracingClient) -> None:
    async def main() -> None:
        with trace("Two questions", group_id="conversation-9"):
            with custom_span("lookup", {"key": "value"}):
                pass
            await Runner.run(agents_pair(), "Weather in Paris?")
            await Runner.run(agents_pair(), "And now?")

    asyncio.run(main())

    (recorded,) = finished_traces(client)
    assert recorded.info.name == "Two questions"
    assert recorded.info.tags["openai_agents.group_id"] == "conversation-9"
    assert named(recorded, "lookup").attributes["data"] == {"key": "value"}
    assert len([s for s in recorded.spans if s.name == "Triage"]) == 2


def test_disable_takes_the_processor_out(client: TracingClient) -> None:
    lt_agents.disable()
    asyncio.run(Runner.run(agents_pair(), "What is the weather in Paris?"))

    assert finished_traces(client) == []
    provider = agents.tracing.get_trace_provider()
    assert not any(
        isinstance(p, lt_agents.LowtraceTracingProcessor)
        for p in provider._multi_processor._processors  # type: ignore[attr-defined]
    )


def test_tracing_failure_never_breaks_the_run(
    client: TracingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracing backend exploded")

    monkeypatch.setattr(client, "start_trace", broken)
    result = asyncio.run(Runner.run(agents_pair(), "What is the weather in Paris?"))

    assert result.final_output == "It is sunny in Paris."
    assert any("openai_agents" in key for key in client.stats().violations)


def test_responses_model_against_a_local_server_gives_a_response_span(
    client: TracingClient, openai_server: Any
) -> None:
    import openai
    from agents import OpenAIResponsesModel

    from tests.integrations.openai_server import REPLY

    oai = openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)
    agent = Agent(name="Greeter", model=OpenAIResponsesModel("gpt-test", oai))
    result = asyncio.run(Runner.run(agent, "Hi!"))

    (trace,) = finished_traces(client)
    assert result.final_output == REPLY
    (response,) = [
        s for s in trace.spans if s.attributes.get("openai_agents.span_type") == "response"
    ]
    assert response.span_type is SpanType.CHAT_MODEL
    assert agent_of(trace, response) == "Greeter"
    assert response.attributes["model"] == "gpt-test"
    assert response.attributes["openai.response_id"] == "resp_1"
    assert response.outputs[0]["content"][0]["text"] == REPLY
    assert (response.token_usage.input_tokens, response.token_usage.output_tokens) == (11, 6)
    assert trace.info.token_usage.total_tokens == 17


def test_a_span_left_open_when_its_trace_ends_is_closed_and_forgotten(
    client: TracingClient,
) -> None:
    processor = lt_agents._Autolog.processor
    assert processor is not None
    with trace("Background work"):
        late = custom_span("still running", {"step": 1})
        late.start(mark_as_current=False)
    late.finish()  # after its trace: nothing left to record, nothing reported

    (recorded,) = finished_traces(client)
    span = named(recorded, "still running")
    assert span.status is SpanStatus.ERROR
    assert "still open" in (span.status_message or "")
    assert processor._runs == {}  # no leak of spans whose end never matters any more
    assert client.stats().violations == {}
