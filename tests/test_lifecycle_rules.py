"""Every lifecycle rule of the low-level client, each with its own exception class."""

from __future__ import annotations

import logging

import pytest

from lowtrace import (
    InvalidArgumentError,
    LifecycleError,
    LowtraceError,
    NoopSpan,
    OpenSpansError,
    SpanEndedError,
    SpanNotFoundError,
    SpanStatus,
    SpanType,
    TraceEndedError,
    TraceNotFoundError,
    TracingClient,
)

UNKNOWN_TRACE = "ab" * 16
UNKNOWN_SPAN = "cd" * 8


def test_a_simple_trace_end_to_end(client: TracingClient) -> None:
    root = client.start_trace("agent", inputs={"q": "hi"}, attributes={"v": 1}, tags={"env": "t"})
    child = client.start_span(
        "search",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        span_type=SpanType.RETRIEVER,
        inputs={"query": "x"},
    )
    client.end_span(child.trace_id, child.span_id, outputs=["doc"])
    trace = client.end_trace(root.trace_id, outputs={"answer": "hello"})

    assert trace is not None
    assert len(root.trace_id) == 32 and len(root.span_id) == 16 and root.parent_id is None
    assert child.parent_id == root.span_id
    assert trace.info.name == "agent" and trace.info.status is SpanStatus.OK
    assert trace.info.tags == {"env": "t"} and trace.info.span_count == 2
    first, second = trace.spans
    assert (first.inputs, first.outputs, first.attributes) == (
        {"q": "hi"},
        {"answer": "hello"},
        {"v": 1},
    )
    assert (second.span_type, second.inputs, second.outputs) == (
        SpanType.RETRIEVER,
        {"query": "x"},
        ["doc"],
    )
    assert client.flush(5)
    assert client.get_trace(root.trace_id) == trace


def test_errors_form_one_tree() -> None:
    for leaf in (
        TraceNotFoundError,
        SpanNotFoundError,
        TraceEndedError,
        SpanEndedError,
        OpenSpansError,
    ):
        assert issubclass(leaf, LifecycleError) and issubclass(leaf, LowtraceError)
    assert issubclass(InvalidArgumentError, ValueError)


def test_unknown_trace(client: TracingClient) -> None:
    with pytest.raises(TraceNotFoundError, match="start_trace"):
        client.start_span("x", trace_id=UNKNOWN_TRACE, parent_id=UNKNOWN_SPAN)
    with pytest.raises(TraceNotFoundError):
        client.end_span(UNKNOWN_TRACE, UNKNOWN_SPAN)
    with pytest.raises(TraceNotFoundError):
        client.end_trace(UNKNOWN_TRACE)
    with pytest.raises(TraceNotFoundError):
        client.set_trace_tags(UNKNOWN_TRACE, {"a": "b"})


def test_malformed_ids_are_bad_arguments(client: TracingClient) -> None:
    root = client.start_trace("t")
    with pytest.raises(InvalidArgumentError, match="32 lowercase hex"):
        client.end_trace("not-an-id")
    with pytest.raises(InvalidArgumentError):
        client.start_span("x", trace_id=root.trace_id, parent_id=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="16 lowercase hex"):
        client.end_span(root.trace_id, "nope")


def test_unknown_parent(client: TracingClient) -> None:
    root = client.start_trace("t")
    with pytest.raises(SpanNotFoundError, match=UNKNOWN_SPAN):
        client.start_span("x", trace_id=root.trace_id, parent_id=UNKNOWN_SPAN)
    with pytest.raises(SpanNotFoundError):
        client.end_span(root.trace_id, UNKNOWN_SPAN)


def test_parent_from_another_trace(client: TracingClient) -> None:
    one = client.start_trace("one")
    two = client.start_trace("two")
    with pytest.raises(SpanNotFoundError, match=f"belongs to trace {two.trace_id}"):
        client.start_span("x", trace_id=one.trace_id, parent_id=two.span_id)
    with pytest.raises(SpanNotFoundError, match="belongs to trace"):
        client.end_span(one.trace_id, two.span_id)


def test_no_child_under_an_ended_span(client: TracingClient) -> None:
    root = client.start_trace("t")
    done = client.start_span("done", trace_id=root.trace_id, parent_id=root.span_id)
    done.end()
    with pytest.raises(SpanEndedError, match="has already ended"):
        client.start_span("late", trace_id=root.trace_id, parent_id=done.span_id)


