"""Real ``langchain-core`` runnables, fake chat models and tools, traced by the callback handler."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_core.tools import tool

from lowtrace import SpanStatus, SpanType, TracingClient
from lowtrace.integrations import langchain as lt_langchain
from lowtrace.integrations.langchain import LowtraceCallbackHandler
from tests.integrations.conftest import finished_traces, tree


def model(reply: str = "Paris.", tokens: tuple[int, int] = (12, 3)) -> GenericFakeChatModel:
    usage = {"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens)}
    return GenericFakeChatModel(
        messages=iter([AIMessage(content=reply, usage_metadata=usage)] * 50)  # type: ignore[typeddict-item]
    )


def prompt() -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages(
        [("system", "Answer briefly."), ("user", "What is the capital of {country}?")]
    )


class Capitals(BaseRetriever):
    """A real retriever subclass over a tiny in-memory list."""

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [
            Document(page_content="Paris is the capital of France.", metadata={"source": "atlas"})
        ]


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"tool failed: {reason}")


@pytest.fixture
def handler(client: TracingClient) -> LowtraceCallbackHandler:
    return LowtraceCallbackHandler(client)


def test_chain_tree_span_by_span(client: TracingClient, handler: LowtraceCallbackHandler) -> None:
    chain = prompt() | model() | StrOutputParser()

    answer = chain.invoke({"country": "France"}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    assert answer == "Paris."
    assert tree(trace) == [
        (0, "RunnableSequence", "CHAIN"),
        (1, "ChatPromptTemplate", "CHAIN"),
        (1, "GenericFakeChatModel", "CHAT_MODEL"),
        (1, "StrOutputParser", "PARSER"),
    ]
    root, template, chat, parser = trace.spans
    assert root.inputs == {"country": "France"}
    assert root.outputs == "Paris."
    assert chat.inputs == {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
    }
    assert chat.outputs == {"role": "assistant", "content": "Paris."}
    assert (chat.token_usage.input_tokens, chat.token_usage.output_tokens) == (12, 3)
    assert parser.outputs == "Paris."
    assert trace.info.token_usage.total_tokens == 15
    assert all(s.status is SpanStatus.OK for s in trace.spans)
    assert all(s.parent_id == root.span_id for s in (template, chat, parser))


def test_streamed_tokens_become_events(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    chain = prompt() | model("The capital is Paris.") | StrOutputParser()

    chunks = list(chain.stream({"country": "France"}, config={"callbacks": [handler]}))

    (trace,) = finished_traces(client)
    chat = next(s for s in trace.spans if s.span_type is SpanType.CHAT_MODEL)
    tokens = [e.attributes["token"] for e in chat.events if e.name == "new_token"]
    assert "".join(tokens) == "".join(chunks) == "The capital is Paris."
    assert chat.attributes["lowtrace.streamed_chunks"] == len(tokens)


def test_tools_and_tool_errors(client: TracingClient, handler: LowtraceCallbackHandler) -> None:
    assert multiply.invoke({"a": 6, "b": 7}, config={"callbacks": [handler]}) == 42
    with pytest.raises(ValueError, match="tool failed: on purpose"):
        explode.invoke({"reason": "on purpose"}, config={"callbacks": [handler]})

    ok, failed = finished_traces(client)
    (span,) = ok.spans
    assert (span.name, span.span_type, span.inputs, span.outputs) == (
        "multiply",
        SpanType.TOOL,
        {"a": 6, "b": 7},
        42,
    )
    assert span.attributes["description"] == "Multiply two integers."
    (bad,) = failed.spans
    assert bad.status is SpanStatus.ERROR
    assert failed.info.status is SpanStatus.ERROR
    assert "tool failed: on purpose" in (bad.status_message or "")
    assert [e.name for e in bad.events] == ["exception"]


def test_retriever_documents(client: TracingClient, handler: LowtraceCallbackHandler) -> None:
    docs = Capitals().invoke("capital of France", config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    (span,) = trace.spans
    assert len(docs) == 1
    assert span.span_type is SpanType.RETRIEVER
    assert span.inputs == {"query": "capital of France"}
    assert span.outputs == [
        {"page_content": "Paris is the capital of France.", "metadata": {"source": "atlas"}}
    ]


def test_parallel_branches_on_threads_make_one_correct_tree(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    branches = RunnableParallel(
        answer=prompt() | model() | StrOutputParser(),
        shout=RunnableLambda(lambda d: d["country"].upper()),
        docs=RunnableLambda(lambda d: d["country"]) | Capitals(),
    )

    result = branches.invoke({"country": "France"}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    assert result["answer"] == "Paris." and result["shout"] == "FRANCE"
    root = trace.spans[0]
    children = {s.name for s in trace.children(root.span_id)}
    assert children == {"RunnableSequence", "RunnableLambda"}
    ids = {s.span_id for s in trace.spans}
    assert all(s.parent_id in ids for s in trace.spans[1:])
    assert trace.info.span_count == len(trace.spans) == 9


def test_batch_makes_one_trace_per_input(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    chain = prompt() | model() | StrOutputParser()

    chain.batch(
        [{"country": c} for c in ("France", "Italy", "Spain", "Chile")],
        config={"callbacks": [handler], "max_concurrency": 4},
    )

    traces = finished_traces(client)
    assert len(traces) == 4
    assert sorted(t.spans[0].inputs["country"] for t in traces) == [
        "Chile",
        "France",
        "Italy",
        "Spain",
    ]
    assert all(len(t.spans) == 4 and t.info.token_usage.total_tokens == 15 for t in traces)


def test_async_gather_makes_separate_trees(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    chain = prompt() | model() | StrOutputParser()

    async def main() -> list[str]:
        return await asyncio.gather(
            *[
                chain.ainvoke({"country": c}, config={"callbacks": [handler]})
                for c in ("France", "Italy", "Spain")
            ]
        )

    assert asyncio.run(main()) == ["Paris."] * 3
    traces = finished_traces(client)
    assert len(traces) == 3
    for trace in traces:
        assert [d for d, _, _ in tree(trace)] == [0, 1, 1, 1]


def test_chain_error_marks_the_trace(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    def fail(_: object) -> str:
        raise RuntimeError("step failed")

    chain = prompt() | model() | RunnableLambda(fail)
    with pytest.raises(RuntimeError, match="step failed"):
        chain.invoke({"country": "France"}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    assert trace.info.status is SpanStatus.ERROR
    failing = next(s for s in trace.spans if s.name == "fail")
    assert failing.status is SpanStatus.ERROR


def test_autolog_traces_without_passing_callbacks(client: TracingClient) -> None:
    lt_langchain.autolog(client)
    try:
        (prompt() | model() | StrOutputParser()).invoke({"country": "France"})
    finally:
        lt_langchain.disable()
    (prompt() | model()).invoke({"country": "Italy"})  # after disable: not traced

    (trace,) = finished_traces(client)
    assert trace.spans[0].inputs == {"country": "France"}


def test_tracing_errors_never_reach_langchain(
    client: TracingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = LowtraceCallbackHandler(client)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracing exploded")

    monkeypatch.setattr(client, "start_trace", broken)

    answer = (prompt() | model() | StrOutputParser()).invoke(
        {"country": "France"}, config={"callbacks": [handler]}
    )

    assert answer == "Paris."
    assert sum(client.stats().violations.values()) >= 1


def test_an_abandoned_stream_leaves_no_runs_and_reports_nothing(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    chain = RunnableLambda(lambda text: text) | model("one two three four") | StrOutputParser()
    stream = chain.stream("hi", config={"callbacks": [handler]})
    first = next(stream)
    stream.close()  # the caller stops reading: inner runs end after the outer one
    del stream
    gc.collect()

    (trace,) = finished_traces(client)
    assert first == "one"
    assert trace.info.name == "RunnableSequence"
    assert handler._runs == {}
    assert client.stats().violations == {}


def test_callbacks_after_the_top_run_ended_are_ignored(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    top, child = uuid.uuid4(), uuid.uuid4()
    handler.on_chain_start({"name": "agent"}, {"q": 1}, run_id=top)
    handler.on_chain_start({"name": "step"}, {"q": 1}, run_id=child, parent_run_id=top)
    handler.on_chain_end({"a": 1}, run_id=top)  # out of order: the parent first
    handler.on_llm_new_token("late", run_id=child)
    handler.on_chain_end({"a": 2}, run_id=child)
    handler.on_chain_error(ValueError("after the end"), run_id=top)
    handler.on_chain_end({}, run_id=uuid.uuid4())  # never started

    (trace,) = finished_traces(client)
    assert [(s.name, s.status) for s in trace.spans] == [
        ("agent", SpanStatus.OK),
        ("step", SpanStatus.ERROR),  # still open when its trace ended
    ]
    assert handler._runs == {}
    assert client.stats().violations == {}


@pytest.fixture(autouse=True)
def _no_leftover_autolog() -> Iterator[None]:
    yield
    lt_langchain.disable()


def test_a_handler_with_its_own_client_records_there_inside_another_clients_span(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    import lowtrace

    with TracingClient("memory://") as other, lowtrace.start_span("outer", client=other):
        answer = (prompt() | model() | StrOutputParser()).invoke(
            {"country": "France"}, config={"callbacks": [handler]}
        )
        assert other.flush(5)
        assert client.stats().violations == {}

    (trace,) = finished_traces(client)  # its own trace, in its own client: never lost
    assert answer == "Paris."
    assert tree(trace)[0] == (0, "RunnableSequence", "CHAIN")
    assert len(trace.spans) == 4


def test_fluent_spans_with_an_explicit_client_record_there_inside_another_clients_span(
    client: TracingClient,
) -> None:
    import lowtrace

    with TracingClient("memory://") as other, lowtrace.start_span("outer", client=other):
        with lowtrace.start_span("mine", client=client):
            pass
    (trace,) = finished_traces(client)
    assert [s.name for s in trace.spans] == ["mine"]
