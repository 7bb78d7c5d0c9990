"""Evaluating filters, order and pages over ``Trace`` objects in memory.

The reference semantics of the filter language: the memory and JSONL stores search with
it, and the SQL stores must return the same traces in the same order (a property test
checks that). ``like_match`` is also registered as the SQLite ``LIKE``/``ILIKE`` function,
so both backends use one implementation of the wildcards.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from lowtrace._assessment import assessment_number, assessment_text
from lowtrace._model import Trace
from lowtrace._query.budget import check_deadline
from lowtrace._query.filter import And, Comparison, Expr, Field, Not, Or, parse_filter
from lowtrace._query.paging import (
    OrderKey,
    TraceList,
    check_max_results,
    decode_token,
    encode_token,
    parse_order_by,
)

__all__ = [
    "compile_predicate",
    "field_value",
    "like_match",
    "rlike_match",
    "search_in_memory",
    "sort_value",
]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@attrs.frozen
class _LikePattern:
    """A LIKE pattern cut at its ``%`` wildcards into fixed-length pieces.

    Each piece is a regex of literal characters and ``.`` only (no repetition), so it
    cannot backtrack; the pieces are placed greedily left to right, the first at the start
    and the last at the end. That answers in O(len(value) * len(pattern)) time where one
    backtracking regex for the whole pattern takes exponential time on ``'%a%a%a...%b'``.
    """

    pieces: tuple[re.Pattern[str], ...]
    lengths: tuple[int, ...]
    anchored_start: bool  # no leading %
    anchored_end: bool  # no trailing %
    has_wildcard: bool  # any % at all


@functools.lru_cache(maxsize=256)
def _like_pattern(pattern: str, case_insensitive: bool) -> _LikePattern:
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    pieces: list[list[str]] = [[]]
    escaped = False
    for char in pattern:
        if escaped:
            pieces[-1].append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            pieces.append([])
        elif char == "_":
            pieces[-1].append(".")
        else:
            pieces[-1].append(re.escape(char))
    if escaped:  # a trailing escape character stands for itself
        pieces[-1].append(re.escape("\\"))
    return _LikePattern(
        pieces=tuple(re.compile("".join(p), flags) for p in pieces),
        lengths=tuple(len(p) for p in pieces),
        anchored_start=bool(pieces[0]),
        anchored_end=bool(pieces[-1]),
        has_wildcard=len(pieces) > 1,
    )


def like_match(value: str | None, pattern: str | None, case_insensitive: int | bool) -> bool:
    """SQL LIKE: ``%`` any run, ``_`` one character, ``\\`` escapes; whole-string match.

    Linear in the value for each piece of the pattern, whatever the pattern: no backtracking.
    """
    if value is None or pattern is None:
        return False
    like = _like_pattern(pattern, bool(case_insensitive))
    first, last = like.pieces[0], like.pieces[-1]
    if not like.has_wildcard:
        return first.fullmatch(value) is not None
    position, end = 0, len(value)
    if like.anchored_end:  # the last piece must sit at the very end
        end -= like.lengths[-1]
        if end < 0 or last.fullmatch(value, end) is None:
            return False
    if like.anchored_start:
        if like.lengths[0] > end or first.match(value, 0, end) is None:
            return False
        position = like.lengths[0]
    for piece, length in zip(like.pieces[1:-1], like.lengths[1:-1], strict=True):
        if length == 0:
            continue
        found = piece.search(value, position, end)
        if found is None:
            return False
        position = found.end()  # the leftmost fit leaves the most room for the rest
    return True


@functools.lru_cache(maxsize=256)
def _rlike_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def rlike_match(value: str | None, pattern: str | None) -> bool:
    """RLIKE: the Python regular expression matches anywhere in the value."""
    if value is None or pattern is None:
        return False
    return _rlike_regex(pattern).search(value) is not None


def sort_value(trace: Trace, field: Field) -> Any:
    """What a trace sorts by for a field: its value, with times in nanoseconds."""
    if field.name == "start_time_ms":
        return trace.info.start_time_ns
    if field.name == "end_time_ms":
        return trace.info.end_time_ns
    return field_value(trace, field)


def field_value(trace: Trace, field: Field) -> Any:
    """The value of a trace-level field or tag (None when absent)."""
    info = trace.info
    name = field.name
    if field.scope == "tag":
        return info.tags.get(field.tag or "")
    if field.scope == "metadata":
        return info.metadata.get(field.tag or "")
    if name in ("input_tokens", "output_tokens", "total_tokens"):
        usage = info.token_usage
        return getattr(usage, name) if usage is not None else None
    if name == "start_time_ms":
        return info.start_time_ns // 1_000_000
    if name == "end_time_ms":
        return info.end_time_ns // 1_000_000
    if name == "duration_ms":
        return info.duration_ms
    if name == "status":
        return str(info.status)
    return getattr(info, name)


def _span_values(trace: Trace, field: Field) -> list[Any]:
    attr = {"span.name": "name", "span.type": "span_type", "span.status": "status"}[field.name]
    return [str(getattr(span, attr)) for span in trace.spans]


def _assessment_values(trace: Trace, field: Field, operand: Any) -> list[Any]:
    """The values of the trace's assessments named by the field, as the operand compares:
    numbers against a number, text ('true'/'false' for booleans) against a string."""
    sample = operand[0] if isinstance(operand, tuple) else operand
    numeric = isinstance(sample, (int, float))
    values = [
        assessment_number(a) if numeric else assessment_text(a)
        for a in trace.info.assessments
        if a.kind == field.scope and a.name == field.tag
    ]
    return [v for v in values if v is not None]


def _has_assessment(trace: Trace, field: Field) -> bool:
    return any(a.kind == field.scope and a.name == field.tag for a in trace.info.assessments)


def _test(op: str, value: Any, operand: Any) -> bool:
    if op == "IS NULL":
        return value is None
    if op == "IS NOT NULL":
        return value is not None
    if value is None:
        return False  # a missing value matches nothing, not even !=
    if op == "IN":
        return value in operand
    if op == "NOT IN":
        return value not in operand
    if op.endswith("RLIKE"):
        matched = rlike_match(value, operand)
        return not matched if op.startswith("NOT") else matched
    if op.endswith("LIKE"):
        matched = like_match(value, operand, op.endswith("ILIKE"))
        return not matched if op.startswith("NOT") else matched
    return _OPS[op](value, operand)


def compile_predicate(expr: Expr | None) -> Callable[[Trace], bool]:
    """A function telling whether a trace matches the filter's AST."""
    if expr is None:
        return lambda trace: True
    if isinstance(expr, And):
        parts = [compile_predicate(e) for e in expr.items]
        return lambda trace: all(p(trace) for p in parts)
    if isinstance(expr, Or):
        parts = [compile_predicate(e) for e in expr.items]
        return lambda trace: any(p(trace) for p in parts)
    if isinstance(expr, Not):
        inner = compile_predicate(expr.item)
        return lambda trace: not inner(trace)
    assert isinstance(expr, Comparison)
    field, op, operand = expr.field, expr.op, expr.value
    if field.scope == "span":
        return lambda trace: any(_test(op, v, operand) for v in _span_values(trace, field))
    if field.scope in ("feedback", "expectation"):
        if op in ("IS NULL", "IS NOT NULL"):
            present = op == "IS NOT NULL"
            return lambda trace: _has_assessment(trace, field) is present
        return lambda trace: any(
            _test(op, v, operand) for v in _assessment_values(trace, field, operand)
        )
    return lambda trace: _test(op, field_value(trace, field), operand)


