"""Golden evaluation datasets: one JSON line per trace with its inputs, outputs and tags.

Reviewed traces become test cases for the next version of an app: the root span's inputs
are what to send, its outputs what a good answer looked like, and the tags say where the
case came from. Values are written exactly as they were recorded. Where a reviewer logged
expectations, they are the expected output (one name: its value; several: an object by
name) and the recorded answer moves to ``recorded_outputs``; feedback comes along too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from lowtrace._model import Trace

__all__ = ["golden_lines", "golden_row"]


def golden_row(trace: Trace) -> dict[str, Any]:
    """The dataset row of one trace: ``inputs``, ``outputs``, ``tags`` and where it came from."""
    root = trace.root
    info = trace.info
    recorded = orjson.Fragment(root.outputs_json) if root else None
    row: dict[str, Any] = {
        "inputs": orjson.Fragment(root.inputs_json) if root else None,
        "outputs": recorded,
        "tags": dict(info.tags),
        "trace_id": info.trace_id,
        "name": info.name,
        "status": str(info.status),
    }
    expected = _latest(trace, "expectation")
    if expected:
        row["outputs"] = next(iter(expected.values())) if len(expected) == 1 else expected
        row["recorded_outputs"] = recorded
    feedback = _latest(trace, "feedback")
    if feedback:
        row["feedback"] = feedback
    for key in ("session_id", "user_id"):
        if getattr(info, key):
            row[key] = getattr(info, key)
    if info.metadata:
        row["metadata"] = dict(info.metadata)
    return row


def _latest(trace: Trace, kind: str) -> dict[str, Any]:
    """Name -> value of the trace's assessments of one kind (the latest per name)."""
    ordered = sorted(trace.info.assessments, key=lambda a: a.created_time_ns)
    return {a.name: orjson.Fragment(a.value_json) for a in ordered if a.kind == kind}


def golden_lines(traces: Iterable[Trace]) -> Iterator[bytes]:
    """The dataset as JSON lines, one ``bytes`` per trace, each ending in a newline."""
    for trace in traces:
        yield orjson.dumps(golden_row(trace)) + b"\n"