def test_ending_a_span_twice(client: TracingClient) -> None:
    root = client.start_trace("t")
    span = client.start_span("s", trace_id=root.trace_id, parent_id=root.span_id)
    client.end_span(root.trace_id, span.span_id, outputs=1)
    with pytest.raises(SpanEndedError):
        client.end_span(root.trace_id, span.span_id, outputs=2)
    with pytest.raises(SpanEndedError):
        span.end()
    trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.spans[1].outputs == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.set_attributes({"late": True}),
        lambda s: s.add_event("late"),
        lambda s: s.record_exception(RuntimeError("late")),
        lambda s: s.set_token_usage(input_tokens=1),
        lambda s: s.set_outputs("late"),
        lambda s: s.end(),
    ],
)
def test_no_change_to_an_ended_span(client: TracingClient, change) -> None:  # type: ignore[no-untyped-def]
    root = client.start_trace("t")
    span = client.start_span("s", trace_id=root.trace_id, parent_id=root.span_id)
    span.end(outputs="final")
    with pytest.raises(SpanEndedError):
        change(span)
    trace = client.end_trace(root.trace_id)
    assert trace is not None
    record = trace.spans[1]
    assert (record.outputs, record.attributes, record.events, record.status) == (
        "final",
        {},
        (),
        SpanStatus.OK,
    )


def test_no_change_to_an_ended_trace(client: TracingClient) -> None:
    root = client.start_trace("t")
    child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)
    client.end_trace(root.trace_id, close_open_spans=True)
    with pytest.raises(TraceEndedError):
        client.end_trace(root.trace_id)
    with pytest.raises(TraceEndedError):
        client.start_span("x", trace_id=root.trace_id, parent_id=root.span_id)
    with pytest.raises(TraceEndedError):  # metadata is fixed once the trace ends
        client.set_trace_metadata(root.trace_id, {"a": "b"}, session_id="s")
    with pytest.raises(TraceEndedError):
        child.set_attributes({"a": 1})
    with pytest.raises(TraceEndedError):
        root.end()


def test_ending_a_trace_with_open_spans(client: TracingClient) -> None:
    root = client.start_trace("t")
    a = client.start_span("a", trace_id=root.trace_id, parent_id=root.span_id)
    b = client.start_span("b", trace_id=root.trace_id, parent_id=a.span_id)
    with pytest.raises(OpenSpansError, match="2 span") as raised:
        client.end_trace(root.trace_id)
    assert set(raised.value.open_span_ids) == {a.span_id, b.span_id}
    # Nothing changed: the trace is still live and can be finished properly.
    b.end()
    a.end()
    trace = client.end_trace(root.trace_id)
    assert trace is not None and all(s.status is SpanStatus.OK for s in trace.spans)


def test_close_open_spans_marks_them(client: TracingClient) -> None:
    root = client.start_trace("t")
    left = client.start_span("left", trace_id=root.trace_id, parent_id=root.span_id)
    trace = client.end_trace(root.trace_id, close_open_spans=True, outputs="done")
    assert trace is not None
    record = trace.get_span(left.span_id)
    assert record is not None and record.status is SpanStatus.ERROR
    assert "close_open_spans" in (record.status_message or "")
    assert record.attributes["lowtrace.closed_open_span"] is True
    assert trace.info.status is SpanStatus.OK  # the root itself ended normally


def test_ending_the_root_span_ends_the_trace(client: TracingClient) -> None:
    root = client.start_trace("t")
    child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)
    with pytest.raises(OpenSpansError):
        root.end()
    child.end()
    client.end_span(root.trace_id, root.span_id, outputs={"ok": True})
    assert client.flush(5)
    stored = client.get_trace(root.trace_id)
    assert stored is not None and stored.spans[0].outputs == {"ok": True}
    with pytest.raises(TraceEndedError):
        client.end_trace(root.trace_id)


@pytest.mark.parametrize("name", ["", "   ", None, 42, b"bytes"])
def test_bad_names(client: TracingClient, name: object) -> None:
    with pytest.raises(InvalidArgumentError):
        client.start_trace(name)  # type: ignore[arg-type]
    root = client.start_trace("ok")
    with pytest.raises(InvalidArgumentError):
        client.start_span(name, trace_id=root.trace_id, parent_id=root.span_id)  # type: ignore[arg-type]


