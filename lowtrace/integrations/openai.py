"""OpenAI tracing: ``autolog()`` records every call of the official ``openai`` client.

Chat Completions, Responses and Embeddings, sync and async, streaming and not: one span per
call (CHAT_MODEL, or EMBEDDING), the request as inputs, the reply as outputs, the model and
parameters as attributes, token usage (also from streamed usage chunks and the Responses
API's ``response.completed`` event), streamed deltas as events, errors recorded. A call
inside a fluent span is its child; otherwise it is a trace of its own.

    from lowtrace.integrations import openai as lt_openai
    lt_openai.autolog()

Needs ``pip install 'lowtrace[openai]'``. The client's methods are wrapped on their classes,
so clients created before ``autolog()`` are traced too; ``disable()`` restores them. What
the caller gets back is the client's own result (a stream is wrapped in a transparent
proxy that ends the span when the stream is exhausted, closed, or dropped).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sized
from typing import TYPE_CHECKING, Any

from lowtrace._default import client_for_tracing
from lowtrace._types import SpanType
from lowtrace.errors import MissingExtraError
from lowtrace.integrations._common import (
    AutologState,
    Run,
    finish_run,
    start_model_run,
    wrap_call,
)
from lowtrace.integrations._streams import TracedAsyncStream, TracedStream

try:
    import openai as _openai  # noqa: F401 - fail early with a clear message
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        "lowtrace.integrations.openai needs the openai client: pip install 'lowtrace[openai]'"
    ) from _exc

if TYPE_CHECKING:
    from lowtrace._client import TracingClient

__all__ = ["autolog", "disable"]

_WHERE = "lowtrace.integrations.openai"
_PARAMS = (
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "stream",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
    "tool_choice",
    "response_format",
    "dimensions",
)
_NOT_INPUTS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
_TARGETS = (
    ("openai.resources.chat.completions.completions", "Completions", "chat"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "chat"),
    ("openai.resources.responses.responses", "Responses", "responses"),
    ("openai.resources.responses.responses", "AsyncResponses", "responses"),
    ("openai.resources.embeddings", "Embeddings", "embeddings"),
    ("openai.resources.embeddings", "AsyncEmbeddings", "embeddings"),
)
_NAMES = {
    "chat": "openai.chat.completions",
    "responses": "openai.responses",
    "embeddings": "openai.embeddings",
}


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump(exclude_none=True, mode="json") if callable(dump) else obj


def _given(value: Any) -> bool:
    """False for openai's ``omit``/``NOT_GIVEN`` sentinels."""
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def _begin(kind: str, resource: Any, kwargs: dict[str, Any]) -> Run | None:
    client = _Autolog.client or client_for_tracing(_WHERE)
    if client is None:
        return None
    try:
        inputs = {k: v for k, v in kwargs.items() if k not in _NOT_INPUTS and _given(v)}
        attributes: dict[str, Any] = {
            k: kwargs[k]
            for k in _PARAMS
            if k in kwargs and _given(kwargs[k]) and isinstance(kwargs[k], (str, int, float, bool))
        }
        tools = inputs.get("tools")
        if isinstance(tools, Sized):  # never len(list(...)): a generator is the caller's
            attributes["tools"] = len(tools)
        base_url = getattr(getattr(resource, "_client", None), "base_url", None)
        if base_url is not None:
            attributes["openai.base_url"] = str(base_url)
        span_type = SpanType.EMBEDDING if kind == "embeddings" else SpanType.CHAT_MODEL
        return start_model_run(client, _NAMES[kind], span_type, inputs, attributes)
    except Exception as exc:  # noqa: BLE001 - never break the application
        client.report_error(exc, _WHERE)
        return None


def _set_usage(run: Run, usage: Any) -> None:
    if usage is None:
        return
    get = usage.get if isinstance(usage, dict) else functools.partial(getattr, usage)
    inp = get("prompt_tokens", None)
    if inp is None:
        inp = get("input_tokens", None)
    out = get("completion_tokens", None)
    if out is None:
        out = get("output_tokens", None)
    total = get("total_tokens", None)
    if inp is not None or out is not None or total is not None:
        run.span.set_token_usage(
            input_tokens=inp,
            output_tokens=out,
            total_tokens=total,
            cache_read_input_tokens=_cached_tokens(get),
        )


def _cached_tokens(get: Any) -> int | None:
    """OpenAI's cached prompt tokens (``prompt_tokens_details.cached_tokens``), if reported."""
    details = get("prompt_tokens_details", None)
    if details is None:
        details = get("input_tokens_details", None)  # the Responses API
    if details is None:
        return None
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None and not isinstance(details, dict):
        cached = getattr(details, "cached_tokens", None)
    return cached if type(cached) is int else None


