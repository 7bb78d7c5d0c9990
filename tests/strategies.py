"""Hypothesis strategies shared by the tests: valid finished traces of every shape."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from lowtrace import (
    Assessment,
    SpanEvent,
    SpanRecord,
    SpanStatus,
    SpanType,
    TokenUsage,
    Trace,
    TraceInfo,
)
from lowtrace._model import outermost_token_usage

hex_ids = st.integers(min_value=1, max_value=2**64 - 1).map(lambda n: f"{n:016x}")
trace_ids = st.integers(min_value=1, max_value=2**128 - 1).map(lambda n: f"{n:032x}")

#: Names with the characters filters must take literally: quotes, wildcards, unicode.
names = st.text(
    alphabet=st.sampled_from([*list("abcXYZ _%'\\-.é✓"), "\u2028"]), min_size=1, max_size=12
)
tag_keys = st.sampled_from(["env", "user", "app.version", "team"])
tag_values = st.sampled_from(["prod", "staging", "it's", "50%", "a_b", "Prod"])
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
usages = st.none() | st.builds(
    lambda i, o, r: TokenUsage(i, o, i + o, r),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.none() | st.integers(0, 100),
)
#: What reviewers log: booleans, numbers, strings (with quotes), JSON, nothing.
assessment_values = st.sampled_from(
    [True, False, 0, 1, 2.5, -3, "yes", "it's", "Prod", None, {"a": 1}, [1, "x"]]
)
assessments = st.builds(
    lambda n, name, kind, value, t: Assessment(
        f"{n:032x}", name, kind, orjson.dumps(value), {"type": "HUMAN"}, None, None, t
    ),
    st.integers(1, 2**64),
    st.sampled_from(["correct", "score"]),
    st.sampled_from(["feedback", "expectation"]),
    assessment_values,
    st.integers(0, 10**18),
)


@st.composite
def traces(draw: st.DrawFn, start_ns: int | None = None) -> Trace:
    """A finished trace: a random span tree (parents first), tags, usage, statuses."""
    trace_id = draw(trace_ids)
    count = draw(st.integers(1, 6))
    span_ids = draw(st.lists(hex_ids, min_size=count, max_size=count, unique=True))
    start = (
        start_ns
        if start_ns is not None
        else draw(st.integers(1_600_000_000_000_000_000, 1_900_000_000_000_000_000))
    )
    spans: list[SpanRecord] = []
    for index, span_id in enumerate(span_ids):
        parent = None if index == 0 else span_ids[draw(st.integers(0, index - 1))]
        begin = start + index * 1000
        end = begin + draw(st.integers(0, 5_000_000_000))
        status = draw(st.sampled_from([SpanStatus.OK, SpanStatus.ERROR]))
        spans.append(
            SpanRecord(
                trace_id=trace_id,
                span_id=span_id,
                parent_id=parent,
                name=draw(names),
                span_type=draw(st.sampled_from(list(SpanType))),
                start_time_ns=begin,
                end_time_ns=end,
                status=status,
                status_message="boom" if status is SpanStatus.ERROR else None,
                inputs=draw(json_values),
                outputs=draw(json_values),
                attributes=draw(
                    st.dictionaries(st.sampled_from(["k", "model"]), json_values, max_size=2)
                ),
                events=tuple(
                    SpanEvent("tick", begin + 1, {"n": 1}) for _ in range(draw(st.integers(0, 2)))
                ),
                token_usage=draw(usages),
            )
        )
    root = spans[0]
    end = max([root.end_time_ns, *(s.end_time_ns for s in spans)])
    spans[0] = SpanRecord(
        trace_id=trace_id,
        span_id=root.span_id,
        parent_id=None,
        name=root.name,
        span_type=root.span_type,
        start_time_ns=root.start_time_ns,
        end_time_ns=end,
        status=root.status,
        status_message=root.status_message,
        inputs=root.inputs,
        outputs=root.outputs,
        attributes=root.attributes,
        events=root.events,
        token_usage=root.token_usage,
    )
    info = TraceInfo(
        trace_id=trace_id,
        name=spans[0].name,
        status=spans[0].status,
        status_message=spans[0].status_message,
        start_time_ns=start,
        end_time_ns=end,
        tags=draw(st.dictionaries(tag_keys, tag_values, max_size=3)),
        token_usage=outermost_token_usage(spans),
        span_count=len(spans),
        metadata=draw(st.dictionaries(st.sampled_from(["release", "mlflow.user"]), tag_values)),
        session_id=draw(st.none() | st.sampled_from(["chat-1", "chat-2", "it's"])),
        user_id=draw(st.none() | st.sampled_from(["alice", "bob"])),
        assessments=tuple(
            draw(st.lists(assessments, max_size=3, unique_by=lambda a: a.assessment_id))
        ),
    )
    return Trace(info, tuple(spans))


_string_fields = st.sampled_from(
    [
        "name",
        "trace_id",
        "span.name",
        "tags.env",
        "tags.user",
        "span.type",
        "status",
        "span.status",
        # MLflow's spellings and the fields people moving from it expect
        "attributes.name",
        "trace.status",
        "request_id",
        "tags.`app.version`",
        "metadata.release",
        "metadata.`mlflow.user`",
        "session_id",
        "user_id",
        "feedback.correct",
        "expectation.score",
    ]
)
_numeric_fields = st.sampled_from(
    [
        "duration_ms",
        "start_time_ms",
        "span_count",
        "total_tokens",
        "input_tokens",
        "trace.execution_time_ms",
        "timestamp_ms",
        "feedback.score",
        "expectation.correct",
    ]
)
#: Regular expressions that Python and PostgreSQL read alike.
_regexes = st.sampled_from(["^a", "c$", "[XYZ]", "b|Z", "'", "\\.", "P?rod", "^(it|ye)", "%"])


def _quote(text: str, double: bool = False) -> str:
    if double:  # MLflow's double-quoted strings
        return '"' + text.replace('"', '""') + '"'
    return "'" + text.replace("'", "''") + "'"


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    """One random comparison of the filter language."""
    if draw(st.booleans()):
        field = draw(_numeric_fields)
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        value = draw(st.sampled_from([0, 1, 3, 1000, 2500, 1.5, 1_700_000_000_000]))
        return f"{field} {op} {value}"
    field = draw(_string_fields)
    op = draw(
        st.sampled_from(
            ["=", "!=", "<", ">=", "LIKE", "ILIKE", "NOT LIKE", "IN", "IS NULL", "IS NOT NULL"]
        )
    )
    literal = draw(
        st.sampled_from(
            [
                "prod",
                "Prod",
                "it's",
                "50%",
                "a_b",
                "OK",
                "ERROR",
                "TOOL",
                "%a%",
                "_",
                "%\\%%",
                "a\\_b",
                "abc",
                "true",
                "false",
                "yes",
                "chat-1",
                "alice",
                "staging",
            ]
        )
    )
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{field} {op}"
    if field in ("status", "span.status", "trace.status") and op in ("=", "!=", "IN"):
        # A status outside UNSET/OK/ERROR is a FilterError, not a comparison: stay valid.
        literal = draw(st.sampled_from(["OK", "ERROR", "UNSET", "error"]))
        if op == "IN":
            return f"{field} IN ({_quote(literal)}, 'UNSET')"
    if op == "IN":
        return f"{field} IN ({_quote(literal)}, 'prod')"
    if draw(st.integers(0, 4)) == 0:
        negate = draw(st.sampled_from(["", "NOT "]))
        return f"{field} {negate}RLIKE {_quote(draw(_regexes), draw(st.booleans()))}"
    return f"{field} {op} {_quote(literal, draw(st.booleans()))}"


filters = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        inner.map(lambda f: f"NOT ({f})"),
    ),
    max_leaves=4,
)
orders = st.sampled_from(
    [
        None,
        "duration_ms DESC",
        "name",
        "total_tokens DESC",
        "tags.env",
        "metadata.release DESC",
        "session_id",
        "span_count ASC",
        ["status", "start_time_ms DESC"],
    ]
)
