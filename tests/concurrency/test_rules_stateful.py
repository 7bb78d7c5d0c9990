"""A Hypothesis state machine drives the client against a tiny model of the lifecycle rules.

Every call must succeed exactly when the model says it may, or raise exactly the error class
the model predicts; finished traces must match the model span for span.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lowtrace import (
    OpenSpansError,
    SpanEndedError,
    SpanNotFoundError,
    SpanStatus,
    TraceEndedError,
    TracingClient,
)


@attrs.define
class ModelSpan:
    span_id: str
    parent_id: str | None
    open: bool = True
    error: bool = False


@attrs.define
class ModelTrace:
    trace_id: str
    root: str
    spans: dict[str, ModelSpan] = attrs.field(factory=dict)
    ended: bool = False


class ClientRules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client = TracingClient("memory://")
        self.traces: list[ModelTrace] = []
        self.handles: dict[str, Any] = {}
        self.finished = 0

    def teardown(self) -> None:
        self.client.close()

    def pick(self, data: st.DataObject, *, live: bool | None = None) -> ModelTrace:
        pool = [t for t in self.traces if live is None or t.ended != live]
        return data.draw(st.sampled_from(pool))

    def expect(self, error: type[Exception] | None, call: Any) -> Any:
        if error is None:
            return call()
        try:
            call()
        except error:
            return None
        raise AssertionError(f"expected {error.__name__}")

    @rule()
    def start_trace(self) -> None:
        root = self.client.start_trace("t")
        model = ModelTrace(root.trace_id, root.span_id)
        model.spans[root.span_id] = ModelSpan(root.span_id, None)
        self.traces.append(model)
        self.handles[root.span_id] = root

    @precondition(lambda self: self.traces)
    @rule(data=st.data(), kind=st.sampled_from(["existing", "unknown", "foreign"]))
    def start_span(self, data: st.DataObject, kind: str) -> None:
        trace = self.pick(data)
        if kind == "existing":
            parent = data.draw(st.sampled_from(list(trace.spans)))
        elif kind == "unknown":
            parent = "0123456789abcdef"
        else:
            others = [s for t in self.traces if t is not trace and not t.ended for s in t.spans]
            if not others:
                return
            parent = data.draw(st.sampled_from(others))
        if trace.ended:
            error: type[Exception] | None = TraceEndedError
        elif parent not in trace.spans:
            error = SpanNotFoundError
        elif not trace.spans[parent].open:
            error = SpanEndedError
        else:
            error = None
        handle = self.expect(
            error, lambda: self.client.start_span("s", trace_id=trace.trace_id, parent_id=parent)
        )
        if error is None:
            trace.spans[handle.span_id] = ModelSpan(handle.span_id, parent)
            self.handles[handle.span_id] = handle

    @precondition(lambda self: self.traces)
    @rule(data=st.data(), fail=st.booleans())
    def end_span(self, data: st.DataObject, fail: bool) -> None:
        trace = self.pick(data)
        children = [s for s in trace.spans if s != trace.root]  # insertion order: reproducible
        if not children:
            return
        span = trace.spans[data.draw(st.sampled_from(children))]
        error = TraceEndedError if trace.ended else (None if span.open else SpanEndedError)
        status = SpanStatus.ERROR if fail else None
        self.expect(
            error, lambda: self.client.end_span(trace.trace_id, span.span_id, status=status)
        )
        if error is None:
            span.open = False
            span.error = span.error or fail  # status=None keeps a recorded exception's ERROR

    @precondition(lambda self: self.traces)
    @rule(data=st.data())
    def record_exception(self, data: st.DataObject) -> None:
        trace = self.pick(data)
        span = trace.spans[data.draw(st.sampled_from(list(trace.spans)))]
        error = TraceEndedError if trace.ended else (None if span.open else SpanEndedError)
        self.expect(error, lambda: self.handles[span.span_id].record_exception(RuntimeError("x")))
        if error is None:
            span.error = True

    @precondition(lambda self: self.traces)
    @rule(data=st.data(), close=st.booleans())
    def end_trace(self, data: st.DataObject, close: bool) -> None:
        trace = self.pick(data)
        still_open = [s for s in trace.spans.values() if s.open and s.span_id != trace.root]
        if trace.ended:
            error: type[Exception] | None = TraceEndedError
        elif still_open and not close:
            error = OpenSpansError
        else:
            error = None
        result = self.expect(
            error, lambda: self.client.end_trace(trace.trace_id, close_open_spans=close)
        )
        if error is not None:
            return
        for span in trace.spans.values():
            if span.open and span.span_id != trace.root:
                span.error = True
            span.open = False
        trace.ended = True
        self.finished += 1
        assert {s.span_id: s.parent_id for s in result.spans} == {
            s.span_id: s.parent_id for s in trace.spans.values()
        }
        for record in result.spans:
            expected = SpanStatus.ERROR if trace.spans[record.span_id].error else SpanStatus.OK
            assert record.status is expected

    @invariant()
    def counters_agree(self) -> None:
        stats = self.client.stats()
        assert stats.finished_traces == self.finished
        assert stats.live_traces == sum(not t.ended for t in self.traces)


TestClientRules = ClientRules.TestCase
TestClientRules.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
