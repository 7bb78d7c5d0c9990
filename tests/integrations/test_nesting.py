"""Autologged OpenAI calls made inside a framework's span belong to that span's trace.

With OpenAI autolog on together with the Agents SDK processor or the LangChain handler, a
client call made in a tool or a graph node nests under that span; a call that a framework
model span already records (an Agents generation/response span, a LangChain chat model run)
is not recorded a second time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any, TypedDict

import agents
import anthropic
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, StateGraph

from lowtrace import SpanType, Trace, TracingClient
from lowtrace.integrations import anthropic as lt_anthropic
from lowtrace.integrations import openai as lt_openai
from lowtrace.integrations import openai_agents as lt_agents
from lowtrace.integrations.langchain import LowtraceCallbackHandler
from tests.integrations.agents_model import ScriptedModel, call, say
from tests.integrations.anthropic_server import FakeAnthropicServer
from tests.integrations.conftest import finished_traces
from tests.integrations.openai_server import REPLY, FakeOpenAIServer

ASK = [{"role": "user", "content": "Hi!"}]


@pytest.fixture(autouse=True)
def traced(client: TracingClient) -> Iterator[None]:
    agents.set_trace_processors([])  # no exporting to the SDK's own backend from tests
    lt_openai.autolog(client)
    lt_agents.autolog(client)
    yield
    lt_agents.disable()
    lt_openai.disable()


@pytest.fixture
def oai(openai_server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)


@pytest.fixture
def aoai(openai_server: FakeOpenAIServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)


def parent_of(trace: Trace, name: str) -> str:
    """The name of the parent span of the one span called ``name``."""
    by_id = {s.span_id: s for s in trace.spans}
    (span,) = [s for s in trace.spans if s.name == name]
    return by_id[span.parent_id].name


def names(trace: Trace) -> list[str]:
    return sorted(s.name for s in trace.spans)


# -- OpenAI Agents SDK --------------------------------------------------------------------


def test_agents_responses_model_call_is_recorded_once(
    client: TracingClient, aoai: openai.AsyncOpenAI
) -> None:
    agent = Agent(name="Greeter", model=OpenAIResponsesModel("gpt-test", aoai))
    result = asyncio.run(Runner.run(agent, "Hi!"))

    (trace,) = finished_traces(client)  # one trace, not a second one for the client call
    assert result.final_output == REPLY
    assert "openai.responses" not in names(trace)
    (model_call,) = [s for s in trace.spans if s.span_type is SpanType.CHAT_MODEL]
    assert model_call.attributes["openai_agents.span_type"] == "response"
    assert trace.info.token_usage.total_tokens == 17  # counted once


def test_agents_chat_completions_model_call_is_recorded_once(
    client: TracingClient, aoai: openai.AsyncOpenAI
) -> None:
    agent = Agent(name="Greeter", model=OpenAIChatCompletionsModel("gpt-test", aoai))
    result = asyncio.run(Runner.run(agent, "Hi!"))

    (trace,) = finished_traces(client)
    assert result.final_output == REPLY
    assert "openai.chat.completions" not in names(trace)
    (model_call,) = [s for s in trace.spans if s.span_type is SpanType.CHAT_MODEL]
    assert model_call.attributes["openai_agents.span_type"] == "generation"


def summarizing_agent(tool: Any) -> Agent[Any]:
    return Agent(
        name="Summarizer",
        tools=[tool],
        model=ScriptedModel([call(tool.name, "{}", "call_1")], [say("Done.")]),
    )


def test_client_call_in_an_agents_tool_nests_under_the_tool_and_does_not_leak(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    @function_tool
    def summarize() -> str:
        """Summarize with a direct model call."""
        reply = oai.chat.completions.create(model="gpt-test", messages=ASK)
        return str(reply.choices[0].message.content)

    asyncio.run(Runner.run(summarizing_agent(summarize), "Go"))
    oai.chat.completions.create(model="gpt-test", messages=ASK)  # after the run: unrelated

    inside, after = finished_traces(client)
    assert parent_of(inside, "openai.chat.completions") == "summarize"
    assert names(after) == ["openai.chat.completions"]


def test_concurrent_agent_runs_on_tasks_keep_their_client_calls_apart(
    client: TracingClient, aoai: openai.AsyncOpenAI
) -> None:
    async def main() -> None:
        both_open = asyncio.Barrier(2)

        def agent_for(topic: str) -> Agent[Any]:
            @function_tool(name_override=f"look_up_{topic}")
            async def look_up() -> str:
                """Look something up with a direct model call."""
                await both_open.wait()  # both runs' tool spans are open now
                await aoai.chat.completions.create(model=f"gpt-{topic}", messages=ASK)
                return topic

            return summarizing_agent(look_up)

        await asyncio.gather(Runner.run(agent_for("a"), "Go"), Runner.run(agent_for("b"), "Go"))

    asyncio.run(asyncio.wait_for(main(), timeout=30))

    traces = finished_traces(client)
    assert len(traces) == 2
    for trace in traces:
        (tool,) = [s for s in trace.spans if s.name.startswith("look_up_")]
        (model_call,) = [s for s in trace.spans if s.name == "openai.chat.completions"]
        assert model_call.parent_id == tool.span_id
        assert model_call.attributes["model"] == "gpt-" + tool.name[-1]


def test_concurrent_agent_runs_on_threads_keep_their_client_calls_apart(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    both_open = threading.Barrier(2, timeout=30)

    def run(topic: str) -> None:
        @function_tool(name_override=f"look_up_{topic}")
        def look_up() -> str:
            """Look something up with a direct model call."""
            both_open.wait()
            oai.chat.completions.create(model=f"gpt-{topic}", messages=ASK)
            return topic

        asyncio.run(Runner.run(summarizing_agent(look_up), "Go"))

    threads = [threading.Thread(target=run, args=(t,)) for t in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    traces = finished_traces(client)
    assert len(traces) == 2
    for trace in traces:
        (tool,) = [s for s in trace.spans if s.name.startswith("look_up_")]
        (model_call,) = [s for s in trace.spans if s.name == "openai.chat.completions"]
        assert model_call.parent_id == tool.span_id
        assert model_call.attributes["model"] == "gpt-" + tool.name[-1]


# -- LangChain / LangGraph ----------------------------------------------------------------


class ChatViaOpenAI(BaseChatModel):
    """A LangChain chat model that calls the real ``openai`` client, as ChatOpenAI does."""

    base_url: str

    @property
    def _llm_type(self) -> str:
        return "chat-via-openai"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        oai = openai.OpenAI(base_url=self.base_url, api_key="test", max_retries=0)
        sent = [{"role": "user", "content": str(m.content)} for m in messages]
        reply = oai.chat.completions.create(model="gpt-test", messages=sent)  # type: ignore[arg-type]
        text = str(reply.choices[0].message.content)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        (generation,) = self._generate(messages).generations
        yield ChatGenerationChunk(message=AIMessageChunk(content=generation.message.content))


class State(TypedDict):
    topic: str
    answer: str


def graph(node: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("answer", node)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


def test_chat_model_in_a_node_is_one_trace_without_a_duplicate_client_span(
    client: TracingClient, openai_server: FakeOpenAIServer
) -> None:
    model = ChatViaOpenAI(base_url=openai_server.base_url)

    def answer(state: State) -> dict[str, Any]:
        return {"answer": model.invoke(state["topic"]).content}

    out = graph(answer).invoke(
        {"topic": "hi", "answer": ""}, config={"callbacks": [LowtraceCallbackHandler(client)]}
    )

    (trace,) = finished_traces(client)
    assert out["answer"] == REPLY
    assert "openai.chat.completions" not in names(trace)
    assert parent_of(trace, "ChatViaOpenAI") == "answer"


def test_client_call_in_a_node_nests_under_the_node_and_does_not_leak(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    def answer(state: State) -> dict[str, Any]:
        reply = oai.chat.completions.create(model="gpt-test", messages=ASK)
        return {"answer": reply.choices[0].message.content}

    graph(answer).invoke(
        {"topic": "hi", "answer": ""}, config={"callbacks": [LowtraceCallbackHandler(client)]}
    )
    oai.chat.completions.create(model="gpt-test", messages=ASK)

    inside, after = finished_traces(client)
    assert parent_of(inside, "openai.chat.completions") == "answer"
    assert names(after) == ["openai.chat.completions"]


def test_batch_on_threads_keeps_each_node_s_client_call_in_its_own_trace(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    both_open = threading.Barrier(2, timeout=30)

    def answer(state: State) -> dict[str, Any]:
        both_open.wait()
        oai.chat.completions.create(model=f"gpt-{state['topic']}", messages=ASK)
        return {"answer": state["topic"]}

    inputs = [{"topic": t, "answer": ""} for t in "ab"]
    graph(answer).batch(inputs, config={"callbacks": [LowtraceCallbackHandler(client)]})

    traces = finished_traces(client)
    assert len(traces) == 2
    for trace in traces:
        (node,) = [s for s in trace.spans if s.name == "answer"]
        (model_call,) = [s for s in trace.spans if s.name == "openai.chat.completions"]
        assert model_call.parent_id == node.span_id
        assert model_call.attributes["model"] == "gpt-" + node.inputs["topic"]


def test_concurrent_async_graph_runs_keep_their_client_calls_apart(
    client: TracingClient, aoai: openai.AsyncOpenAI
) -> None:
    async def main() -> None:
        both_open = asyncio.Barrier(2)

        async def answer(state: State) -> dict[str, Any]:
            await both_open.wait()
            await aoai.chat.completions.create(model=f"gpt-{state['topic']}", messages=ASK)
            return {"answer": state["topic"]}

        app = graph(answer)
        config: Any = {"callbacks": [LowtraceCallbackHandler(client)]}
        await asyncio.gather(
            *(app.ainvoke({"topic": t, "answer": ""}, config=config) for t in "ab")
        )

    asyncio.run(asyncio.wait_for(main(), timeout=30))

    traces = finished_traces(client)
    assert len(traces) == 2
    for trace in traces:
        (node,) = [s for s in trace.spans if s.name == "answer"]
        (model_call,) = [s for s in trace.spans if s.name == "openai.chat.completions"]
        assert model_call.parent_id == node.span_id
        assert model_call.attributes["model"] == "gpt-" + node.inputs["topic"]


def test_a_client_call_made_while_consuming_a_chat_model_stream_is_still_recorded(
    client: TracingClient, openai_server: FakeOpenAIServer, oai: openai.OpenAI
) -> None:
    model = ChatViaOpenAI(base_url=openai_server.base_url)
    handler = LowtraceCallbackHandler(client)

    stream = model.stream("hi", config={"callbacks": [handler]})
    assert next(stream).content == REPLY  # the stream's run is open here, in this context
    oai.chat.completions.create(model="gpt-side", messages=ASK)
    list(stream)

    (trace,) = finished_traces(client)
    (side,) = [s for s in trace.spans if s.name == "openai.chat.completions"]
    assert side.attributes["model"] == "gpt-side"  # the model's own call is still not doubled
    assert parent_of(trace, "openai.chat.completions") == "ChatViaOpenAI"


def test_a_broken_framework_lookup_never_breaks_the_client_call(
    client: TracingClient, oai: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("lookup exploded")

    monkeypatch.setattr(lt_agents.LowtraceTracingProcessor, "frame", broken)

    @function_tool
    def summarize() -> str:
        """Summarize with a direct model call."""
        reply = oai.chat.completions.create(model="gpt-test", messages=ASK)
        return str(reply.choices[0].message.content)

    result = asyncio.run(Runner.run(summarizing_agent(summarize), "Go"))

    assert result.final_output == "Done."
    assert any("openai" in key for key in client.stats().violations)


def test_anthropic_call_in_a_node_nests_under_the_node(client: TracingClient) -> None:
    def answer(state: State) -> dict[str, Any]:
        reply = claude.messages.create(model="claude-test", max_tokens=64, messages=ASK)  # type: ignore[arg-type]
        return {"answer": reply.content[0].text}  # type: ignore[union-attr]

    lt_anthropic.autolog(client)
    try:
        with FakeAnthropicServer() as server:
            claude = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
            graph(answer).invoke(
                {"topic": "hi", "answer": ""},
                config={"callbacks": [LowtraceCallbackHandler(client)]},
            )
    finally:
        lt_anthropic.disable()

    (trace,) = finished_traces(client)
    assert parent_of(trace, "anthropic.messages") == "answer"
