"""Anthropic tracing: ``autolog()`` records every Messages API call of the ``anthropic`` client.

``messages.create`` (sync and async, plain or ``stream=True``) and ``messages.stream(...)``,
also under ``client.beta``:
one CHAT_MODEL span per call, the messages, system prompt and tools as inputs, the model and
its parameters as attributes, the reply (text and ``tool_use`` blocks) as outputs, token
usage (input tokens including the cached part; the prompt-cache counts as
``TokenUsage.cache_read_input_tokens`` / ``cache_creation_input_tokens`` and as the
``llm.usage.cache_*_input_tokens`` attributes), streamed text as ``new_token``
events. Errors are recorded and the very same exception re-raised. A call inside a fluent
span is its child; otherwise it is a trace of its own.

    from lowtrace.integrations import anthropic as lt_anthropic
    lt_anthropic.autolog()

Needs ``pip install 'lowtrace[anthropic]'``. The methods are wrapped on their classes, so
clients created before ``autolog()`` are traced too; ``disable()`` restores them. A stream's
span ends when the stream ends, fails, or is closed or dropped early.
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
    import anthropic as _anthropic  # noqa: F401 - fail early with a clear message
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        "lowtrace.integrations.anthropic needs the anthropic client: "
        "pip install 'lowtrace[anthropic]'"
    ) from _exc

if TYPE_CHECKING:
    from lowtrace._client import TracingClient

__all__ = ["autolog", "disable"]

_WHERE = "lowtrace.integrations.anthropic"
_MODULES = ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages")
_CLASSES = ("Messages", "AsyncMessages")
_METHODS = ("create", "stream")
_PARAMS = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "tool_choice",
    "thinking",
    "service_tier",
    "speed",
    "output_config",
)
_NOT_INPUTS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
CACHE_READ = "llm.usage.cache_read_input_tokens"
CACHE_CREATION = "llm.usage.cache_creation_input_tokens"


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump(exclude_none=True, mode="json") if callable(dump) else obj


def _given(value: Any) -> bool:
    """False for anthropic's ``omit``/``NOT_GIVEN`` sentinels."""
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def _begin(resource: Any, kwargs: dict[str, Any], streamed: bool) -> Run | None:
    client = _Autolog.client or client_for_tracing(_WHERE)
    if client is None:
        return None
    try:
        inputs = {k: v for k, v in kwargs.items() if k not in _NOT_INPUTS and _given(v)}
        params = {k: inputs[k] for k in _PARAMS if k in inputs}
        if streamed:
            params["stream"] = True
        attributes: dict[str, Any] = {
            k: v for k, v in params.items() if isinstance(v, (str, int, float, bool))
        }
        attributes["invocation_params"] = params
        tools = inputs.get("tools")
        if isinstance(tools, Sized):  # never len(list(...)): a generator is the caller's
            attributes["tools"] = len(tools)
        base_url = getattr(getattr(resource, "_client", None), "base_url", None)
        if base_url is not None:
            attributes["anthropic.base_url"] = str(base_url)
        beta = ".beta." in type(resource).__module__
        name = "anthropic.beta.messages" if beta else "anthropic.messages"
        return start_model_run(client, name, SpanType.CHAT_MODEL, inputs, attributes)
    except Exception as exc:  # noqa: BLE001 - never break the application
        client.report_error(exc, _WHERE)
        return None


