"""Every error lowtrace raises is in the ``lowtrace.errors`` tree, raised as its own class.

Catching ``LowtraceError`` catches anything lowtrace raises; ``InvalidArgumentError`` is also
a ``ValueError`` and a ``TypeError``, so code written against the builtins keeps working.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lowtrace
import lowtrace._live
from lowtrace import (
    InvalidArgumentError,
    Limits,
    LowtraceError,
    TracingClient,
    WaitTimeoutError,
)
from lowtrace.testing import RecordingExporter, span_tree


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


class Unprintable:
    """A key whose repr and str raise."""

    def __repr__(self) -> str:
        raise RuntimeError("from __repr__")

    __str__ = __repr__


def test_an_unprintable_non_str_key_is_a_bad_argument_and_non_strict_never_raises() -> None:
    with TracingClient("none://") as strict:
        with pytest.raises(InvalidArgumentError, match="keys must be str"):
            strict.start_trace("agent", attributes={Unprintable(): 1})  # type: ignore[dict-item]
    with TracingClient("none://", strict=False) as lenient:
        root = lenient.start_trace("agent", attributes={Unprintable(): 1})  # type: ignore[dict-item]
        assert not root.is_recording
        assert lenient.stats().violations == {"InvalidArgumentError": 1}


def test_an_internal_bug_is_not_reported_as_a_bad_argument(
    client: TracingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = client.start_trace("agent")

    def broken(*args: object) -> None:
        raise TypeError("a bug inside lowtrace")

    monkeypatch.setattr(lowtrace._live.LiveTrace, "add_span", broken)
    with pytest.raises(TypeError, match="a bug inside lowtrace") as raised:
        client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
    assert not isinstance(raised.value, LowtraceError)


@pytest.mark.parametrize("bad_id", [["not", "hashable"], {"a": 1}, 7, None])
def test_ids_of_the_wrong_type_are_bad_arguments(client: TracingClient, bad_id: object) -> None:
    root = client.start_trace("agent")
    with pytest.raises(InvalidArgumentError):
        client.start_span("step", trace_id=bad_id, parent_id=root.span_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.start_span("step", trace_id=root.trace_id, parent_id=bad_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.end_span(root.trace_id, bad_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.end_trace(bad_id)  # type: ignore[arg-type]


def test_bad_end_arguments_leave_the_span_open(client: TracingClient) -> None:
    root = client.start_trace("agent")
    child = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
    for span in (child, root):
        with pytest.raises(InvalidArgumentError, match="attributes must be a mapping"):
            span.end(attributes=["not", "a", "mapping"])  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="status_message must be a str"):
            span.end(status_message=7)  # type: ignore[arg-type]
        assert not span.ended
    child.end()
    assert client.end_trace(root.trace_id) is not None


def test_waiting_for_traces_that_never_come_is_a_lowtrace_error() -> None:
    recorder = RecordingExporter()
    with pytest.raises(WaitTimeoutError, match=r"expected 1 trace\(s\), got 0 in 0.01s") as err:
        recorder.wait_for(1, timeout=0.01)
    # One except clause catches everything lowtrace raises; code catching the builtin still works.
    assert isinstance(err.value, LowtraceError) and isinstance(err.value, TimeoutError)


def test_an_all_zero_id_is_refused_for_what_it_is(client: TracingClient) -> None:
    # 32 lowercase hex digits, but W3C reserves all zeros as "no trace": the message says so.
    with pytest.raises(InvalidArgumentError, match="32 lowercase hex digits, not all zero"):
        client.end_trace("0" * 32)
    root = client.start_trace("agent")
    with pytest.raises(InvalidArgumentError, match="16 lowercase hex digits, not all zero"):
        client.end_span(root.trace_id, "0" * 16)
