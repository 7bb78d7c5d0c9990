"""Real LangGraph ``StateGraph``s traced through the LangChain handler and ``autolog()``."""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from lowtrace import SpanStatus, SpanType, Trace, TracingClient
from lowtrace.integrations import langchain as lt_langchain
from lowtrace.integrations.langchain import LowtraceCallbackHandler
from tests.integrations.conftest import finished_traces, tree


class State(TypedDict):
    question: str
    notes: Annotated[list[str], operator.add]


def research_graph(barrier: threading.Barrier | None = None) -> Any:
    """plan -> (search || draft, in parallel) -> review -> END, review routed by a function."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content="a draft")] * 50))

    def plan(state: State) -> dict[str, Any]:
        return {"notes": [f"plan for {state['question']}"]}

    def search(state: State) -> dict[str, Any]:
        if barrier is not None:
            barrier.wait(timeout=10)  # both branches are running at the same time
        return {"notes": ["found it"]}

    def draft(state: State) -> dict[str, Any]:
        if barrier is not None:
            barrier.wait(timeout=10)
        return {"notes": [str(model.invoke(state["question"]).content)]}

    def review(state: State) -> dict[str, Any]:
        return {"notes": ["ok"]}

    def after_review(state: State) -> str:
        return END

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("search", search)
    graph.add_node("draft", draft)
    graph.add_node("review", review)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "search")
    graph.add_edge("plan", "draft")
    graph.add_edge(["search", "draft"], "review")
    graph.add_conditional_edges("review", after_review)
    return graph.compile(name="research")


def approval_graph() -> Any:
    """ask (interrupts for a human answer) -> act, with a checkpointer to resume from."""

    def ask(state: State) -> dict[str, Any]:
        answer = interrupt({"approve": state["question"]})
        return {"notes": [f"human said {answer}"]}

    def act(state: State) -> dict[str, Any]:
        return {"notes": ["done"]}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_node("act", act)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "act")
    graph.add_edge("act", END)
    return graph.compile(checkpointer=MemorySaver(), name="approval")


def spans_by_name(trace: Trace) -> dict[str, Any]:
    return {span.name: span for span in trace.spans}


@pytest.fixture
def handler(client: TracingClient) -> LowtraceCallbackHandler:
    return LowtraceCallbackHandler(client)


def test_graph_run_is_one_trace_with_a_span_per_node(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    result = research_graph(threading.Barrier(2)).invoke(
        {"question": "why?", "notes": []}, config={"callbacks": [handler]}
    )

    (trace,) = finished_traces(client)
    assert result["notes"][-1] == "ok"
    assert trace.info.name == "research"
    assert sorted(tree(trace)[1:]) == [
        (1, "draft", "CHAIN"),
        (1, "plan", "CHAIN"),
        (1, "review", "CHAIN"),
        (1, "search", "CHAIN"),
        (2, "GenericFakeChatModel", "CHAT_MODEL"),
    ]
    spans = spans_by_name(trace)
    root = trace.spans[0]
    # the parallel branches are siblings under the graph, and the model call is in its node
    assert spans["search"].parent_id == spans["draft"].parent_id == root.span_id
    assert spans["GenericFakeChatModel"].parent_id == spans["draft"].span_id
    assert spans["search"].attributes["langgraph.step"] == 2
    assert spans["draft"].attributes["langgraph.step"] == 2
    assert spans["review"].attributes["langgraph.node"] == "review"
    assert spans["review"].attributes["langgraph.triggers"]
    assert spans["plan"].inputs == {"question": "why?", "notes": []}
    assert spans["plan"].outputs == {"notes": ["plan for why?"]}
    assert root.outputs["notes"][-1] == "ok"
    assert all(span.status is SpanStatus.OK for span in trace.spans)


def test_routers_are_left_out_but_their_decision_is_kept(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    research_graph().invoke({"question": "q", "notes": []}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    names = [span.name for span in trace.spans]
    assert "after_review" not in names
    assert not [n for n in names if n.startswith(("ChannelWrite", "Branch", "Runnable"))]
    (route,) = [e for e in spans_by_name(trace)["review"].events if e.name == "langgraph.route"]
    assert route.attributes["to"] == END


def test_include_internal_shows_the_routers(client: TracingClient) -> None:
    handler = LowtraceCallbackHandler(client, include_internal=True)
    research_graph().invoke({"question": "q", "notes": []}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    spans = spans_by_name(trace)
    assert spans["after_review"].parent_id == spans["review"].span_id
    assert spans["after_review"].attributes["langgraph.internal"] == "router"
    assert spans["after_review"].outputs == END


def test_batch_on_threads_gives_one_trace_per_input(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    questions = [f"question {i}" for i in range(6)]
    results = research_graph().batch(
        [{"question": q, "notes": []} for q in questions],
        config={"callbacks": [handler], "max_concurrency": 3},
    )

    traces = finished_traces(client)
    assert [r["notes"][0] for r in results] == [f"plan for {q}" for q in questions]
    assert len(traces) == 6
    assert sorted(t.spans[0].inputs["question"] for t in traces) == questions
    for trace in traces:
        spans = spans_by_name(trace)
        assert set(spans) >= {"plan", "search", "draft", "review"}
        assert spans["plan"].outputs == {"notes": [f"plan for {trace.spans[0].inputs['question']}"]}
        assert {s.trace_id for s in trace.spans} == {trace.info.trace_id}


def test_interrupt_and_resume_are_two_readable_traces_of_one_thread(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    graph = approval_graph()
    config: Any = {"configurable": {"thread_id": "thread-7"}, "callbacks": [handler]}

    paused = graph.invoke({"question": "ship it?", "notes": []}, config=config)
    resumed = graph.invoke(Command(resume="yes"), config=config)

    assert "__interrupt__" in paused
    assert resumed["notes"] == ["human said yes", "done"]
    first, second = finished_traces(client)
    ask = spans_by_name(first)["ask"]
    assert ask.status is SpanStatus.OK  # waiting for a human is not a failure
    (event,) = [e for e in ask.events if e.name == "langgraph.interrupt"]
    assert event.attributes["values"] == [{"approve": "ship it?"}]
    assert first.info.tags["langgraph.interrupted"] == "true"
    assert first.info.status is SpanStatus.OK
    assert second.spans[0].inputs == {"command": {"resume": "yes"}}
    assert [name for _, name, _ in tree(second)] == ["approval", "ask", "act"]
    assert spans_by_name(second)["ask"].outputs == {"notes": ["human said yes"]}
    assert "langgraph.interrupted" not in second.info.tags
    found = client.search_traces("tags.`langgraph.thread_id` = 'thread-7'")
    assert {t.info.trace_id for t in found} == {first.info.trace_id, second.info.trace_id}


def test_a_failing_node_is_recorded_and_the_error_reaches_the_caller(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    def broken(state: State) -> dict[str, Any]:
        raise ValueError("node failed")

    graph = StateGraph(State)
    graph.add_node("broken", broken)
    graph.add_edge(START, "broken")
    app = graph.compile()

    with pytest.raises(ValueError, match="node failed"):
        app.invoke({"question": "q", "notes": []}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    span = spans_by_name(trace)["broken"]
    assert span.status is SpanStatus.ERROR
    assert trace.info.status is SpanStatus.ERROR
    assert [e.attributes["exception.type"] for e in span.events if e.name == "exception"] == [
        "ValueError"
    ]


@pytest.fixture
def autologged(client: TracingClient) -> Iterator[None]:
    lt_langchain.autolog(client)
    yield
    lt_langchain.disable()


def test_autolog_traces_graphs_sync_and_async(client: TracingClient, autologged: None) -> None:
    app = research_graph()
    app.invoke({"question": "sync", "notes": []})
    asyncio.run(app.ainvoke({"question": "async", "notes": []}))
    chunks = list(app.stream({"question": "streamed", "notes": []}))

    traces = finished_traces(client)
    assert len(chunks) == 4
    assert [t.spans[0].inputs["question"] for t in traces] == ["sync", "async", "streamed"]
    for trace in traces:
        assert trace.info.name == "research"
        spans = spans_by_name(trace)
        assert spans["search"].parent_id == spans["draft"].parent_id == trace.spans[0].span_id
        assert spans["GenericFakeChatModel"].span_type is SpanType.CHAT_MODEL

    lt_langchain.disable()
    app.invoke({"question": "untraced", "notes": []})
    assert len(finished_traces(client)) == 3


def test_subgraph_nodes_nest_under_the_node_that_runs_the_subgraph(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    inner = StateGraph(State)
    inner.add_node("lookup", lambda state: {"notes": ["looked up"]})
    inner.add_edge(START, "lookup")
    outer = StateGraph(State)
    outer.add_node("prepare", lambda state: {"notes": ["prepared"]})
    outer.add_node("research", inner.compile())
    outer.add_edge(START, "prepare")
    outer.add_edge("prepare", "research")

    result = outer.compile().invoke({"question": "q", "notes": []}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    assert result["notes"][-1] == "looked up"
    assert [(depth, name) for depth, name, _ in tree(trace)] == [
        (0, "LangGraph"),
        (1, "prepare"),
        (1, "research"),
        (2, "LangGraph"),  # the subgraph's own run, inside the node that runs it
        (3, "lookup"),
    ]


def test_send_fan_out_runs_one_sibling_span_per_item(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    from langgraph.types import Send

    def summarize(state: dict[str, Any]) -> dict[str, Any]:
        return {"notes": [f"summary of {state['doc']}"]}

    graph = StateGraph(State)
    graph.add_node("summarize", summarize)
    graph.add_conditional_edges(
        START, lambda state: [Send("summarize", {"doc": d}) for d in ("a", "b", "c")]
    )
    graph.compile().invoke({"question": "q", "notes": []}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    root = trace.spans[0]
    summaries = [s for s in trace.spans if s.name == "summarize"]
    assert sorted(s.inputs["doc"] for s in summaries) == ["a", "b", "c"]
    assert {s.parent_id for s in summaries} == {root.span_id}
    assert [s.name for s in trace.spans if s.parent_id is not None] == ["summarize"] * 3


def test_calls_inside_hidden_runs_move_up_to_the_node(
    client: TracingClient, handler: LowtraceCallbackHandler
) -> None:
    from langchain_core.runnables import RunnableLambda

    model = GenericFakeChatModel(messages=iter([AIMessage(content="hidden work")] * 5))
    helper = RunnableLambda(model.invoke).with_config(tags=["langsmith:hidden"], run_name="helper")

    def work(state: State) -> dict[str, Any]:
        return {"notes": [str(helper.invoke(state["question"]).content)]}

    graph = StateGraph(State)
    graph.add_node("work", work)
    graph.add_edge(START, "work")
    graph.compile().invoke({"question": "q", "notes": []}, config={"callbacks": [handler]})

    (trace,) = finished_traces(client)
    spans = spans_by_name(trace)
    assert "helper" not in spans
    assert spans["GenericFakeChatModel"].parent_id == spans["work"].span_id
