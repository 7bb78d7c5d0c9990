"""Search results as a pandas DataFrame (the ``pandas`` extra), one row per trace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lowtrace._model import Trace
from lowtrace.errors import MissingExtraError

__all__ = ["traces_to_pandas"]


def traces_to_pandas(traces: Sequence[Trace]) -> Any:
    """A DataFrame with the summary columns, root inputs/outputs, tags and the Trace itself."""
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError:
        raise MissingExtraError(
            "to_pandas() needs pandas: pip install 'lowtrace[pandas]'"
        ) from None
    rows = []
    for trace in traces:
        info = trace.info
        root = trace.root
        usage = info.token_usage
        rows.append(
            {
                "trace_id": info.trace_id,
                "name": info.name,
                "status": str(info.status),
                "status_message": info.status_message,
                "start_time": pd.Timestamp(info.start_time_ns, unit="ns", tz="UTC"),
                "duration_ms": info.duration_ms,
                "span_count": info.span_count,
                "input_tokens": usage.input_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
                "total_tokens": usage.total_tokens if usage else None,
                "tags": dict(info.tags),
                "metadata": dict(info.metadata),
                "session_id": info.session_id,
                "user_id": info.user_id,
                "assessments": [
                    {"name": a.name, "kind": a.kind, "value": a.value, "source": a.source}
                    for a in info.assessments
                ],
                "request": root.inputs if root else None,
                "response": root.outputs if root else None,
                "trace": trace,
            }
        )
    return pd.DataFrame(rows)
