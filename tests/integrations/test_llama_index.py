"""Real ``llama-index-core``: MockLLM, MockEmbedding and an in-memory vector index, traced."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from lowtrace import SpanStatus, SpanType, TracingClient
from lowtrace.integrations import llama_index as lt_llama
from tests.integrations.conftest import finished_traces

DOCS = [
    Document(text="Paris is the capital of France."),
    Document(text="Berlin is the capital of Germany."),
    Document(text="Madrid is the capital of Spain."),
]


class UsageLLM(CustomLLM):
    """A real CustomLLM whose responses carry provider-style token usage, as OpenAI's do."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="usage-llm", is_chat_model=False)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(
            text="Paris.",
            raw={"usage": {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}},
        )

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        def gen() -> Iterator[CompletionResponse]:
            text = ""
            for piece in ("Par", "is."):
                text += piece
                yield CompletionResponse(text=text, delta=piece)

        return gen()


@pytest.fixture(autouse=True)
def settings() -> Iterator[None]:
    Settings.llm = MockLLM(max_tokens=8)
    Settings.embed_model = MockEmbedding(embed_dim=8)
    yield
    lt_llama.disable()


@pytest.fixture
def index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCS)  # built before tracing starts


def test_query_engine_tree(client: TracingClient, index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(similarity_top_k=2)
    lt_llama.autolog(client)

    response = engine.query("What is the capital of France?")

    (trace,) = finished_traces(client)
    root = trace.spans[0]
    assert root.name == "RetrieverQueryEngine.query"
    assert root.span_type is SpanType.CHAIN
    assert root.outputs["response"] == str(response)
    kinds = {s.name: s.span_type for s in trace.spans}
    assert kinds["VectorIndexRetriever.retrieve"] is SpanType.RETRIEVER
    assert kinds["MockEmbedding.get_query_embedding"] is SpanType.EMBEDDING
    assert kinds["MockLLM.complete"] is SpanType.LLM
    retrieve = next(s for s in trace.spans if s.name == "VectorIndexRetriever.retrieve")
    assert len(retrieve.outputs) == 2
    assert all("capital" in node["text"] for node in retrieve.outputs)
    ids = {s.span_id for s in trace.spans}
    assert all(s.parent_id in ids for s in trace.spans[1:])
    assert all(s.status is SpanStatus.OK for s in trace.spans)


def test_embedding_outputs_are_summarised(client: TracingClient) -> None:
    lt_llama.autolog(client)

    vector = Settings.embed_model.get_text_embedding("hello")

    (trace,) = finished_traces(client)
    assert len(vector) == 8
    assert trace.spans[0].span_type is SpanType.EMBEDDING
    assert trace.spans[0].outputs["dimensions"] == 8


def test_token_usage_from_llm_events(client: TracingClient, index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(llm=UsageLLM(), similarity_top_k=1)
    lt_llama.autolog(client)

    engine.query("capital of France?")

    (trace,) = finished_traces(client)
    complete = [s for s in trace.spans if s.name == "UsageLLM.complete"]
    assert complete and complete[0].token_usage is not None
    assert complete[0].token_usage.input_tokens == 30
    assert trace.info.token_usage is not None
    assert trace.info.token_usage.total_tokens == 32 * len(complete)


def test_streamed_completion_chunks_are_events(client: TracingClient) -> None:
    lt_llama.autolog(client)

    pieces = [r.delta for r in UsageLLM().stream_complete("hi")]

    (trace,) = finished_traces(client)
    assert pieces == ["Par", "is."]
    tokens = [e.attributes["token"] for s in trace.spans for e in s.events if e.name == "new_token"]
    assert tokens == ["Par", "is."]


def test_chat_span_type_and_error(client: TracingClient) -> None:
    class Broken(MockLLM):
        def chat(self, messages: Any, **kwargs: Any) -> ChatResponse:
            raise ConnectionError("model down")

    lt_llama.autolog(client)
    with pytest.raises(ConnectionError, match="model down"):
        Broken().chat([ChatMessage(role="user", content="hi")])

    (trace,) = finished_traces(client)
    assert trace.info.status is SpanStatus.ERROR
    span = trace.spans[0]
    assert span.span_type is SpanType.CHAT_MODEL
    assert "ConnectionError" in (span.status_message or "")


def test_concurrent_async_queries_make_separate_trees(
    client: TracingClient, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(similarity_top_k=1)
    lt_llama.autolog(client)

    async def main() -> None:
        await asyncio.gather(*[engine.aquery(f"capital number {i}?") for i in range(4)])

    asyncio.run(main())

    traces = finished_traces(client)
    assert len(traces) == 4
    for trace in traces:
        ids = {s.span_id for s in trace.spans}
        assert trace.spans[0].name == "RetrieverQueryEngine.aquery"
        assert all(s.parent_id in ids for s in trace.spans[1:])


def test_disable_stops_tracing(client: TracingClient, index: VectorStoreIndex) -> None:
    engine = index.as_query_engine()
    lt_llama.autolog(client)
    lt_llama.disable()

    engine.query("anything?")

    assert finished_traces(client) == []
