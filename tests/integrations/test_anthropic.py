"""The real ``anthropic`` client, traced by ``autolog()``, against a local Messages API server."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import anthropic
import pytest

from lowtrace import SpanStatus, SpanType, TracingClient
from lowtrace.integrations import anthropic as lt_anthropic
from tests.integrations.anthropic_server import REPLY, TOOL_INPUT, FakeAnthropicServer
from tests.integrations.conftest import finished_traces

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WORDS = [w if i == 0 else " " + w for i, w in enumerate(REPLY.split(" "))]


@pytest.fixture(autouse=True)
def traced(client: TracingClient) -> Iterator[None]:
    lt_anthropic.autolog(client)
    yield
    lt_anthropic.disable()


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def claude(server: FakeAnthropicServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)


@pytest.fixture
def aclaude(server: FakeAnthropicServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key="test", max_retries=0)


def only_span(client: TracingClient):  # type: ignore[no-untyped-def]
    (trace,) = finished_traces(client)
    (span,) = trace.spans
    return trace, span


def assert_usage_with_cache(span) -> None:  # type: ignore[no-untyped-def]
    # the prompt's tokens: 21 uncached + 100 read from the cache + 7 written to it
    assert (span.token_usage.input_tokens, span.token_usage.output_tokens) == (128, 9)
    assert span.token_usage.total_tokens == 137
    assert span.attributes["llm.usage.cache_read_input_tokens"] == 100
    assert span.attributes["llm.usage.cache_creation_input_tokens"] == 7
    assert span.token_usage.cache_read_input_tokens == 100
    assert span.token_usage.cache_creation_input_tokens == 7


def test_message_is_one_chat_model_span(client: TracingClient, claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(
        model="claude-test",
        max_tokens=100,
        system="Be brief.",
        messages=MESSAGES,
        stop_sequences=["END"],
        service_tier="auto",
    )

    trace, span = only_span(client)
    assert reply.content[0].text == REPLY  # type: ignore[union-attr]
    assert span.name == "anthropic.messages"
    assert span.span_type is SpanType.CHAT_MODEL
    assert span.status is SpanStatus.OK
    assert span.inputs == {
        "model": "claude-test",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": MESSAGES,
        "stop_sequences": ["END"],
        "service_tier": "auto",
    }
    assert span.attributes["model"] == "claude-test"
    assert span.attributes["max_tokens"] == 100
    assert span.attributes["service_tier"] == "auto"
    assert span.attributes["invocation_params"]["stop_sequences"] == ["END"]
    assert span.attributes["stop_reason"] == "end_turn"
    assert span.outputs == {"role": "assistant", "content": [{"type": "text", "text": REPLY}]}
    assert_usage_with_cache(span)
    assert trace.info.token_usage.total_tokens == 137


def test_tool_use_blocks_are_inputs_and_outputs(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    reply = claude.messages.create(
        model="claude-test",
        max_tokens=100,
        messages=MESSAGES,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "auto"},
    )

    _, span = only_span(client)
    assert reply.stop_reason == "tool_use"
    assert span.inputs["tools"] == [WEATHER]
    assert span.attributes["tools"] == 1
    assert span.attributes["invocation_params"]["tool_choice"] == {"type": "auto"}
    assert span.attributes["stop_reason"] == "tool_use"
    assert span.outputs["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": TOOL_INPUT,
    }


def test_stream_true_records_text_tool_use_and_usage(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    stream = claude.messages.create(
        model="claude-test", max_tokens=100, messages=MESSAGES, tools=[WEATHER], stream=True
    )
    kinds = [event.type for event in stream]

    _, span = only_span(client)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert span.status is SpanStatus.OK
    assert span.attributes["stream"] is True
    assert [e.attributes["token"] for e in span.events if e.name == "new_token"] == WORDS
    assert span.outputs == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": REPLY},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": TOOL_INPUT},
        ],
    }
    assert span.attributes["stop_reason"] == "tool_use"
    assert_usage_with_cache(span)
    assert "lowtrace.stream_closed_early" not in span.attributes


def test_messages_stream_helper_ends_the_span_with_the_stream(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(model="claude-test", max_tokens=100, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    _, span = only_span(client)
    assert text == REPLY
    assert final.content[0].text == REPLY  # type: ignore[union-attr]
    assert span.name == "anthropic.messages"
    assert span.inputs["messages"] == MESSAGES
    assert span.outputs == {"role": "assistant", "content": [{"type": "text", "text": REPLY}]}
    assert_usage_with_cache(span)
    assert "lowtrace.stream_closed_early" not in span.attributes


def test_messages_stream_left_early_ends_the_span(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(model="claude-test", max_tokens=100, messages=MESSAGES) as stream:
        first = next(iter(stream.text_stream))

    _, span = only_span(client)
    assert first == WORDS[0]
    assert span.status is SpanStatus.OK
    assert span.attributes["lowtrace.stream_closed_early"] is True
    assert span.outputs["content"] == [{"type": "text", "text": WORDS[0]}]


def test_stream_dropped_after_one_event_still_ends_its_span(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    stream = claude.messages.create(
        model="claude-test", max_tokens=100, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    del stream
    gc.collect()

    _, span = only_span(client)
    assert span.attributes["lowtrace.stream_closed_early"] is True


def test_api_error_is_recorded_and_the_same_exception_reraised(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(model="fail-400", max_tokens=10, messages=MESSAGES)

    _, span = only_span(client)
    assert span.status is SpanStatus.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "anthropic.BadRequestError"
    assert raised.value.status_code == 400
    assert str(raised.value) in event.attributes["exception.message"]


def test_error_event_in_a_stream_is_recorded_and_reraised(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError):
        with claude.messages.stream(model="fail-midstream", max_tokens=10, messages=MESSAGES) as s:
            seen.extend(s.text_stream)

    _, span = only_span(client)
    assert seen == [WORDS[0]]
    assert span.status is SpanStatus.ERROR
    assert "Overloaded" in (span.status_message or "")
    assert span.outputs["content"] == [{"type": "text", "text": WORDS[0]}]


def test_messages_stream_request_error_is_recorded(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError):
        with claude.messages.stream(model="fail-400", max_tokens=10, messages=MESSAGES):
            pass

    _, span = only_span(client)
    assert span.status is SpanStatus.ERROR


def test_async_client_plain_streamed_helper_and_concurrent(
    client: TracingClient, aclaude: anthropic.AsyncAnthropic
) -> None:
    async def main() -> list[str]:
        reply = await aclaude.messages.create(model="m", max_tokens=10, messages=MESSAGES)
        stream = await aclaude.messages.create(
            model="m", max_tokens=10, messages=MESSAGES, stream=True
        )
        streamed = "".join(
            [e.delta.text async for e in stream if e.type == "content_block_delta"]  # type: ignore[union-attr]
        )
        async with aclaude.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as s:
            helper = await s.get_final_text()
        many = await asyncio.gather(
            *[
                aclaude.messages.create(model=f"m-{i}", max_tokens=10, messages=MESSAGES)
                for i in range(4)
            ]
        )
        return [reply.content[0].text, streamed, helper] + [r.content[0].text for r in many]  # type: ignore[union-attr]

    texts = asyncio.run(main())

    traces = finished_traces(client)
    assert texts == [REPLY] * 7
    assert len(traces) == 7
    assert all(t.spans[0].outputs["content"][0]["text"] == REPLY for t in traces)
    assert all(t.info.token_usage.total_tokens == 137 for t in traces)
    assert sorted(t.spans[0].attributes["model"] for t in traces[3:]) == [
        f"m-{i}" for i in range(4)
    ]


def test_disable_restores_the_client(client: TracingClient, claude: anthropic.Anthropic) -> None:
    lt_anthropic.disable()
    claude.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    with claude.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream:
        stream.until_done()

    assert finished_traces(client) == []
    from anthropic.resources.beta import messages as beta

    for cls in (
        anthropic.resources.Messages,
        anthropic.resources.AsyncMessages,
        beta.Messages,
        beta.AsyncMessages,
    ):
        assert not hasattr(cls.create, "__lowtrace_original__")
        assert not hasattr(cls.stream, "__lowtrace_original__")


def test_tracing_failure_never_breaks_the_call(
    client: TracingClient, claude: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracing backend exploded")

    monkeypatch.setattr(client, "start_trace", broken)

    reply = claude.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    with claude.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream:
        text = stream.get_final_text()

    assert reply.content[0].text == text == REPLY  # type: ignore[union-attr]
    assert any("anthropic" in key for key in client.stats().violations)


def test_calls_inside_a_traced_function_nest_under_it(
    client: TracingClient, claude: anthropic.Anthropic
) -> None:
    import lowtrace

    @lowtrace.trace(span_type="AGENT")
    def agent(question: str) -> str:
        reply = claude.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": question}]
        )
        return reply.content[0].text  # type: ignore[union-attr]

    lowtrace.set_default_client(client)
    try:
        assert agent("hi") == REPLY
    finally:
        lowtrace.set_default_client(None)
    (trace,) = finished_traces(client)
    assert [(s.name, s.parent_id is None) for s in trace.spans] == [
        ("test_calls_inside_a_traced_function_nest_under_it.<locals>.agent", True),
        ("anthropic.messages", False),
    ]
    assert trace.info.token_usage is not None and trace.info.token_usage.total_tokens == 137


def test_beta_messages_are_traced_too(client: TracingClient, claude: anthropic.Anthropic) -> None:
    reply = claude.beta.messages.create(model="m", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    with claude.beta.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream:  # type: ignore[arg-type]
        text = stream.get_final_text()

    plain, streamed = finished_traces(client)
    assert reply.content[0].text == text == REPLY  # type: ignore[union-attr]
    for trace in (plain, streamed):
        (span,) = trace.spans
        assert span.name == "anthropic.beta.messages"
        assert span.outputs == {"role": "assistant", "content": [{"type": "text", "text": REPLY}]}
        assert_usage_with_cache(span)


def test_async_stream_left_early_ends_the_span(
    client: TracingClient, aclaude: anthropic.AsyncAnthropic
) -> None:
    async def main() -> str:
        async with aclaude.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as s:
            async for text in s.text_stream:
                return text
        return ""

    first = asyncio.run(main())

    _, span = only_span(client)
    assert first == WORDS[0]
    assert span.status is SpanStatus.OK
    assert span.attributes["lowtrace.stream_closed_early"] is True
    assert span.outputs["content"] == [{"type": "text", "text": WORDS[0]}]


def test_tools_given_as_a_generator_still_reach_the_api(
    client: TracingClient, claude: anthropic.Anthropic, server: FakeAnthropicServer
) -> None:
    reply = claude.messages.create(
        model="m",
        max_tokens=10,
        messages=MESSAGES,
        tools=(tool for tool in [WEATHER]),  # type: ignore[arg-type]
    )

    _, span = only_span(client)
    assert server.requests[-1][1]["tools"] == [WEATHER]
    assert reply.stop_reason == "tool_use"
    assert span.status is SpanStatus.OK