class _Usage:
    """Token counts of one call, the latest value of each field winning (streams update it)."""

    __slots__ = ("cache_creation", "cache_read", "input", "output")

    def __init__(self) -> None:
        self.input: int | None = None
        self.output: int | None = None
        self.cache_read: int | None = None
        self.cache_creation: int | None = None

    def update(self, usage: Any) -> None:
        if usage is None:
            return
        self.input = _pick(getattr(usage, "input_tokens", None), self.input)
        self.output = _pick(getattr(usage, "output_tokens", None), self.output)
        self.cache_read = _pick(getattr(usage, "cache_read_input_tokens", None), self.cache_read)
        self.cache_creation = _pick(
            getattr(usage, "cache_creation_input_tokens", None), self.cache_creation
        )

    def record(self, run: Run, attributes: dict[str, Any]) -> None:
        """Set the span's token usage; the cache counts also go into ``attributes``.

        Anthropic's ``input_tokens`` leaves out the cached part; the span's input tokens are
        all the prompt's tokens (uncached + cache read + cache written), as OpenAI counts
        them and OpenTelemetry's GenAI conventions ask.
        """
        if self.input is not None or self.output is not None:
            inp = (self.input or 0) + (self.cache_read or 0) + (self.cache_creation or 0)
            out = self.output or 0
            run.span.set_token_usage(
                input_tokens=inp,
                output_tokens=out,
                total_tokens=inp + out,
                cache_read_input_tokens=self.cache_read,
                cache_creation_input_tokens=self.cache_creation,
            )
        if self.cache_read is not None:
            attributes[CACHE_READ] = self.cache_read
        if self.cache_creation is not None:
            attributes[CACHE_CREATION] = self.cache_creation


def _pick(new: Any, old: int | None) -> int | None:
    return new if isinstance(new, int) else old


def _reply(message: Any) -> tuple[Any, dict[str, Any]]:
    """(outputs, attributes) of a finished Message: its role and content blocks."""
    attributes: dict[str, Any] = {}
    for field, key in (
        ("id", "anthropic.message_id"),
        ("model", "anthropic.response_model"),
        ("stop_reason", "stop_reason"),
        ("stop_sequence", "stop_sequence"),
    ):
        value = getattr(message, field, None)
        if value:
            attributes[key] = value
    content = [_dump(block) for block in getattr(message, "content", None) or []]
    return {"role": getattr(message, "role", "assistant"), "content": content}, attributes


def _complete(run: Run, message: Any) -> None:
    try:
        outputs, attributes = _reply(message)
        usage = _Usage()
        usage.update(getattr(message, "usage", None))
        usage.record(run, attributes)
    except Exception as exc:  # noqa: BLE001 - never break the application
        run.client.report_error(exc, _WHERE)
        outputs, attributes = None, {}
    finish_run(run, outputs, attributes=attributes, where=_WHERE)


