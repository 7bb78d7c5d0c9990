"""The Delta inference table's columns, one Arrow row per trace, and filter push-down.

Columns are what a data platform queries without parsing JSON (request, response, status,
latency, tokens, tags, session and user ids, times) plus the full trace as JSON, which is
what lowtrace reads back. The table is partitioned by ``date`` (UTC day of the start time).

Push-down turns the parts of a filter that the table can answer (``date`` partitions, and
simple comparisons on trace id, name, status and times) into a pyarrow expression that
selects a *superset* of the matching rows; the reference evaluator then decides exactly.
Only predicates that hold for some stored fragment whenever they hold for the merged trace
are pushed (a trace recorded by two processes is two rows), so nothing is missed.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from lowtrace._model import Trace
from lowtrace._query.filter import And, Comparison, Expr, Or
from lowtrace._serde import trace_to_json

__all__ = ["SCHEMA", "pushdown", "session_and_user", "to_arrow"]

_UTC: Final = datetime.UTC
_TS: Final = pa.timestamp("us", tz="UTC")

_FIELDS: Final[list[pa.Field[Any]]] = [
    pa.field("date", pa.date32(), nullable=False),
    pa.field("trace_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("request", pa.string()),
    pa.field("response", pa.string()),
    pa.field("status", pa.string()),
    pa.field("status_message", pa.string()),
    pa.field("start_time", _TS),
    pa.field("end_time", _TS),
    pa.field("duration_ms", pa.float64()),
    pa.field("input_tokens", pa.int64()),
    pa.field("output_tokens", pa.int64()),
    pa.field("total_tokens", pa.int64()),
    pa.field("tags", pa.map_(pa.string(), pa.string())),
    pa.field("session_id", pa.string()),
    pa.field("user_id", pa.string()),
    pa.field("span_count", pa.int64()),
    pa.field("trace", pa.string(), nullable=False),
]
SCHEMA: Final = pa.schema(_FIELDS)

#: Where MLflow and common integrations keep the conversation and the end user.
_SESSION_KEYS: Final = ("session_id", "mlflow.trace.session", "session.id")
_USER_KEYS: Final = ("user_id", "mlflow.trace.user", "user.id")


def _first(maps: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str | None:
    for mapping in maps:
        for key in keys:
            value = mapping.get(key)
            if value is not None:
                return str(value)
    return None


def session_and_user(trace: Trace) -> tuple[str | None, str | None]:
    """The trace's session and user ids: ``info.session_id``/``user_id``, else tags/metadata."""
    info = trace.info
    maps: list[Mapping[str, Any]] = [info.tags]
    metadata = getattr(info, "metadata", None)
    if isinstance(metadata, Mapping):
        maps.append(metadata)
    session = getattr(info, "session_id", None) or _first(maps, _SESSION_KEYS)
    user = getattr(info, "user_id", None) or _first(maps, _USER_KEYS)
    return session, user


def _payload(raw: bytes | None) -> str | None:
    return raw.decode() if raw is not None else None


def to_arrow(traces: Sequence[Trace]) -> tuple[pa.Table, int]:
    """The rows of a batch of traces as an Arrow table, and its approximate size in bytes."""
    cols: dict[str, list[Any]] = {field.name: [] for field in SCHEMA}
    size = 0
    for trace in traces:
        info = trace.info
        root = trace.root
        usage = info.token_usage
        start = datetime.datetime.fromtimestamp(info.start_time_ns / 1e9, _UTC)
        session, user = session_and_user(trace)
        full = trace_to_json(trace).decode()
        size += len(full)
        for name, value in (
            ("date", start.date()),
            ("trace_id", info.trace_id),
            ("name", info.name),
            ("request", _payload(root.inputs_json) if root else None),
            ("response", _payload(root.outputs_json) if root else None),
            ("status", str(info.status)),
            ("status_message", info.status_message),
            ("start_time", info.start_time_ns // 1000),
            ("end_time", info.end_time_ns // 1000),
            ("duration_ms", info.duration_ms),
            ("input_tokens", usage.input_tokens if usage else None),
            ("output_tokens", usage.output_tokens if usage else None),
            ("total_tokens", usage.total_tokens if usage else None),
            ("tags", list(info.tags.items())),
            ("session_id", session),
            ("user_id", user),
            ("span_count", info.span_count),
            ("trace", full),
        ):
            cols[name].append(value)
    table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in SCHEMA}, schema=SCHEMA)
    return table, size


