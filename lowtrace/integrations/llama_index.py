"""LlamaIndex tracing through ``llama_index.core.instrumentation``.

A span handler turns every instrumented call (query engines, retrievers, synthesizers,
LLM calls, embeddings, rerankers, tools, agents) into a lowtrace span, using LlamaIndex's own
span ids and parent ids, so threads and asyncio tasks keep their tree. An event handler adds
what only the events carry: token usage of LLM calls, streamed chunks as span events,
retrieved nodes and model names. A span without a known parent starts a trace of its own
(or a child of the current fluent span, when there is one).

    from lowtrace.integrations import llama_index as lt_llama
    lt_llama.autolog()

Needs ``pip install 'lowtrace[llama-index]'``. Tracing errors are reported to the client
(``client.report_error``) and never reach LlamaIndex or the application.
"""

from __future__ import annotations

import inspect
import threading
from typing import TYPE_CHECKING, Any

from lowtrace._default import client_for_tracing
from lowtrace._types import SpanType
from lowtrace.errors import MissingExtraError
from lowtrace.integrations._common import Run, finish_run, start_run

try:
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events import BaseEvent
    from llama_index.core.instrumentation.span import BaseSpan
    from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
    from pydantic import Field
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        "lowtrace.integrations.llama_index needs llama-index-core: "
        "pip install 'lowtrace[llama-index]'"
    ) from _exc

if TYPE_CHECKING:
    from lowtrace._client import TracingClient

__all__ = ["LowtraceEventHandler", "LowtraceSpanHandler", "autolog", "disable"]

_WHERE = "lowtrace.integrations.llama_index"
_MAX_VECTOR_PREVIEW = 8


def _span_type(instance: Any, method: str) -> SpanType:
    """What kind of step a LlamaIndex call is, from the instance's base classes."""
    names = {cls.__name__ for cls in type(instance).__mro__} if instance is not None else set()
    if "BaseEmbedding" in names:
        return SpanType.EMBEDDING
    if "BaseLLM" in names or "LLM" in names:
        return SpanType.CHAT_MODEL if "chat" in method else SpanType.LLM
    if "BaseRetriever" in names:
        return SpanType.RETRIEVER
    if "BaseNodePostprocessor" in names:
        return SpanType.RERANKER
    if "BaseTool" in names or "AsyncBaseTool" in names:
        return SpanType.TOOL
    if any("Agent" in n for n in names):
        return SpanType.AGENT
    if "BaseOutputParser" in names:
        return SpanType.PARSER
    return SpanType.CHAIN


def _node(node: Any) -> dict[str, Any]:
    inner = getattr(node, "node", node)
    get_content = getattr(inner, "get_content", None)
    text = get_content() if callable(get_content) else str(inner)
    return {
        "id": getattr(inner, "node_id", None),
        "score": getattr(node, "score", None),
        "text": text,
        "metadata": dict(getattr(inner, "metadata", None) or {}),
    }


def _output(result: Any) -> Any:
    """A readable form of what a LlamaIndex call returned."""
    if result is None:
        return None
    name = type(result).__name__
    if name in ("Response", "StreamingResponse", "AsyncStreamingResponse", "PydanticResponse"):
        out: dict[str, Any] = {"response": str(getattr(result, "response", result))}
        nodes = getattr(result, "source_nodes", None)
        if nodes:
            out["source_nodes"] = [_node(n) for n in nodes]
        return out
    if isinstance(result, list) and result and hasattr(result[0], "node"):
        return [_node(n) for n in result]
    if isinstance(result, list) and result and isinstance(result[0], float):
        return {"dimensions": len(result), "preview": result[:_MAX_VECTOR_PREVIEW]}
    if isinstance(result, list) and result and isinstance(result[0], list):
        return {
            "count": len(result),
            "dimensions": len(result[0]),
            "preview": result[0][:_MAX_VECTOR_PREVIEW],
        }
    message = getattr(result, "message", None)
    if message is not None and hasattr(message, "role"):
        return {
            "role": str(getattr(message.role, "value", message.role)),
            "content": message.content,
        }
    if name == "CompletionResponse":
        return getattr(result, "text", str(result))
    return result


def _usage(response: Any) -> tuple[int | None, int | None, int | None] | None:
    """Token usage from a ChatResponse/CompletionResponse: its raw provider payload or kwargs."""
    for source in (getattr(response, "raw", None), getattr(response, "additional_kwargs", None)):
        if source is None:
            continue
        usage = source.get("usage") if isinstance(source, dict) else getattr(source, "usage", None)
        if usage is None and isinstance(source, dict) and "prompt_tokens" in source:
            usage = source
        if usage is None:
            continue
        get = usage.get if isinstance(usage, dict) else (lambda k, u=usage: getattr(u, k, None))
        inp = get("prompt_tokens") if get("prompt_tokens") is not None else get("input_tokens")
        out = (
            get("completion_tokens")
            if get("completion_tokens") is not None
            else get("output_tokens")
        )
        total = get("total_tokens")
        if inp is not None or out is not None or total is not None:
            return inp, out, total
    return None


class _Run(BaseSpan):
    """LlamaIndex's view of one of our spans (LlamaIndex keeps these in its handler maps)."""

    run: Any = None  # the lowtrace Run


