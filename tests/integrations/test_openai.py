"""The real ``openai`` client, traced by ``autolog()``, against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import copy
import gc
from collections.abc import Iterator

import openai
import pytest

from lowtrace import SpanStatus, SpanType, TracingClient
from lowtrace.integrations import openai as lt_openai
from tests.integrations.conftest import finished_traces
from tests.integrations.openai_server import REPLY, FakeOpenAIServer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]


@pytest.fixture(autouse=True)
def traced(client: TracingClient) -> Iterator[None]:
    lt_openai.autolog(client)
    yield
    lt_openai.disable()


@pytest.fixture
def oai(openai_server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)


@pytest.fixture
def aoai(openai_server: FakeOpenAIServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)


def only_span(client: TracingClient):  # type: ignore[no-untyped-def]
    (trace,) = finished_traces(client)
    (span,) = trace.spans
    return trace, span


def test_chat_completion_is_one_chat_model_span(client: TracingClient, oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-test", messages=MESSAGES, temperature=0.3)

    trace, span = only_span(client)
    assert reply.choices[0].message.content == REPLY
    assert span.name == "openai.chat.completions"
    assert span.span_type is SpanType.CHAT_MODEL
    assert span.status is SpanStatus.OK
    assert span.inputs["messages"] == MESSAGES
    assert span.attributes["model"] == "gpt-test"
    assert span.attributes["temperature"] == 0.3
    assert span.outputs == {"role": "assistant", "content": REPLY}
    assert span.attributes["finish_reason"] == "stop"
    assert (span.token_usage.input_tokens, span.token_usage.output_tokens) == (11, 6)
    assert trace.info.token_usage.total_tokens == 17
    assert span.token_usage.cache_read_input_tokens == 8  # prompt_tokens_details.cached_tokens
    assert span.token_usage.cache_creation_input_tokens is None  # OpenAI does not report it


def test_streamed_chat_records_deltas_and_usage_chunk(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    stream = oai.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    _, span = only_span(client)
    assert text == REPLY
    assert span.outputs == {"role": "assistant", "content": REPLY}
    assert [e.attributes["token"] for e in span.events if e.name == "new_token"] == [
        w if i == 0 else " " + w for i, w in enumerate(REPLY.split(" "))
    ]
    assert span.token_usage.total_tokens == 17
    assert span.token_usage.cache_read_input_tokens == 8
    assert span.attributes["lowtrace.streamed_chunks"] >= len(REPLY.split(" "))


def test_stream_abandoned_after_one_chunk_still_ends_its_span(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    stream = oai.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    next(iter(stream))
    del stream
    gc.collect()

    _, span = only_span(client)
    assert span.status is SpanStatus.OK
    assert span.attributes["lowtrace.stream_closed_early"] is True


def test_stream_used_as_context_manager(client: TracingClient, oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)

    _, span = only_span(client)
    assert len(chunks) >= 2
    assert span.outputs["content"] == REPLY


def test_stream_proxy_survives_copy_and_half_built_lookups(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    stream = oai.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    twin = copy.copy(stream)  # copy looks up __setstate__ on an object that has no _stream yet
    assert twin.response is stream.response  # attributes still read through to openai.Stream
    bare = type(stream).__new__(type(stream))
    assert not hasattr(bare, "response")  # an AttributeError, not an endless recursion
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY

    _, span = only_span(client)
    assert span.outputs["content"] == REPLY


def test_responses_api_plain_and_streamed(client: TracingClient, oai: openai.OpenAI) -> None:
    plain = oai.responses.create(model="gpt-test", input="Hi!", instructions="Be brief.")
    with oai.responses.create(model="gpt-test", input="Hi!", stream=True) as stream:
        events = [event.type for event in stream]

    first, second = finished_traces(client)
    assert plain.output_text == REPLY
    assert events[-1] == "response.completed"
    for trace in (first, second):
        (span,) = trace.spans
        assert span.name == "openai.responses"
        assert span.span_type is SpanType.CHAT_MODEL
        assert span.outputs["output_text"] == REPLY
        assert span.token_usage.input_tokens == 11
        assert span.token_usage.output_tokens == 6
        assert span.token_usage.cache_read_input_tokens == 0  # input_tokens_details
    assert first.spans[0].inputs == {
        "model": "gpt-test",
        "input": "Hi!",
        "instructions": "Be brief.",
    }


def test_embeddings_span(client: TracingClient, oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="embed-test", input=["a", "b"])

    _, span = only_span(client)
    assert len(result.data) == 2
    assert span.span_type is SpanType.EMBEDDING
    assert span.outputs == {"count": 2, "dimensions": 3}
    assert span.token_usage.input_tokens == 4
    assert span.token_usage.cache_read_input_tokens is None  # not reported for embeddings


def test_api_error_is_recorded_and_reraised_unchanged(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        oai.chat.completions.create(model="fail-400", messages=MESSAGES)

    _, span = only_span(client)
    assert span.status is SpanStatus.ERROR
    assert "BadRequestError" in (span.status_message or "")
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "openai.BadRequestError"
    assert raised.value.status_code == 400


def test_async_client_plain_streamed_and_concurrent(
    client: TracingClient, aoai: openai.AsyncOpenAI
) -> None:
    async def main() -> list[str]:
        reply = await aoai.chat.completions.create(model="gpt-test", messages=MESSAGES)
        stream = await aoai.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        many = await asyncio.gather(
            *[aoai.chat.completions.create(model=f"gpt-{i}", messages=MESSAGES) for i in range(5)]
        )
        return [reply.choices[0].message.content, streamed] + [
            r.choices[0].message.content for r in many
        ]

    texts = asyncio.run(main())

    traces = finished_traces(client)
    assert texts == [REPLY] * 7
    assert len(traces) == 7
    assert all(t.spans[0].outputs["content"] == REPLY for t in traces)
    assert all(t.info.token_usage.total_tokens == 17 for t in traces)
    assert sorted(t.spans[0].attributes["model"] for t in traces[2:]) == [
        f"gpt-{i}" for i in range(5)
    ]


def test_disable_restores_the_client(client: TracingClient, oai: openai.OpenAI) -> None:
    lt_openai.disable()
    oai.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert finished_traces(client) == []
    assert not hasattr(
        openai.resources.chat.completions.Completions.create, "__lowtrace_original__"
    )


def test_tracing_failure_never_breaks_the_call(
    client: TracingClient, oai: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracing backend exploded")

    monkeypatch.setattr(client, "start_trace", broken)

    reply = oai.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert reply.choices[0].message.content == REPLY
    assert any("openai" in key for key in client.stats().violations)


def test_calls_inside_a_traced_function_nest_under_it(
    client: TracingClient, oai: openai.OpenAI
) -> None:
    import lowtrace

    @lowtrace.trace(span_type="AGENT")
    def agent(question: str) -> str:
        reply = oai.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": question}]
        )
        return reply.choices[0].message.content or ""

    lowtrace.set_default_client(client)
    try:
        assert agent("hi") == REPLY
    finally:
        lowtrace.set_default_client(None)
    (trace,) = finished_traces(client)
    assert [(s.name, s.parent_id is None) for s in trace.spans] == [
        ("test_calls_inside_a_traced_function_nest_under_it.<locals>.agent", True),
        ("openai.chat.completions", False),
    ]
    assert trace.info.token_usage is not None and trace.info.token_usage.total_tokens == 17


def test_tools_given_as_a_generator_still_reach_the_api(
    client: TracingClient, oai: openai.OpenAI, openai_server: FakeOpenAIServer
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    oai.chat.completions.create(
        model="gpt-test",
        messages=MESSAGES,
        tools=(t for t in [tool]),  # type: ignore[arg-type]
    )

    _, span = only_span(client)
    assert openai_server.requests[-1][1]["tools"] == [tool]
    assert span.status is SpanStatus.OK