class _Accumulator:
    """Builds the Message of a stream from its raw server-sent events."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.usage = _Usage()
        self.blocks: dict[int, dict[str, Any]] = {}
        self.parts: dict[tuple[int, str], list[str]] = {}  # (block, field) -> streamed pieces
        self.message: dict[str, Any] = {"role": "assistant"}
        self.attributes: dict[str, Any] = {}

    def add(self, event: Any) -> None:
        self.run.chunks += 1
        kind = getattr(event, "type", "")
        if kind == "message_start":
            _, self.attributes = _reply(event.message)
            self.usage.update(event.message.usage)
        elif kind == "content_block_start":
            self.blocks[event.index] = _dump(event.content_block)
        elif kind == "content_block_delta":
            self._delta(event.index, event.delta)
        elif kind == "message_delta":
            for field in ("stop_reason", "stop_sequence"):
                value = getattr(event.delta, field, None)
                if value:
                    self.attributes[field] = value
            self.usage.update(event.usage)

    def _delta(self, index: int, delta: Any) -> None:
        kind = getattr(delta, "type", "")
        if kind == "text_delta":
            self.parts.setdefault((index, "text"), []).append(delta.text)
            self.run.span.add_event("new_token", {"token": delta.text})
        elif kind == "input_json_delta":
            self.parts.setdefault((index, "input"), []).append(delta.partial_json)
        elif kind == "thinking_delta":
            self.parts.setdefault((index, "thinking"), []).append(delta.thinking)

    def outputs(self) -> tuple[Any, dict[str, Any]]:
        import json

        attributes = dict(self.attributes)
        for (index, field), parts in self.parts.items():
            block = self.blocks.setdefault(index, {})
            text = "".join(parts)
            if field != "input":
                block[field] = str(block.get(field) or "") + text
                continue
            try:
                block["input"] = json.loads(text) if text else {}
            except ValueError:
                block["input"] = text  # cut short: keep what arrived
        self.usage.record(self.run, attributes)
        content = [self.blocks[i] for i in sorted(self.blocks)]
        return {**self.message, "content": content}, attributes


class _TracedStreamManager:
    """Wraps what ``messages.stream(...)`` returns: the span covers the ``with`` block."""

    def __init__(self, manager: Any, resource: Any, kwargs: dict[str, Any]) -> None:
        self._manager = manager
        self._resource = resource
        self._kwargs = kwargs

    def _trace(self, stream: Any, run: Run, traced: type[TracedStream | TracedAsyncStream]) -> Any:
        try:
            stream._raw_stream = traced(stream._raw_stream, _Accumulator(run), _WHERE)
        except Exception as exc:  # noqa: BLE001 - never break the application
            run.client.report_error(exc, _WHERE)
            finish_run(run, where=_WHERE)
        return stream

    def __enter__(self) -> Any:
        run = _begin(self._resource, self._kwargs, True) if _Autolog.active else None
        if run is None:
            return self._manager.__enter__()
        try:
            stream = self._manager.__enter__()
        except BaseException as exc:
            finish_run(run, error=exc, where=_WHERE)
            raise
        return self._trace(stream, run, TracedStream)

    def __exit__(self, *exc_info: Any) -> Any:
        return self._manager.__exit__(*exc_info)

    async def __aenter__(self) -> Any:
        run = _begin(self._resource, self._kwargs, True) if _Autolog.active else None
        if run is None:
            return await self._manager.__aenter__()
        try:
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            finish_run(run, error=exc, where=_WHERE)
            raise
        return self._trace(stream, run, TracedAsyncStream)

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._manager.__aexit__(*exc_info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def _wrap_create(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    traced = TracedAsyncStream if is_async else TracedStream

    def begin(self: Any, kwargs: dict[str, Any]) -> Run | None:
        return _begin(self, kwargs, False) if _Autolog.active else None

    def done(run: Run, result: Any, kwargs: dict[str, Any]) -> Any:
        if kwargs.get("stream") is True:
            return traced(result, _Accumulator(run), _WHERE)
        _complete(run, result)
        return result

    return wrap_call(original, is_async, begin, done, _WHERE)


def _wrap_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        return _TracedStreamManager(manager, self, kwargs) if _Autolog.active else manager

    stream.__lowtrace_original__ = original  # type: ignore[attr-defined]
    return stream


def _targets() -> list[tuple[Any, str]]:
    """(module, class name) of every Messages resource this anthropic version has."""
    found = []
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an older client without the beta resource
            continue
        found += [(module, name) for name in _CLASSES if hasattr(module, name)]
    return found


_Autolog = AutologState()  # the anthropic classes it patches are process-wide


def autolog(client: TracingClient | None = None) -> None:
    """Trace every Anthropic Messages call in this process; ``client`` defaults to the default."""
    with _Autolog.turn_on(client):
        for module, class_name in _targets():
            cls = getattr(module, class_name)
            for method in _METHODS:
                current = getattr(cls, method, None)
                if current is None or hasattr(current, "__lowtrace_original__"):
                    continue
                if method == "stream":
                    setattr(cls, method, _wrap_stream(current))
                else:
                    setattr(cls, method, _wrap_create(current, class_name.startswith("Async")))


def disable() -> None:
    """Restore the original Anthropic methods; calls after this are not traced."""
    with _Autolog.turn_off():
        for module, class_name in _targets():
            cls = getattr(module, class_name)
            for method in _METHODS:
                original = getattr(getattr(cls, method, None), "__lowtrace_original__", None)
                if original is not None:
                    setattr(cls, method, original)
