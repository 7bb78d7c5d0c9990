"""What a user's type checker sees: every span handle is a ``lowtrace.Span``, never ``Any``.

The package ships ``py.typed``, so these types are part of the API. The snippet below is
user code checked with ``mypy --strict``, the way a user's CI would check it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import lowtrace
from lowtrace import Limits, TracingClient
from lowtrace._sampling import UnsampledSpan

USER_CODE = textwrap.dedent(
    """
    import lowtrace
    from lowtrace import TracingClient

    client = TracingClient("memory://")
    root = client.start_trace("agent")
    reveal_type(root)  # root
    reveal_type(root.trace_id)  # trace_id
    reveal_type(root.parent_id)  # parent_id
    reveal_type(root.traceparent)  # traceparent
    reveal_type(root.tracestate)  # tracestate
    child = client.start_span("search", trace_id=root.trace_id, parent_id=root.span_id)
    reveal_type(child)  # child
    reveal_type(lowtrace.get_current_span())  # current

    with lowtrace.start_span("block") as span:
        reveal_type(span)  # with
        span.set_attributes({"k": 1})
        span.end(outputs=[1], status="OK")


    async def handler() -> None:
        async with lowtrace.start_span("async block") as inner:
            reveal_type(inner)  # async with


    handles: list[lowtrace.Span] = [lowtrace.NoopSpan(), root, child]
    """
)


def _revealed(output: str) -> dict[str, str]:
    """The revealed type of each ``reveal_type`` line, keyed by the comment on that line."""
    lines = USER_CODE.splitlines()
    found: dict[str, str] = {}
    for match in re.finditer(r":(\d+): note: Revealed type is \"(.+)\"", output):
        line = lines[int(match.group(1)) - 1]
        found[line.rsplit("# ", 1)[1].strip()] = match.group(2)
    return found


def test_user_code_under_mypy_strict_sees_span_never_any(tmp_path: Path) -> None:
    snippet = tmp_path / "user_code.py"
    snippet.write_text(USER_CODE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(snippet),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert " error: " not in output, output
    assert "Any" not in output, output
    assert _revealed(output) == {
        "root": "lowtrace._handle.Span",
        "trace_id": "str",
        "parent_id": "str | None",
        "traceparent": "str",
        "tracestate": "str | None",
        "child": "lowtrace._handle.Span",
        "current": "lowtrace._handle.Span | None",
        "with": "lowtrace._handle.Span",
        "async with": "lowtrace._handle.Span",
    }, output


def test_every_kind_of_handle_is_a_span() -> None:
    with TracingClient("memory://", limits=Limits(max_spans_per_trace=1)) as client:
        root = client.start_trace("agent")
        dropped = client.start_span(
            "over the limit", trace_id=root.trace_id, parent_id=root.span_id
        )
        assert isinstance(root, lowtrace.LiveSpan)
        assert isinstance(dropped, lowtrace.DroppedSpan)
        client.end_trace(root.trace_id)
    with TracingClient("memory://", enabled=False) as disabled:
        inert = disabled.start_trace("agent")
        assert isinstance(inert, lowtrace.NoopSpan)
    with TracingClient("memory://", sample_ratio=0.0) as sampling:
        unsampled = sampling.start_trace("agent")
        assert isinstance(unsampled, UnsampledSpan)
    for handle in (root, dropped, inert, unsampled):
        assert isinstance(handle, lowtrace.Span)
    assert not isinstance(object(), lowtrace.Span)
