"""A scripted fake ``Model`` for the OpenAI Agents SDK: no network, real SDK machinery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelResponse
from agents.tracing import generation_span
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)


def say(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def call(name: str, arguments: str, call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{call_id}", call_id=call_id, type="function_call", name=name, arguments=arguments
    )


class ScriptedModel(Model):
    """A model that answers each turn from a script, inside a generation span as real ones do."""

    def __init__(self, *turns: list[Any]) -> None:
        self.turns = list(turns)

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        with generation_span(
            model="scripted", model_config={"temperature": 0.0}, disabled=tracing.is_disabled()
        ) as span:
            output = self.turns.pop(0)
            messages = [{"role": "user", "content": input}] if isinstance(input, str) else input
            span.span_data.input = [{"role": "system", "content": system_instructions}, *messages]
            span.span_data.output = [item.model_dump() for item in output]
            span.span_data.usage = {"input_tokens": 10, "output_tokens": 4}
            return ModelResponse(
                output=output,
                usage=Usage(requests=1, input_tokens=10, output_tokens=4, total_tokens=14),
                response_id=None,
            )

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("these tests do not stream")
