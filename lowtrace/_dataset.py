"""Golden evaluation datasets: one JSON line per trace with its inputs, outputs and tags.

Reviewed traces become test cases for the next version of an app: the root span's inputs
are what to send, its outputs what a good answer looked like, and the tags say where the
case came from. Values are written exactly as they were recorded.
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
    return {
        "inputs": orjson.Fragment(root.inputs_json) if root else None,
        "outputs": orjson.Fragment(root.outputs_json) if root else None,
        "tags": dict(info.tags),
        "trace_id": info.trace_id,
        "name": info.name,
        "status": str(info.status),
    }


def golden_lines(traces: Iterable[Trace]) -> Iterator[bytes]:
    """The dataset as JSON lines, one ``bytes`` per trace, each ending in a newline."""
    for trace in traces:
        yield orjson.dumps(golden_row(trace)) + b"\n"
