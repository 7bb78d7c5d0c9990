"""Traces the view and UI tests share: script-injection payloads and a two-version agent."""

from __future__ import annotations

from lowtrace import SpanType, Trace, TracingClient

#: Untrusted text that must show as text and never run, in every page that shows it.
XSS = [
    "<script>window.__pwned = 1; alert(1)</script>",
    '<img src=x onerror="window.__pwned = 2; alert(2)">',
    "javascript:alert(3)",
    "</script><script>window.__pwned = 4</script>",
    "\u2028line separator\u2029",
]


def record_hostile(client: TracingClient) -> Trace:
    """A trace whose name, tags, inputs, outputs, attributes and errors carry ``XSS``."""
    root = client.start_trace(
        XSS[0], inputs={"question": XSS[3]}, tags={"user": XSS[1]}, span_type=SpanType.AGENT
    )
    tool = client.start_span(
        XSS[1],
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.TOOL,
        inputs={"link": XSS[2]},
        attributes={"note": XSS[4]},
    )
    tool.record_exception(ValueError(XSS[3]))
    tool.end(outputs=XSS)
    llm = client.start_span(
        "model call",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
        inputs={"prompt": "Hi"},
    )
    llm.set_token_usage(input_tokens=12, output_tokens=3)
    llm.end(outputs={"text": "Hello <b>there</b>"})
    trace = client.end_trace(root.trace_id, outputs={"answer": XSS[3]})
    assert trace is not None
    return trace


def hostile_trace() -> Trace:
    with TracingClient("memory://") as client:
        return record_hostile(client)


def record_agent(
    client: TracingClient, question: str, version: str, *, fail: bool = False
) -> Trace:
    """One run of a small RAG agent; version v2 retrieves twice and uses more tokens."""
    root = client.start_trace(
        "answer_question",
        inputs={"question": question},
        tags={"app.version": version},
        span_type=SpanType.AGENT,
    )
    for n in range(1 if version == "v1" else 2):
        docs = client.start_span(
            "retrieve",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.RETRIEVER,
            inputs={"query": question, "round": n},
        )
        docs.end(outputs=[{"doc": f"doc-{n}"}])
    llm = client.start_span(
        "chat",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
        inputs={"messages": [{"role": "user", "content": question}]},
        attributes={"model": "small-model"},
    )
    llm.set_token_usage(input_tokens=100 if version == "v1" else 180, output_tokens=20)
    if fail:
        llm.record_exception(TimeoutError("model timed out"))
        llm.end()
        trace = client.end_trace(root.trace_id, status="ERROR")
    else:
        llm.end(outputs={"content": f"answer to {question}"})
        trace = client.end_trace(root.trace_id, outputs={"answer": f"answer to {question}"})
    assert trace is not None
    return trace