def _outputs(kind: str, result: Any) -> tuple[Any, dict[str, Any]]:
    """(outputs, extra attributes) of a finished, non-streamed call."""
    attributes: dict[str, Any] = {}
    if getattr(result, "id", None):
        attributes["openai.response_id"] = result.id
    if getattr(result, "model", None):
        attributes["openai.response_model"] = result.model
    if kind == "chat":
        choices = list(getattr(result, "choices", None) or [])
        if choices and choices[0].finish_reason:
            attributes["finish_reason"] = choices[0].finish_reason
        messages = [_dump(c.message) for c in choices]
        return (messages[0] if len(messages) == 1 else messages), attributes
    if kind == "responses":
        return {
            "output_text": getattr(result, "output_text", None),
            "output": [_dump(item) for item in getattr(result, "output", None) or []],
        }, attributes
    data = list(getattr(result, "data", None) or [])
    dims = len(data[0].embedding) if data and hasattr(data[0], "embedding") else None
    return {"count": len(data), "dimensions": dims}, attributes


def _complete(run: Run, kind: str, result: Any) -> None:
    try:
        _set_usage(run, getattr(result, "usage", None))
        outputs, attributes = _outputs(kind, result)
    except Exception as exc:  # noqa: BLE001 - never break the application
        run.client.report_error(exc, _WHERE)
        outputs, attributes = None, {}
    finish_run(run, outputs, attributes=attributes, where=_WHERE)


class _Accumulator:
    """Builds the final reply of a streamed call from its chunks or events."""

    def __init__(self, run: Run, kind: str) -> None:
        self.run = run
        self.kind = kind
        self.parts: dict[int, list[str]] = {}
        self.tool_calls: dict[tuple[int, int], dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.final: Any = None

    def add(self, item: Any) -> None:
        run = self.run
        run.chunks += 1
        if self.kind == "chat":
            _set_usage(run, getattr(item, "usage", None))
            for choice in getattr(item, "choices", None) or []:
                delta = choice.delta
                if delta is not None and delta.content:
                    self.parts.setdefault(choice.index, []).append(delta.content)
                    run.span.add_event("new_token", {"token": delta.content})
                for call in (delta.tool_calls or []) if delta is not None else []:
                    slot = self.tool_calls.setdefault(
                        (choice.index, call.index), {"id": None, "name": "", "arguments": ""}
                    )
                    slot["id"] = call.id or slot["id"]
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
                if choice.finish_reason:
                    self.finish_reason = choice.finish_reason
        elif self.kind == "responses":
            kind = getattr(item, "type", "")
            if kind == "response.output_text.delta":
                self.parts.setdefault(0, []).append(item.delta)
                run.span.add_event("new_token", {"token": item.delta})
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                self.final = item.response
                _set_usage(run, getattr(item.response, "usage", None))

    def outputs(self) -> tuple[Any, dict[str, Any]]:
        if self.kind == "responses" and self.final is not None:
            return _outputs("responses", self.final)
        attributes = {"finish_reason": self.finish_reason} if self.finish_reason else {}
        replies = []
        for index in sorted(set(self.parts) | {i for i, _ in self.tool_calls}):
            reply: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(self.parts.get(index, [])),
            }
            calls = [v for (i, _), v in sorted(self.tool_calls.items()) if i == index]
            if calls:
                reply["tool_calls"] = calls
            replies.append(reply)
        return (replies[0] if len(replies) == 1 else replies), attributes


def _wrap_create(original: Callable[..., Any], kind: str, is_async: bool) -> Callable[..., Any]:
    traced = TracedAsyncStream if is_async else TracedStream

    def begin(self: Any, kwargs: dict[str, Any]) -> Run | None:
        return _begin(kind, self, kwargs) if _Autolog.active else None

    def done(run: Run, result: Any, kwargs: dict[str, Any]) -> Any:
        if kwargs.get("stream") is True:
            return traced(result, _Accumulator(run, kind), _WHERE)
        _complete(run, kind, result)
        return result

    return wrap_call(original, is_async, begin, done, _WHERE)


_Autolog = AutologState()  # the openai classes it patches are process-wide


def autolog(client: TracingClient | None = None) -> None:
    """Trace every OpenAI call in this process; ``client`` defaults to the default client."""
    with _Autolog.turn_on(client):
        for module_name, class_name, kind in _TARGETS:
            cls = getattr(importlib.import_module(module_name), class_name, None)
            if cls is None or hasattr(cls.create, "__lowtrace_original__"):
                continue
            cls.create = _wrap_create(cls.create, kind, class_name.startswith("Async"))


def disable() -> None:
    """Restore the original OpenAI methods; calls after this are not traced."""
    with _Autolog.turn_off():
        for module_name, class_name, _ in _TARGETS:
            cls = getattr(importlib.import_module(module_name), class_name, None)
            original = getattr(getattr(cls, "create", None), "__lowtrace_original__", None)
            if cls is not None and original is not None:
                cls.create = original
