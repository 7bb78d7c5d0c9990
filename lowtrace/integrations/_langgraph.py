"""LangGraph runs as the LangChain callback handler sees them: nodes, plumbing, interrupts.

LangGraph reports each node of a step as a chain run tagged ``graph:step:N`` with
``langgraph_node``/``langgraph_step``/``langgraph_triggers`` in its metadata. Around the
nodes it runs plumbing: channel writes, the routers of conditional edges (a step after the
node's own work in the node's sequence), runs tagged ``langsmith:hidden``. Those are left out
unless asked for; their children move up to the nearest shown run, and a router's decision
becomes a ``langgraph.route`` event on its node. An ``interrupt()`` (or a ``Command`` sent to
a parent graph) is control flow, not a failure: LangGraph signals it with a
``GraphBubbleUp`` exception, which is recorded as an event on a span that ends OK.
Nothing here imports langgraph: it reads names, tags and metadata only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

__all__ = ["GraphRuns", "bubble_up_event", "command_inputs", "is_bubble_up"]

HIDDEN_TAG = "langsmith:hidden"
_PLUMBING_PREFIXES = ("ChannelWrite", "ChannelRead", "Branch<", "ChannelInvoke")
_PLUMBING_NAMES = frozenset({"_write", "_route", "_control_branch", "_get_updates"})


def _step_tag(tags: Sequence[str] | None, prefix: str) -> int | None:
    for tag in tags or ():
        if tag.startswith(prefix) and tag[len(prefix) :].isdigit():
            return int(tag[len(prefix) :])
    return None


def _is_langgraph(cls: type) -> bool:
    return cls.__module__.startswith("langgraph")


def is_bubble_up(error: BaseException) -> bool:
    """True for LangGraph's control-flow exceptions (interrupts, commands to a parent graph)."""
    return any(c.__name__ == "GraphBubbleUp" and _is_langgraph(c) for c in type(error).__mro__)


def bubble_up_event(error: BaseException) -> tuple[str, dict[str, Any]]:
    """The event that records a bubble-up: ``langgraph.interrupt`` with the interrupt values."""
    if type(error).__name__ == "GraphInterrupt":
        values = [getattr(i, "value", i) for i in (error.args[0] if error.args else ())]
        return "langgraph.interrupt", {"values": values}
    return "langgraph.bubble_up", {"type": type(error).__name__, "detail": repr(error)}


def command_inputs(inputs: Any) -> Any:
    """A ``Command`` (how a graph is resumed) as a readable dict; other inputs unchanged."""
    cls = type(inputs)
    if cls.__name__ != "Command" or not _is_langgraph(cls):
        return inputs
    fields = ("resume", "update", "goto", "graph")
    return {"command": {f: getattr(inputs, f) for f in fields if getattr(inputs, f, None)}}


class GraphRuns:
    """Which LangGraph runs are hidden, and where their children go instead (thread-safe)."""

    def __init__(self, include_internal: bool) -> None:
        self.include_internal = include_internal
        self._lock = threading.Lock()  # guards _hidden and _nodes
        self._hidden: dict[UUID, tuple[UUID | None, bool]] = {}  # id -> (shown parent, router)
        self._nodes: set[UUID] = set()

    def visible_parent(self, parent_run_id: UUID | None) -> UUID | None:
        """The nearest ancestor that is recorded (a hidden run's children move up to it)."""
        with self._lock:
            while parent_run_id is not None and parent_run_id in self._hidden:
                parent_run_id = self._hidden[parent_run_id][0]
        return parent_run_id

    def start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[str, dict[str, Any]] | None:
        """(span name, attributes) for a chain run, or None when it is hidden plumbing."""
        metadata = metadata or {}
        node = metadata.get("langgraph_node")
        hidden = HIDDEN_TAG in (tags or ())
        if node is None and not hidden:
            return name, {}
        step = metadata.get("langgraph_step")
        with self._lock:
            parent_is_node = parent_run_id in self._nodes
        if not hidden and step is not None and _step_tag(tags, "graph:step:") == step:
            with self._lock:
                self._nodes.add(run_id)
            triggers = [str(t) for t in metadata.get("langgraph_triggers") or ()]
            attributes = {"langgraph.node": node, "langgraph.step": step}
            if triggers:
                attributes["langgraph.triggers"] = triggers
            return str(node), attributes
        router = parent_is_node and (_step_tag(tags, "seq:step:") or 0) >= 2
        plumbing = (
            router or hidden or name.startswith(_PLUMBING_PREFIXES) or name in _PLUMBING_NAMES
        )
        if not plumbing:
            return name, {}
        if self.include_internal:
            return name, {"langgraph.internal": "router" if router else "plumbing"}
        parent = self.visible_parent(parent_run_id)
        with self._lock:
            self._hidden[run_id] = (parent, router)
        return None

    def end(self, run_id: UUID) -> tuple[UUID | None, bool] | None:
        """Forget a run; for a hidden one, (its shown parent, whether it was a router)."""
        with self._lock:
            self._nodes.discard(run_id)
            return self._hidden.pop(run_id, None)