def test_bad_argument_types(client: TracingClient) -> None:
    root = client.start_trace("t")
    with pytest.raises(InvalidArgumentError):
        client.start_span("x", trace_id=root.trace_id, parent_id=root.span_id, span_type=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.start_span(
            "x", trace_id=root.trace_id, parent_id=root.span_id, attributes=["not", "a", "mapping"]
        )  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.start_span(
            "x", trace_id=root.trace_id, parent_id=root.span_id, attributes={1: "non-str key"}
        )  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError):
        client.start_span("x", trace_id=root.trace_id, parent_id=root.span_id, start_time_ns=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.end_trace(root.trace_id, status="MAYBE")
    with pytest.raises(InvalidArgumentError):
        client.end_trace(root.trace_id, status_message=7)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.start_trace("t", tags=["x"])  # type: ignore[arg-type]
    span = client.start_span("s", trace_id=root.trace_id, parent_id=root.span_id)
    with pytest.raises(InvalidArgumentError):
        span.set_token_usage(input_tokens=-1)
    with pytest.raises(InvalidArgumentError):
        span.set_token_usage()
    with pytest.raises(InvalidArgumentError):
        span.add_event("")
    with pytest.raises(InvalidArgumentError):
        span.record_exception("not an exception")  # type: ignore[arg-type]
    assert client.end_trace(root.trace_id, close_open_spans=True) is not None


def test_time_cannot_go_backwards(client: TracingClient) -> None:
    root = client.start_trace("t", start_time_ns=1_000)
    span = client.start_span(
        "s", trace_id=root.trace_id, parent_id=root.span_id, start_time_ns=2_000
    )
    with pytest.raises(InvalidArgumentError, match="before the span's start"):
        client.end_span(root.trace_id, span.span_id, end_time_ns=1_999)
    span.end(end_time_ns=3_000)
    with pytest.raises(InvalidArgumentError, match="before the trace's start"):
        client.end_trace(root.trace_id, end_time_ns=999)
    trace = client.end_trace(root.trace_id, end_time_ns=4_000)
    assert trace is not None
    assert [(s.start_time_ns, s.end_time_ns) for s in trace.spans] == [
        (1_000, 4_000),
        (2_000, 3_000),
    ]
    assert trace.info.duration_ms == 0.003


def test_a_failed_call_leaves_nothing_behind(client: TracingClient) -> None:
    def build(fail: bool) -> object:
        root = client.start_trace("t", start_time_ns=10)
        span = client.start_span(
            "s",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            start_time_ns=20,
            attributes={"a": 1},
        )
        if fail:
            with pytest.raises(InvalidArgumentError):
                span.end(outputs="partial", attributes={"b": 2}, end_time_ns=5)
            with pytest.raises(OpenSpansError):
                client.end_trace(
                    root.trace_id, outputs="partial", attributes={"c": 3}, end_time_ns=100
                )
            with pytest.raises(SpanNotFoundError):
                client.start_span("ghost", trace_id=root.trace_id, parent_id=UNKNOWN_SPAN)
        span.end(end_time_ns=30)
        trace = client.end_trace(root.trace_id, end_time_ns=100)
        assert trace is not None
        return [
            (s.name, s.outputs, dict(s.attributes), s.start_time_ns, s.end_time_ns, s.status)
            for s in trace.spans
        ]

    assert build(fail=True) == build(fail=False)


def test_status_rules(client: TracingClient) -> None:
    root = client.start_trace("t")
    plain = client.start_span("plain", trace_id=root.trace_id, parent_id=root.span_id)
    failed = client.start_span("failed", trace_id=root.trace_id, parent_id=root.span_id)
    handled = client.start_span("handled", trace_id=root.trace_id, parent_id=root.span_id)
    explicit = client.start_span("explicit", trace_id=root.trace_id, parent_id=root.span_id)
    plain.end()
    try:
        raise KeyError("missing")
    except KeyError as exc:
        failed.record_exception(exc)
        handled.record_exception(exc)
    failed.end()  # status=None keeps the recorded ERROR
    handled.end(status=SpanStatus.OK)  # an explicit status wins
    explicit.end(status="ERROR", status_message="quota exceeded")
    trace = client.end_trace(root.trace_id)
    assert trace is not None
    by_name = {s.name: s for s in trace.spans}
    assert by_name["plain"].status is SpanStatus.OK
    assert by_name["failed"].status is SpanStatus.ERROR
    assert by_name["failed"].status_message == "KeyError: 'missing'"
    (event,) = by_name["failed"].events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "KeyError"
    assert event.attributes["exception.message"] == "'missing'"
    assert "raise KeyError" in event.attributes["exception.stacktrace"]
    assert by_name["handled"].status is SpanStatus.OK
    assert (by_name["explicit"].status, by_name["explicit"].status_message) == (
        SpanStatus.ERROR,
        "quota exceeded",
    )


def test_non_strict_mode_logs_counts_and_returns_inert_values(
    lenient: TracingClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lowtrace"):
        ghost = lenient.start_span("x", trace_id=UNKNOWN_TRACE, parent_id=UNKNOWN_SPAN)
        assert isinstance(ghost, NoopSpan) and not ghost.is_recording
        ghost.set_attributes({"a": 1})
        ghost.end()
        assert lenient.end_trace(UNKNOWN_TRACE) is None
        root = lenient.start_trace("t")
        span = lenient.start_span("s", trace_id=root.trace_id, parent_id=root.span_id)
        span.end()
        span.end()  # twice: logged, not raised
        assert lenient.end_trace(root.trace_id) is not None
    violations = lenient.stats().violations
    assert violations == {"TraceNotFoundError": 2, "SpanEndedError": 1}
    assert "SpanEndedError" in caplog.text


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOWTRACE_ENABLED", "false")
    monkeypatch.chdir(tmp_path)
    with TracingClient() as client:
        root = client.start_trace("t")
        assert isinstance(root, NoopSpan)
        child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)
        child.end()
        client.end_span(root.trace_id, child.span_id)
        assert client.end_trace(root.trace_id) is None
        assert client.flush(1)
        assert client.store is None
    assert list(tmp_path.iterdir()) == []  # no store file was created


def test_uri_from_environment_and_code(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOWTRACE_URI", f"sqlite:///{tmp_path}/env.db")
    with TracingClient() as from_env:
        assert from_env.uri.endswith("env.db")
    with TracingClient("memory://") as in_code:
        assert in_code.uri == "memory://"
    monkeypatch.delenv("LOWTRACE_URI")
    monkeypatch.chdir(tmp_path)
    with TracingClient() as default:
        assert default.uri == "sqlite:///lowtrace.db"
    assert (tmp_path / "lowtrace.db").exists()


def test_memory_stores_are_private_to_their_client() -> None:
    with TracingClient("memory://") as a, TracingClient("memory://") as b:
        root = a.start_trace("mine")
        a.end_trace(root.trace_id)
        assert a.flush(5) and b.flush(5)
        assert a.get_trace(root.trace_id) is not None
        assert b.get_trace(root.trace_id) is None


def test_replayed_timestamps_out_of_order(client: TracingClient) -> None:
    root = client.start_trace("callbacks", start_time_ns=100)
    late = client.start_span(
        "second", trace_id=root.trace_id, parent_id=root.span_id, start_time_ns=300
    )
    early = client.start_span(
        "first", trace_id=root.trace_id, parent_id=root.span_id, start_time_ns=200
    )
    grandchild = client.start_span(
        "inner", trace_id=root.trace_id, parent_id=late.span_id, start_time_ns=250
    )  # skewed clock: before its parent
    for span, end in ((grandchild, 260), (early, 250), (late, 400)):
        span.end(end_time_ns=end)
    trace = client.end_trace(root.trace_id, end_time_ns=500)
    assert trace is not None
    assert [s.name for s in trace.spans] == ["callbacks", "first", "second", "inner"]
    assert [s.start_time_ns for s in trace.spans] == [100, 200, 300, 250]


def test_trace_tags_can_be_added_while_live(client: TracingClient) -> None:
    root = client.start_trace("t", tags={"a": "1"})
    client.set_trace_tags(root.trace_id, {"b": 2, "a": "one"})
    trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.info.tags == {"a": "one", "b": "2"}


def test_a_tag_set_with_a_lone_surrogate_in_its_key_is_deleted_by_the_same_key(
    client: TracingClient,
) -> None:
    # The key is stored made valid (U+FFFD); deleting by the key as given must find it,
    # on the live trace and on the stored one.
    bad = "k\ud800"
    root = client.start_trace("t")
    client.set_trace_tags(root.trace_id, {bad: "1", "keep": "2"})
    client.delete_trace_tag(root.trace_id, bad)
    trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.info.tags == {"keep": "2"}
    assert client.flush(10)
    client.set_trace_tags(root.trace_id, {bad: "3"})
    client.delete_trace_tag(root.trace_id, bad)
    stored = client.get_trace(root.trace_id)
    assert stored is not None and stored.info.tags == {"keep": "2"}


def test_continuing_a_remote_trace(client: TracingClient) -> None:
    remote_trace, remote_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    root = client.start_trace("tool-service", traceparent=f"00-{remote_trace}-{remote_span}-01")
    assert (root.trace_id, root.parent_id) == (remote_trace, remote_span)
    assert root.traceparent == f"00-{remote_trace}-{root.span_id}-01"
    trace = client.end_trace(root.trace_id)
    assert trace is not None and trace.root is not None
    assert trace.root.parent_id == remote_span
    with pytest.raises(InvalidArgumentError):
        client.start_trace("bad", traceparent="00-zz-yy-01")
