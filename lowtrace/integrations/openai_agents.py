"""OpenAI Agents SDK tracing: the SDK's own traces and spans, recorded as lowtrace traces.

``autolog()`` registers a ``TracingProcessor`` with the SDK (``agents.add_trace_processor``).
Each SDK trace becomes a lowtrace trace (a child of the current fluent span, if any), and
each SDK span a lowtrace span under its SDK parent, found by the SDK's explicit parent ids:
agent (AGENT), generation and response (CHAT_MODEL, with token usage), function tool (TOOL),
handoff, guardrail (GUARDRAIL, with ``triggered``), custom, task and turn spans, with their
inputs and outputs. An SDK span error ends the span as ERROR with the SDK's message.
Autologged OpenAI/Anthropic calls made inside an SDK span (a tool) nest under it; the call
a generation or response span already records is not recorded twice.

    from lowtrace.integrations import openai_agents as lt_agents
    lt_agents.autolog()
    result = await Runner.run(agent, "Hi")

Needs ``pip install 'lowtrace[openai-agents]'``. ``disable()`` takes the processor out of the
SDK again; the SDK's other processors are left as they were.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any

from lowtrace._default import client_for_tracing
from lowtrace._types import SpanStatus, SpanType
from lowtrace.errors import MissingExtraError
from lowtrace.integrations._common import (
    Frame,
    Run,
    framework_providers,
    start_run,
)

try:
    import agents as _agents
    from agents.tracing import (
        TracingProcessor,
        get_current_span,
        get_current_trace,
        get_trace_provider,
    )
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        "lowtrace.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'lowtrace[openai-agents]'"
    ) from _exc

if TYPE_CHECKING:
    from lowtrace._client import TracingClient

__all__ = ["LowtraceTracingProcessor", "autolog", "disable"]

_WHERE = "lowtrace.integrations.openai_agents"
_TYPES = {
    "agent": SpanType.AGENT,
    "generation": SpanType.CHAT_MODEL,
    "response": SpanType.CHAT_MODEL,
    "function": SpanType.TOOL,
    "mcp_tools": SpanType.TOOL,
    "guardrail": SpanType.GUARDRAIL,
    "handoff": SpanType.CHAIN,
    "task": SpanType.CHAIN,
    "turn": SpanType.CHAIN,
    "transcription": SpanType.LLM,
    "speech": SpanType.LLM,
}


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump(exclude_none=True, mode="json") if callable(dump) else obj


def _parsed(text: Any) -> Any:
    """A tool's JSON arguments as data (they arrive as a string); other values unchanged."""
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _name(data: Any) -> str:
    kind = str(getattr(data, "type", "span"))
    if kind == "turn":
        return f"turn {getattr(data, 'turn', '')}".strip()
    if kind == "task":
        return "task"  # its name is the workflow's, already the trace's name
    name = getattr(data, "name", None)
    return str(name) if name else kind


def _start_attributes(data: Any) -> dict[str, Any]:
    kind = getattr(data, "type", None)
    attributes: dict[str, Any] = {"openai_agents.span_type": str(kind)}
    if kind == "turn":
        attributes["agent_name"] = getattr(data, "agent_name", None)
    elif kind == "task":
        attributes["workflow_name"] = getattr(data, "name", None)
    return attributes


def _finished(data: Any) -> tuple[Any, Any, dict[str, Any], Any]:
    """(inputs, outputs, attributes, usage) of a finished SDK span, by its kind."""
    kind = getattr(data, "type", None)
    usage = getattr(data, "usage", None)
    if kind == "generation":
        attributes = {"model": data.model} if data.model else {}
        if data.model_config:
            attributes["model_config"] = dict(data.model_config)
        return data.input, data.output, attributes, usage
    if kind == "response":
        response = data.response
        attributes = {}
        if response is not None:
            attributes = {"model": response.model, "openai.response_id": response.id}
            usage = usage or _dump(response.usage)
        outputs = [_dump(item) for item in response.output] if response is not None else None
        return data.input, outputs, attributes, usage
    if kind == "agent":  # its tools and handoffs are filled in after the span starts
        fields = ("handoffs", "tools", "output_type")
        return None, None, {f: getattr(data, f) for f in fields if getattr(data, f, None)}, None
    if kind == "function":
        mcp = {"mcp_data": data.mcp_data} if data.mcp_data else {}
        return _parsed(data.input), data.output, mcp, None
    if kind == "handoff":
        moved = {"from_agent": data.from_agent, "to_agent": data.to_agent}
        return None, moved, dict(moved), None
    if kind == "guardrail":
        return None, {"triggered": data.triggered}, {"triggered": data.triggered}, None
    if kind == "custom":
        return None, None, {"data": data.data}, None
    if kind in ("task", "turn"):  # sums of their model calls: an attribute, not counted twice
        return None, None, {"openai_agents.usage": usage} if usage else {}, None
    export = data.export() if hasattr(data, "export") else {}
    return export.get("input"), export.get("output"), {}, usage