def _compare_keys(a: Sequence[Any], b: Sequence[Any], keys: Sequence[OrderKey]) -> int:
    for x, y, key in zip(a, b, keys, strict=True):
        if x == y:
            continue
        if x is None:
            return 1  # missing values last, in both directions
        if y is None:
            return -1
        smaller = -1 if x < y else 1
        return -smaller if key.descending else smaller
    return 0


def search_in_memory(
    traces: Sequence[Trace],
    filter: str | None = None,
    *,
    order_by: Sequence[str] | str | None = None,
    max_results: int | None = 100,
    page_token: str | None = None,
) -> TraceList:
    """One page of the traces matching ``filter``, in ``order_by`` order."""
    if max_results is not None:
        check_max_results(max_results)
    predicate = compile_predicate(parse_filter(filter))
    keys = parse_order_by(order_by)
    rows: list[tuple[list[Any], Trace]] = []
    for index, trace in enumerate(traces):
        if index % 256 == 0:
            check_deadline()  # a caller's time limit (the web UI sets one)
        if predicate(trace):
            rows.append(([sort_value(trace, k.field) for k in keys], trace))
    compare = functools.partial(_compare_keys, keys=keys)

    def by_key(a: tuple[list[Any], Trace], b: tuple[list[Any], Trace]) -> int:
        return compare(a[0], b[0])

    rows.sort(key=functools.cmp_to_key(by_key))
    if page_token is not None:
        after = decode_token(page_token, filter, keys)
        rows = [row for row in rows if compare(row[0], after) > 0]
    if max_results is None or len(rows) <= max_results:
        return TraceList([t for _, t in rows])
    page = rows[:max_results]
    return TraceList([t for _, t in page], encode_token(filter, keys, page[-1][0]))