# -- push-down ---------------------------------------------------------------------------------

_STRING_COLUMNS: Final = {"trace_id", "name", "status", "status_message"}
_TIME_COLUMNS: Final = {"start_time_ms": "start_time", "end_time_ms": "end_time"}
_COMPARE: Final[dict[str, Any]] = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}
_SIMPLE_OPS: Final = frozenset({*_COMPARE, "IN", "NOT IN"})


def _ts(ms: int) -> pa.Scalar[Any]:
    return pa.scalar(ms * 1000, _TS)


def _day(ms: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(ms / 1000, _UTC).date()


def _time(column: str, op: str, operand: Any) -> pc.Expression | None:
    """A superset of rows whose ``<column>_ms`` (whole ms, floored) satisfies ``op operand``."""
    if op not in ("=", "<", "<=", ">", ">=") or isinstance(operand, bool):
        return None
    if not isinstance(operand, int | float):
        return None
    low = int(operand) - 1  # whole ms; generous by one on each side
    high = int(operand) + 2
    field = pc.field(column)
    parts: list[pc.Expression] = []
    if op in ("=", ">", ">="):
        parts.append(field >= _ts(low))
        if column == "start_time":
            parts.append(pc.field("date") >= _day(low))
    if op in ("=", "<", "<="):
        parts.append(field < _ts(high))
        if column == "start_time":
            parts.append(pc.field("date") <= _day(high))
    out = parts[0]
    for part in parts[1:]:
        out = out & part
    return out


def _comparison(expr: Comparison, columns: frozenset[str]) -> pc.Expression | None:
    field, op, operand = expr.field, expr.op, expr.value
    if field.scope != "trace":
        return None
    if field.name in _TIME_COLUMNS:
        column = _TIME_COLUMNS[field.name]
        if column not in columns or (column == "start_time" and "date" not in columns):
            return None
        return _time(column, op, operand)
    if field.name not in _STRING_COLUMNS or field.name not in columns:
        return None
    col = pc.field(field.name)
    if op == "IS NULL":
        return pc.is_null(col)
    if op == "IS NOT NULL":
        return pc.is_valid(col)
    if op not in _SIMPLE_OPS:
        return None
    if op in ("IN", "NOT IN"):
        values = operand if isinstance(operand, tuple) else ()
        if not all(isinstance(v, str) for v in values):
            return None
        inside = col.isin(list(values))
        return inside if op == "IN" else (~inside & col.is_valid())
    if not isinstance(operand, str):
        return None
    compare: pc.Expression = _COMPARE[op](col, operand)
    return compare


def pushdown(expr: Expr | None, columns: frozenset[str]) -> pc.Expression | None:
    """A pyarrow filter selecting a superset of the rows ``expr`` needs, or None for all."""
    if expr is None:
        return None
    if isinstance(expr, Comparison):
        return _comparison(expr, columns)
    if isinstance(expr, And):
        parts = [p for p in (pushdown(e, columns) for e in expr.items) if p is not None]
        if not parts:
            return None
        out = parts[0]
        for part in parts[1:]:
            out = out & part
        return out
    if isinstance(expr, Or):
        alternatives = [pushdown(e, columns) for e in expr.items]
        if any(a is None for a in alternatives):
            return None
        either = [a for a in alternatives if a is not None]
        out = either[0]
        for alt in either[1:]:
            out = out | alt
        return out
    return None  # NOT: the complement of a superset is not a superset