class LowtraceSpanHandler(BaseSpanHandler[_Run]):
    """Maps LlamaIndex spans (id, parent id) onto lowtrace spans."""

    client: Any = None
    enabled: bool = True
    # LLM calls that returned a stream: their span ends with the stream's end event.
    streaming: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def class_name(cls) -> str:
        return "LowtraceSpanHandler"

    def run_for(self, span_id: str | None) -> _Run | None:
        """The live run for a LlamaIndex span id (events use it to find their span)."""
        if span_id is None:
            return None
        with self.lock:
            return self.open_spans.get(span_id) or self.streaming.get(span_id)

    def finish_stream(self, span_id: str | None, outputs: Any) -> None:
        """End the span of a streamed LLM call once its stream has ended."""
        with self.lock:
            span = self.streaming.pop(span_id or "", None)
        if span is not None:
            finish_run(span.run, outputs, None, where=_WHERE)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> _Run | None:
        if not self.enabled:
            return None
        client = self.client or client_for_tracing(_WHERE)
        if client is None:
            return None
        try:
            qualname = id_.rsplit("-", 5)[0] if id_.count("-") >= 4 else id_
            method = qualname.rsplit(".", 1)[-1]
            kind = _span_type(instance, method)
            inputs = {k: v for k, v in bound_args.arguments.items() if k not in ("self", "cls")}
            attributes: dict[str, Any] = {"llama_index.span_id": id_}
            model = getattr(getattr(instance, "metadata", None), "model_name", None)
            if model and kind in (SpanType.LLM, SpanType.CHAT_MODEL):
                attributes["model"] = model
            if tags:
                attributes["llama_index.tags"] = dict(tags)
            parent = self.run_for(parent_span_id)
            run = start_run(
                client, qualname, kind, inputs, attributes, parent.run if parent else None
            )
            return _Run(id_=id_, parent_id=parent_span_id, run=run)
        except Exception as exc:  # noqa: BLE001 - never break the application
            client.report_error(exc, _WHERE)
            return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> _Run | None:
        span = self.run_for(id_)
        if span is not None:
            if inspect.isgenerator(result) or inspect.isasyncgen(result):
                with self.lock:  # the stream is consumed after the call returns
                    self.streaming[id_] = span
            else:
                finish_run(span.run, _output(result), None, where=_WHERE)
        return span

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> _Run | None:
        span = self.run_for(id_)
        if span is not None:
            finish_run(span.run, None, err, where=_WHERE)
        return span


class LowtraceEventHandler(BaseEventHandler):
    """Adds token usage, streamed chunks and model details from LlamaIndex events."""

    span_handler: LowtraceSpanHandler

    @classmethod
    def class_name(cls) -> str:
        return "LowtraceEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        span = self.span_handler.run_for(event.span_id)
        if span is None or span.run is None:
            return
        run: Run = span.run
        try:
            name = type(event).__name__
            handle = run.span
            if name in ("LLMChatInProgressEvent", "LLMCompletionInProgressEvent"):
                run.chunks += 1
                delta = getattr(event.response, "delta", None)  # type: ignore[attr-defined]
                if delta:
                    handle.add_event("new_token", {"token": delta})
            elif name in ("LLMChatEndEvent", "LLMCompletionEndEvent"):
                response = getattr(event, "response", None)
                usage = _usage(response)
                if usage is not None:
                    inp, out, total = usage
                    handle.set_token_usage(input_tokens=inp, output_tokens=out, total_tokens=total)
                self.span_handler.finish_stream(event.span_id, _output(response))
            elif name in ("LLMChatStartEvent", "LLMCompletionStartEvent"):
                model_dict = getattr(event, "model_dict", None) or {}
                model = model_dict.get("model") or model_dict.get("model_name")
                if model:
                    handle.set_attributes({"model": model})
            elif name == "ExceptionEvent":
                exc = getattr(event, "exception", None)
                if isinstance(exc, BaseException):
                    handle.add_event(
                        "exception",
                        {"exception.type": type(exc).__name__, "exception.message": str(exc)},
                    )
        except Exception as exc:  # noqa: BLE001 - never break the application
            run.client.report_error(exc, _WHERE)


class _Autolog:
    """The handlers ``autolog()`` installed on LlamaIndex's (global) root dispatcher."""

    lock = threading.Lock()
    installed: tuple[LowtraceSpanHandler, LowtraceEventHandler] | None = None


def autolog(client: TracingClient | None = None) -> LowtraceSpanHandler:
    """Trace every instrumented LlamaIndex call in this process."""
    with _Autolog.lock:
        _uninstall()
        spans = LowtraceSpanHandler()
        spans.client = client
        events = LowtraceEventHandler(span_handler=spans)
        dispatcher = get_dispatcher()
        dispatcher.add_span_handler(spans)
        dispatcher.add_event_handler(events)
        _Autolog.installed = (spans, events)
        return spans


def disable() -> None:
    """Stop tracing LlamaIndex calls started after this call."""
    with _Autolog.lock:
        _uninstall()


def _uninstall() -> None:
    if _Autolog.installed is None:
        return
    spans, events = _Autolog.installed
    spans.enabled = False
    dispatcher = get_dispatcher()
    dispatcher.span_handlers[:] = [h for h in dispatcher.span_handlers if h is not spans]
    dispatcher.event_handlers[:] = [h for h in dispatcher.event_handlers if h is not events]
    _Autolog.installed = None
