"""A multi-threaded example agent traced with lowtrace's low-level client.

A planner decides which tools to call, the tools run concurrently in a thread pool (each
span started in the pool's thread with an explicit parent), a fake chat model writes the
answer and reports token usage, and one tool fails on purpose. The trace goes to the
default store (``sqlite:///lowtrace.db`` in the working directory, or ``LOWTRACE_URI``).

    .venv/bin/python examples/demo_agent.py
    .venv/bin/lowtrace list
    .venv/bin/lowtrace show <trace id>
"""

from __future__ import annotations

import contextlib
import importlib.util
import random
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lowtrace import Span, SpanStatus, SpanType, Trace, TracingClient, format_tree
from lowtrace._stores.redact import redact

client = TracingClient()
CITIES = ("Paris", "Atlantis")  # the second one has no weather station


def search_docs(root: Span, parent_id: str, query: str) -> list[str]:
    """A retriever tool: runs in a worker thread, child of the planner span."""
    span = client.start_span(
        "search_docs",
        trace_id=root.trace_id,
        parent_id=parent_id,
        span_type=SpanType.RETRIEVER,
        inputs={"query": query},
    )
    time.sleep(random.uniform(0.01, 0.03))
    docs = [f"{query}: fact {i}" for i in range(3)]
    client.end_span(span.trace_id, span.span_id, outputs=docs, attributes={"hits": len(docs)})
    return docs


def get_weather(root: Span, parent_id: str, city: str) -> dict[str, object]:
    """A tool that fails for one city, to show an ERROR span with its exception."""
    span = client.start_span(
        "get_weather",
        trace_id=root.trace_id,
        parent_id=parent_id,
        span_type=SpanType.TOOL,
        inputs={"city": city},
    )
    try:
        time.sleep(random.uniform(0.005, 0.02))
        if city == "Atlantis":
            raise LookupError(f"no weather station in {city}")
        result = {"city": city, "celsius": 21}
        span.end(outputs=result)
        return result
    except LookupError as exc:
        span.record_exception(exc)
        span.end()
        return {"city": city, "error": str(exc)}


def chat_model(root: Span, messages: list[dict[str, str]]) -> str:
    """A fake chat model call that reports token usage like a real one."""
    span = client.start_span(
        "chat_model",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.CHAT_MODEL,
        inputs={"messages": messages},
        attributes={"model": "demo-gpt", "temperature": 0.2},
    )
    time.sleep(0.02)
    answer = "Paris is sunny (21°C); Atlantis has no weather station."
    span.set_token_usage(
        input_tokens=sum(len(m["content"]) // 4 for m in messages), output_tokens=len(answer) // 4
    )
    span.end(outputs={"role": "assistant", "content": answer})
    return answer


def run_agent(question: str) -> Trace | None:
    root = client.start_trace(
        "weather_agent",
        span_type=SpanType.AGENT,
        inputs={"question": question},
        tags={"app_version": "demo-1", "user": "alice"},
    )
    # Each run is one more turn of the same conversation: see them together under Sessions.
    client.set_trace_metadata(root.trace_id, session_id="demo-conversation", user_id="alice")
    planner = client.start_span(
        "plan",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.CHAIN,
        inputs={"question": question},
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        docs = pool.submit(search_docs, root, planner.span_id, "Paris weather")
        weather = [pool.submit(get_weather, root, planner.span_id, city) for city in CITIES]
        results = [docs.result(), *(w.result() for w in weather)]
    client.end_span(root.trace_id, planner.span_id, outputs={"tool_results": len(results)})
    answer = chat_model(
        root,
        [
            {"role": "system", "content": "Answer with the tool results."},
            {"role": "user", "content": f"{question}\nResults: {results}"},
        ],
    )
    # The finished trace (None when LOWTRACE_ENABLED=false: nothing was recorded).
    return client.end_trace(root.trace_id, outputs={"answer": answer}, status=SpanStatus.OK)


def lowtrace_command() -> str:
    """How to run the ``lowtrace`` command from here: the bare name only if PATH finds this one."""
    script = Path(sys.executable).parent / "lowtrace"
    if not script.exists():
        return f"{Path(sys.executable).name} -m lowtrace"
    found = shutil.which("lowtrace")
    if found is not None and Path(found).resolve() == script.resolve():
        return "lowtrace"
    with contextlib.suppress(ValueError):
        return shlex.quote(str(script.relative_to(Path.cwd())))  # .venv/bin/lowtrace
    return shlex.quote(str(script))


def ui_command(cmd: str, uri: str) -> str:
    """``lowtrace ui``, after installing the 'ui' extra when this environment lacks it."""
    ui = f"{cmd} ui{uri}"
    if all(importlib.util.find_spec(name) for name in ("starlette", "uvicorn")):
        return ui
    pip = Path(sys.executable).parent / "pip"
    where = "." if (Path.cwd() / "pyproject.toml").exists() else "lowtrace"
    extra = shlex.quote(f"{where}[ui]")
    with contextlib.suppress(ValueError):
        pip = pip.relative_to(Path.cwd())
    return f"{shlex.quote(str(pip))} install {'-e ' * (where == '.')}{extra} && {ui}"


def main() -> None:
    trace = run_agent("What's the weather in Paris and Atlantis?")
    if trace is None:
        raise SystemExit("Tracing is off (LOWTRACE_ENABLED=false): nothing was recorded.")
    if not client.flush(timeout=10):
        raise SystemExit("the trace could not be stored; see the log above")
    if client.uri.startswith("none:"):  # e.g. LOWTRACE_URI=none:// for a collector
        print(format_tree(trace))
        print("\nnone:// keeps no traces: this one went only to the client's exporters.")
        client.close()
        return
    trace_id = trace.info.trace_id
    stored = client.get_trace(trace_id)
    assert stored is not None
    print(format_tree(stored))
    print(f"\nStored in {redact(client.uri)}. Look at it with:")
    if client.uri == "sqlite:///lowtrace.db":
        uri = ""
    elif redact(client.uri) != client.uri:  # never print a password
        uri = ' --uri "$LOWTRACE_URI"'
    else:  # quoted: paths with spaces, delta://...?a=1&b=2
        uri = f" --uri {shlex.quote(client.uri)}"
    cmd = lowtrace_command()
    print(f"  {cmd} list{uri}\n  {cmd} show{uri} {trace_id}")
    print(f"  {cmd} search{uri} \"span.type = 'TOOL' AND status = 'OK'\"")
    print(f"\nOr in the browser (Ctrl+C stops it):\n  {ui_command(cmd, uri)}")
    client.close()


if __name__ == "__main__":
    main()
