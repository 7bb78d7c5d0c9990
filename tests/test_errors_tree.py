"""Every error lowtrace raises is in the ``lowtrace.errors`` tree, raised as its own class.

Catching ``LowtraceError`` catches anything lowtrace raises; ``InvalidArgumentError`` is also
a ``ValueError`` and a ``TypeError``, so code written against the builtins keeps working.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lowtrace
from lowtrace import InvalidArgumentError, Limits, LowtraceError, TracingClient
from lowtrace.testing import span_tree


def test_a_limit_that_is_not_positive() -> None:
    with pytest.raises(InvalidArgumentError, match="max_spans_per_trace must be > 0"):
        Limits(max_spans_per_trace=0)


def test_a_default_client_that_is_not_a_client() -> None:
    with pytest.raises(InvalidArgumentError, match="takes a TracingClient"):
        lowtrace.set_default_client("memory://")  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_delete_without_saying_what(scheme: str, tmp_path: Path) -> None:
    uri = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 't.db'}"
    with TracingClient(uri) as client:
        with pytest.raises(InvalidArgumentError, match="needs trace_ids and/or older_than_ms"):
            client.delete_traces()


def test_span_tree_of_a_trace_without_spans() -> None:
    empty = lowtrace.Trace(
        lowtrace.TraceInfo("0" * 31 + "1", "t", lowtrace.SpanStatus.OK, None, 1, 2, {}, None, 0),
        [],
    )
    with pytest.raises(LowtraceError, match="has no root span"):
        span_tree(empty)


def test_a_bad_span_type_or_attributes_through_the_client(client: TracingClient) -> None:
    with pytest.raises(InvalidArgumentError, match="span_type"):
        client.start_trace("agent", span_type=7)  # type: ignore[arg-type]
    root = client.start_trace("agent")
    with pytest.raises(InvalidArgumentError, match="keys must be str"):
        root.set_attributes({1: "x"})  # type: ignore[dict-item]