def _set_usage(run: Run, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    inp, out = usage.get("input_tokens"), usage.get("output_tokens")
    if isinstance(inp, int) or isinstance(out, int):
        total = usage.get("total_tokens")
        run.span.set_token_usage(
            input_tokens=inp, output_tokens=out, total_tokens=total if total else None
        )


class LowtraceTracingProcessor(TracingProcessor):
    """Receives the SDK's traces and spans (any thread) and records them with the client."""

    def __init__(self, client: TracingClient | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()  # guards _runs
        self._runs: dict[str, Run] = {}  # SDK trace and span ids -> live lowtrace spans
        self._members: dict[str, list[str]] = {}  # SDK trace id -> ids of its spans
        self._frames: dict[str, Frame] = {}  # SDK span ids -> frames handed out for them
        self.enabled = True
        with _PROCESSORS_LOCK:
            _PROCESSORS.add(self)

    def _begin(
        self,
        sdk_id: str,
        parent_id: str | None,
        name: str,
        kind: SpanType,
        attributes: dict[str, Any],
    ) -> None:
        """Start the span of an SDK trace or span under its SDK parent (if we recorded it)."""
        client = self._client or client_for_tracing(_WHERE)
        if client is None:
            return
        try:
            with self._lock:
                parent = self._runs.get(parent_id) if parent_id else None
            run = start_run(client, name, kind, None, attributes, parent)
            with self._lock:
                self._runs[sdk_id] = run
        except Exception as exc:  # noqa: BLE001 - never break the agent
            client.report_error(exc, _WHERE)

    def _finish(
        self, sdk_id: str, outputs: Any, attributes: dict[str, Any], error: Any = None
    ) -> None:
        """End the span (its trace, if it owns it); an SDK error dict makes it ERROR."""
        with self._lock:
            run = self._runs.pop(sdk_id, None)
            self._frames.pop(sdk_id, None)
        if run is None:
            return
        client = run.client
        try:
            status = message = None
            if error:
                status, message = SpanStatus.ERROR, str(error.get("message") or "error")
                run.span.add_event("error", {"message": message, "data": error.get("data")})
            if run.owns_trace:
                client.end_trace(
                    run.trace_id,
                    outputs=outputs,
                    attributes=attributes,
                    status=status,
                    status_message=message,
                    close_open_spans=True,
                )
            else:
                run.span.end(
                    outputs=outputs, attributes=attributes, status=status, status_message=message
                )
        except Exception as exc:  # noqa: BLE001 - never break the agent
            client.report_error(exc, _WHERE)

    def on_trace_start(self, trace: Any) -> None:
        if not self.enabled:
            return
        attributes: dict[str, Any] = {"openai_agents.trace_id": trace.trace_id}
        exported = trace.export() or {}
        for key in ("group_id", "metadata"):
            if exported.get(key):
                attributes[f"openai_agents.{key}"] = exported[key]
        self._begin(trace.trace_id, None, trace.name, SpanType.AGENT, attributes)
        group_id = exported.get("group_id")
        with self._lock:
            run = self._runs.get(trace.trace_id)
        if run is not None and group_id:
            try:
                run.client.set_trace_tags(run.trace_id, {"openai_agents.group_id": str(group_id)})
            except Exception as exc:  # noqa: BLE001 - never break the agent
                run.client.report_error(exc, _WHERE)

    def on_trace_end(self, trace: Any) -> None:
        # Spans the SDK never ended are closed now and forgotten: a late on_span_end then
        # finds nothing, and _runs does not keep them for ever.
        with self._lock:
            members = self._members.pop(trace.trace_id, [])
        for span_id in reversed(members):
            self._finish(span_id, None, {}, {"message": "span was still open when its trace ended"})
        self._finish(trace.trace_id, None, {})

    def on_span_start(self, span: Any) -> None:
        if not self.enabled:
            return
        data = span.span_data
        kind = _TYPES.get(str(getattr(data, "type", "")), SpanType.UNKNOWN)
        parent = span.parent_id or span.trace_id
        self._begin(span.span_id, parent, _name(data), kind, _start_attributes(data))
        with self._lock:
            if span.span_id in self._runs:
                self._members.setdefault(span.trace_id, []).append(span.span_id)

    def on_span_end(self, span: Any) -> None:
        with self._lock:
            run = self._runs.get(span.span_id)
        if run is None:
            return
        try:
            inputs, outputs, attributes, usage = _finished(span.span_data)
            if inputs is not None:
                run.span.set_inputs(inputs)
            _set_usage(run, usage)
        except Exception as exc:  # noqa: BLE001 - never break the agent
            run.client.report_error(exc, _WHERE)
            outputs, attributes = None, {}
        self._finish(span.span_id, outputs, attributes, span.error)

    def frame(self, span: Any, trace: Any) -> Frame | None:
        """The recorded span of the SDK's current span (else trace), as a parent frame."""
        if not self.enabled:
            return None
        span_id: str | None = getattr(span, "span_id", None)
        trace_id: str | None = getattr(trace, "trace_id", None)
        kind = str(getattr(getattr(span, "span_data", None), "type", ""))
        with self._lock:
            for sdk_id, model_call in ((span_id, kind in _MODEL_CALLS), (trace_id, False)):
                run = self._runs.get(sdk_id) if sdk_id else None
                if sdk_id is None or run is None:
                    continue
                frame = self._frames.get(sdk_id)
                if frame is None:  # one per span: it remembers its model call was seen
                    frame = self._frames[sdk_id] = Frame(run, model_call)
                return frame
        return None

    def shutdown(self) -> None:
        """Nothing to release: the client belongs to the application."""

    def force_flush(self) -> None:
        """``agents.flush_traces()``: deliver what the client has queued (bounded wait)."""
        if self._client is not None:
            self._client.flush(timeout=30)


_MODEL_CALLS = frozenset({"generation", "response"})
_PROCESSORS: weakref.WeakSet[LowtraceTracingProcessor] = weakref.WeakSet()
_PROCESSORS_LOCK = threading.Lock()


def _current_frame() -> Frame | None:
    """The SDK's current span (its own contextvar, so right per thread and task) as recorded
    by one of our processors: autologged client calls inside it nest under it, and a call
    inside a generation/response span is not recorded again (that span is the call)."""
    span, trace = get_current_span(), get_current_trace()
    if span is None and trace is None:
        return None
    with _PROCESSORS_LOCK:
        processors = list(_PROCESSORS)
    for processor in processors:
        frame = processor.frame(span, trace)
        if frame is not None:
            return frame
    return None


framework_providers.append(_current_frame)


class _Autolog:
    """The processor ``autolog()`` registered (the SDK's processor list is process-wide)."""

    lock = threading.Lock()
    processor: LowtraceTracingProcessor | None = None


def autolog(client: TracingClient | None = None) -> LowtraceTracingProcessor:
    """Record every Agents SDK trace in this process; ``client`` defaults to the default."""
    with _Autolog.lock:
        _remove()
        processor = LowtraceTracingProcessor(client)
        _agents.add_trace_processor(processor)
        _Autolog.processor = processor
        return processor


def disable() -> None:
    """Take the processor out of the SDK; traces started after this are not recorded."""
    with _Autolog.lock:
        _remove()


def _remove() -> None:
    processor = _Autolog.processor
    if processor is None:
        return
    processor.enabled = False  # inert even if the SDK's list cannot be edited below
    _Autolog.processor = None
    # The SDK has no "remove one processor" call: read its list, set it back without ours.
    multi = getattr(get_trace_provider(), "_multi_processor", None)
    current = getattr(multi, "_processors", None)
    if isinstance(current, tuple):
        _agents.set_trace_processors([p for p in current if p is not processor])
