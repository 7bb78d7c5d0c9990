"""LangChain tracing: a callback handler that maps LangChain runs onto lowtrace spans.

Every callback carries ``run_id`` and ``parent_run_id``; the handler keeps a thread-safe map
from run ids to live span handles and turns each start/end/error callback into
``start_span``/``end``, so ``RunnableParallel`` branches and ``batch()`` items that run on
other threads still build correct trees. A run without a known parent starts a trace of its
own (or a child of the current fluent span, when there is one): one trace per top-level run.

    from lowtrace.integrations.langchain import LowtraceCallbackHandler, autolog
    chain.invoke(inputs, config={"callbacks": [LowtraceCallbackHandler()]})
    autolog()   # or: every LangChain run in this process, no config needed

LangGraph graphs are traced the same way: one trace per graph run, one span per node named
after the node, the graph's plumbing left out unless ``include_internal=True`` (see
``_langgraph``); interrupted and resumed runs are tagged ``langgraph.interrupted`` and
``langgraph.thread_id``, so the traces of one thread are found together.

Needs ``pip install 'lowtrace[langchain]'``. Tracing errors are reported to the client
(``client.report_error``) and never reach LangChain or the application.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from uuid import UUID

from lowtrace._default import client_for_tracing
from lowtrace._types import SpanType
from lowtrace.errors import MissingExtraError
from lowtrace.integrations._common import (
    Frame,
    Run,
    finish_run,
    pop_frame,
    push_frame,
    start_run,
)
from lowtrace.integrations._langchain_values import document as _document
from lowtrace.integrations._langchain_values import generations as _generations
from lowtrace.integrations._langchain_values import message as _message
from lowtrace.integrations._langchain_values import run_name as _name
from lowtrace.integrations._langchain_values import usage as _usage
from lowtrace.integrations._langgraph import (
    GraphRuns,
    bubble_up_event,
    command_inputs,
    is_bubble_up,
)

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.tracers.context import register_configure_hook
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        "lowtrace.integrations.langchain needs langchain-core: pip install 'lowtrace[langchain]'"
    ) from _exc

if TYPE_CHECKING:
    from lowtrace._client import TracingClient

__all__ = ["LowtraceCallbackHandler", "autolog", "disable"]

_WHERE = "lowtrace.integrations.langchain"


class LowtraceCallbackHandler(BaseCallbackHandler):
    """Records LangChain chains, chat models, LLMs, tools, retrievers and parsers as spans."""

    raise_error = False  # tracing must never break the chain
    run_inline = True  # callbacks in order, in the run's own thread: parents before children

    def __init__(
        self, client: TracingClient | None = None, *, include_internal: bool = False
    ) -> None:
        """``include_internal=True`` also records LangGraph's plumbing (writes, routers)."""
        super().__init__()
        self._client = client
        self._lock = threading.Lock()  # guards _runs
        self._runs: dict[UUID, Run] = {}
        self._frames: dict[UUID, Frame] = {}  # run id -> its frame for autologged calls
        self._graph = GraphRuns(include_internal)
        self.enabled = True

    def __repr__(self) -> str:
        return f"<LowtraceCallbackHandler runs={len(self._runs)}>"

    # -- bookkeeping ------------------------------------------------------------------------

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        span_type: SpanType,
        inputs: Any,
        attributes: dict[str, Any],
    ) -> None:
        if not self.enabled:
            return
        client = self._client or client_for_tracing(_WHERE)
        if client is None:
            return
        try:
            parent_run_id = self._graph.visible_parent(parent_run_id)
            with self._lock:
                parent = self._runs.get(parent_run_id) if parent_run_id else None
            run = start_run(client, name, span_type, inputs, attributes, parent)
            # The run's code runs in this context (run_inline): autologged OpenAI/Anthropic
            # calls in it nest under it, or are skipped inside a model run (the same call).
            frame = push_frame(run, span_type in (SpanType.CHAT_MODEL, SpanType.LLM))
            with self._lock:
                self._runs[run_id] = run
                self._frames[run_id] = frame
        except Exception as exc:  # noqa: BLE001 - never break the application
            client.report_error(exc, _WHERE)

    def _end(self, run_id: UUID, outputs: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            frame = self._frames.pop(run_id, None)
            run = self._runs.pop(run_id, None)
            if run is not None and run.owns_trace:
                # Runs still open in its trace are closed with it (an abandoned stream ends
                # the outer run first): forget them, so their late callbacks are ignored.
                trace_id = run.trace_id
                for other in [k for k, r in self._runs.items() if r.trace_id == trace_id]:
                    del self._runs[other]
                    self._frames.pop(other, None)
        if frame is not None:
            pop_frame(frame)
        if run is not None:
            finish_run(run, outputs, error, where=_WHERE)

    def _run(self, run_id: UUID) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    # -- chains and parsers -----------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run_type = kwargs.get("run_type")
        kind = {"parser": SpanType.PARSER, "prompt": SpanType.CHAIN}.get(
            str(run_type), SpanType.CHAIN
        )
        attributes: dict[str, Any] = {}
        if tags:
            attributes["langchain.tags"] = list(tags)
        if metadata:
            attributes["langchain.metadata"] = dict(metadata)
        if run_type:
            attributes["langchain.run_type"] = run_type
        shown = self._graph.start(
            run_id, parent_run_id, _name(serialized, kwargs, "chain"), tags, metadata
        )
        if shown is None or not self.enabled:
            return  # LangGraph plumbing, left out
        shown_parent = self._graph.visible_parent(parent_run_id)
        top = shown_parent is None or self._run(shown_parent) is None
        self._start(
            run_id, parent_run_id, shown[0], kind, command_inputs(inputs), attributes | shown[1]
        )
        thread_id = (metadata or {}).get("thread_id")
        run = self._run(run_id)
        if top and run is not None and thread_id is not None:
            self._tag(run, {"langgraph.thread_id": str(thread_id)})

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        hidden = self._graph.end(run_id)
        if hidden is None:
            self._end(run_id, outputs)
        elif hidden[1] and hidden[0] is not None:  # a router: its decision, on its node
            self._event(hidden[0], "langgraph.route", {"to": outputs})

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if self._graph.end(run_id) is not None:
            return
        run = self._run(run_id)
        if run is None or not is_bubble_up(error):
            self._end(run_id, error=error)
            return
        name, attributes = bubble_up_event(error)  # an interrupt is not a failure
        self._event(run_id, name, attributes)
        if name == "langgraph.interrupt":
            self._tag(run, {"langgraph.interrupted": "true"})
        self._end(run_id)

    def _tag(self, run: Run, tags: dict[str, str]) -> None:
        try:
            run.client.set_trace_tags(run.trace_id, tags)
        except Exception as exc:  # noqa: BLE001 - never break the application
            run.client.report_error(exc, _WHERE)

    # -- models -----------------------------------------------------------------------------

    def _model_attributes(
        self,
        serialized: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> dict[str, Any]:
        params = dict(kwargs.get("invocation_params") or {})
        attributes: dict[str, Any] = {}
        if params:
            attributes["invocation_params"] = params
        model = (
            (metadata or {}).get("ls_model_name") or params.get("model") or params.get("model_name")
        )
        if model:
            attributes["model"] = model
        provider = (metadata or {}).get("ls_provider")
        if provider:
            attributes["provider"] = provider
        return attributes

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        batches = [[_message(m) for m in batch] for batch in messages]
        inputs = {"messages": batches[0] if len(batches) == 1 else batches}
        self._start(
            run_id,
            parent_run_id,
            _name(serialized, kwargs, "chat_model"),
            SpanType.CHAT_MODEL,
            inputs,
            self._model_attributes(serialized, metadata, kwargs),
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        inputs = {"prompts": list(prompts)}
        self._start(
            run_id,
            parent_run_id,
            _name(serialized, kwargs, "llm"),
            SpanType.LLM,
            inputs,
            self._model_attributes(serialized, metadata, kwargs),
        )

    def on_llm_new_token(
        self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any
    ) -> None:
        run = self._run(run_id)
        if run is None:
            return
        run.chunks += 1
        try:
            run.span.add_event("new_token", {"token": token})
        except Exception as exc:  # noqa: BLE001 - never break the application
            run.client.report_error(exc, _WHERE)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._run(run_id)
        if run is not None:
            try:
                usage = _usage(response)
                if usage is not None:
                    inp, out, total = usage
                    run.span.set_token_usage(
                        input_tokens=inp, output_tokens=out, total_tokens=total
                    )
            except Exception as exc:  # noqa: BLE001 - never break the application
                run.client.report_error(exc, _WHERE)
        self._end(run_id, _generations(response))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error=error)

    # -- tools and retrievers ---------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        attributes = {}
        if serialized and serialized.get("description"):
            attributes["description"] = serialized["description"]
        self._start(
            run_id,
            parent_run_id,
            _name(serialized, kwargs, "tool"),
            SpanType.TOOL,
            inputs if inputs is not None else input_str,
            attributes,
        )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        content = getattr(output, "content", output)  # a ToolMessage carries its content
        self._end(run_id, content)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error=error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(
            run_id,
            parent_run_id,
            _name(serialized, kwargs, "retriever"),
            SpanType.RETRIEVER,
            {"query": query},
            {},
        )

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, [_document(d) for d in documents])

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error=error)

    # -- point events -----------------------------------------------------------------------

    def _event(self, run_id: UUID, name: str, attributes: dict[str, Any]) -> None:
        run = self._run(run_id)
        if run is None:
            return
        try:
            run.span.add_event(name, attributes)
        except Exception as exc:  # noqa: BLE001 - never break the application
            run.client.report_error(exc, _WHERE)

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        outcome = getattr(retry_state, "outcome", None)
        error = outcome.exception() if outcome is not None and outcome.failed else None
        self._event(
            run_id,
            "retry",
            {
                "attempt": getattr(retry_state, "attempt_number", None),
                "error": repr(error),
            },
        )

    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(
            run_id,
            "agent_action",
            {
                "tool": getattr(action, "tool", None),
                "tool_input": getattr(action, "tool_input", None),
                "log": getattr(action, "log", None),
            },
        )

    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(
            run_id,
            "agent_finish",
            {
                "return_values": getattr(finish, "return_values", None),
                "log": getattr(finish, "log", None),
            },
        )

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(run_id, name, {"data": data})


class _Autolog:
    """The process-wide hook ``autolog()`` installs (LangChain's own registry is global)."""

    lock = threading.Lock()
    hook: tuple[ContextVar[Any], LowtraceCallbackHandler] | None = None


def autolog(
    client: TracingClient | None = None, *, include_internal: bool = False
) -> LowtraceCallbackHandler:
    """Trace every LangChain run (and LangGraph graph) in this process, in all threads."""
    with _Autolog.lock:
        _uninstall()
        handler = LowtraceCallbackHandler(client, include_internal=include_internal)
        var: ContextVar[Any] = ContextVar("lowtrace_langchain_handler", default=handler)
        register_configure_hook(var, True)
        _Autolog.hook = (var, handler)
        return handler


def disable() -> None:
    """Stop tracing LangChain runs started after this call."""
    with _Autolog.lock:
        _uninstall()


def _uninstall() -> None:
    from langchain_core.tracers import context

    if _Autolog.hook is None:
        return
    var, handler = _Autolog.hook
    handler.enabled = False
    hooks = context._configure_hooks
    hooks[:] = [hook for hook in hooks if hook[0] is not var]
    _Autolog.hook = None
