"""The search filter language: a tokenizer and a recursive-descent parser into an AST.

    status = 'ERROR' AND duration_ms > 500
    (name LIKE 'agent%' OR tags.env IN ('prod', 'staging')) AND span.type = 'TOOL'
    tags.`user.id` = 'it''s me' AND total_tokens IS NOT NULL AND NOT span.status = 'ERROR'
    session_id = 'chat-7' AND metadata.release = "v2" AND feedback.correct = 'true'

MLflow's dialect parses too: ``trace.`` and ``attributes.`` prefixes on trace fields,
``timestamp_ms``, ``execution_time_ms``, ``request_id``, double-quoted strings and ``RLIKE``
(a Python regular expression matched anywhere in the value).

Fields come from a fixed table (``FIELDS``) and literals stay values: user text never
becomes code or SQL. Comparisons on a missing value (an absent tag, a trace without token
usage) are false, for every operator; ``span.*`` comparisons hold when any span matches.
Every syntax error is a ``FilterError`` that says what was expected and where.
"""

from __future__ import annotations

import difflib
import re
from typing import Final, Literal

import attrs

from lowtrace._query.literals import check_encodable, number_literal
from lowtrace._query.regex_guard import check_regex
from lowtrace._types import SpanStatus, SpanType
from lowtrace.errors import FilterError

__all__ = [
    "FIELDS",
    "And",
    "Comparison",
    "Expr",
    "Field",
    "Not",
    "Or",
    "check_regex",
    "field_named",
    "parse_filter",
    "string_literal",
]

#: "any": a string or a number (assessment values; numbers compare as numbers).
Kind = Literal["str", "num", "any"]
#: Where a field lives: the trace row, a tag, a metadata entry, a span, an assessment.
Scope = Literal["trace", "tag", "metadata", "span", "feedback", "expectation"]


@attrs.frozen
class Field:
    """A filterable field: its canonical name, value kind and where it lives."""

    name: str
    kind: Kind
    scope: Scope = "trace"
    tag: str | None = None  # the key of tags.<key>, metadata.<key>, feedback.<name> ...
    sortable: bool = True


FIELDS: Final[dict[str, Field]] = {
    f.name: f
    for f in (
        Field("trace_id", "str"),
        Field("name", "str"),
        Field("status", "str"),
        Field("status_message", "str"),
        Field("start_time_ms", "num"),
        Field("end_time_ms", "num"),
        Field("duration_ms", "num"),
        Field("span_count", "num"),
        Field("input_tokens", "num"),
        Field("output_tokens", "num"),
        Field("total_tokens", "num"),
        Field("session_id", "str"),
        Field("user_id", "str"),
        Field("span.name", "str", "span", sortable=False),
        Field("span.type", "str", "span", sortable=False),
        Field("span.status", "str", "span", sortable=False),
    )
}
_ALIASES: Final = {
    "timestamp_ms": "start_time_ms",
    "timestamp": "start_time_ms",
    "trace.name": "name",
    "trace.status": "status",
    "trace.trace_id": "trace_id",
    "execution_time_ms": "duration_ms",
    "span.span_type": "span.type",
    "span_type": "span.type",
    "tokens": "total_tokens",
    "request_id": "trace_id",
    "execution_time": "duration_ms",
    "session": "session_id",
    "user": "user_id",
}
#: Prefixes of keyed fields: ``tags.<key>``, ``metadata.<key>``, ``feedback.<name>`` ...
_KEYED: Final[tuple[tuple[str, Scope], ...]] = (
    ("tags.", "tag"),
    ("tag.", "tag"),
    ("metadata.", "metadata"),
    ("request_metadata.", "metadata"),
    ("feedback.", "feedback"),
    ("expectation.", "expectation"),
)
#: Prefixes MLflow writes before trace-level fields (``trace.status``, ``attributes.name``).
_TRACE_PREFIXES: Final = ("trace.", "attributes.")
_STATUS_FIELDS: Final = frozenset({"status", "span.status"})
_STATUSES: Final = tuple(s.value for s in SpanStatus)
_SPAN_TYPES: Final = tuple(t.value for t in SpanType)


def _check_value(field: Field, value: Value, text: str, position: int) -> None:
    """A misspelled status or span type is an error naming the valid values, not no match.

    Statuses are a closed set. Span types may be custom, so only a value that looks like a
    known type but is not one (``'TOLL'``, ``'tool'``) is refused.
    """
    if not isinstance(value, str):
        return
    if field.name in _STATUS_FIELDS and value not in _STATUSES:
        raise FilterError(
            f"{field.name} is one of {', '.join(_STATUSES)}, not {value!r}", text, position
        )
    if field.name == "span.type" and value not in _SPAN_TYPES:
        close = difflib.get_close_matches(value.upper(), _SPAN_TYPES, n=1, cutoff=0.75)
        if close:
            raise FilterError(
                f"unknown span type {value!r} (did you mean {close[0]!r}?); the built-in "
                f"types are {', '.join(_SPAN_TYPES)} (custom types match exactly)",
                text,
                position,
            )


Value = str | int | float


@attrs.frozen
class Comparison:
    """``field op value`` (``value`` is a tuple for IN, None for IS [NOT] NULL)."""

    field: Field
    op: str  # = != < <= > >= [NOT] LIKE|ILIKE|RLIKE|IN  IS [NOT] NULL
    value: Value | tuple[Value, ...] | None


@attrs.frozen
class And:
    items: tuple[Expr, ...]


@attrs.frozen
class Or:
    items: tuple[Expr, ...]


@attrs.frozen
class Not:
    item: Expr


Expr = Comparison | And | Or | Not


def string_literal(text: str) -> str:
    """``text`` as a quoted string literal of the filter language (``'`` doubled)."""
    return "'" + text.replace("'", "''") + "'"


def field_named(name: str, text: str = "", position: int | None = None) -> Field:
    """The field for a name (aliases, MLflow's prefixes and keyed fields included)."""
    lower = name.lower()
    canonical = _ALIASES.get(lower, lower)
    if canonical in FIELDS:
        return FIELDS[canonical]
    for prefix in _TRACE_PREFIXES:
        if lower.startswith(prefix):
            rest = _ALIASES.get(lower[len(prefix) :], lower[len(prefix) :])
            if rest in FIELDS and FIELDS[rest].scope == "trace":
                return FIELDS[rest]
    keyed = name[6:] if lower.startswith("trace.") else name
    for prefix, scope in _KEYED:
        if keyed.lower().startswith(prefix) and len(keyed) > len(prefix):
            key = keyed[len(prefix) :]
            canonical_prefix = {"tag": "tags", "metadata": "metadata"}.get(scope, scope)
            kind: Kind = "any" if scope in ("feedback", "expectation") else "str"
            sortable = scope in ("tag", "metadata")
            return Field(f"{canonical_prefix}.{key}", kind, scope, tag=key, sortable=sortable)
    known = ", ".join(
        [*FIELDS, "tags.<key>", "metadata.<key>", "feedback.<name>", "expectation.<name>"]
    )
    raise FilterError(f"unknown field {name!r}; expected one of {known}", text, position)


# -- tokens -----------------------------------------------------------------------------------

_TOKEN: Final = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<dstring>"(?:[^"]|"")*")
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<field>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_\-]+|`[^`]+`|"[^"]+"))*)
    """,
    re.VERBOSE,
)
#: A quoted part of a field name: `...` (may hold ") or "..." (may hold `).
_QUOTED_PART: Final = re.compile(r"""\.(?:`([^`]+)`|"([^"]+)")""")
_KEYWORDS: Final = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "RLIKE", "IS", "NULL"})


@attrs.frozen
class _Token:
    kind: str  # string number op punct field keyword end
    text: str
    value: object
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position] in "'\"":
                raise FilterError("unterminated string literal", text, position)
            raise FilterError(f"unexpected character {text[position]!r}", text, position)
        kind = match.lastgroup or ""
        raw = match.group()
        check_encodable(raw, text, position)
        if kind == "string":
            tokens.append(_Token("string", raw, raw[1:-1].replace("''", "'"), position))
        elif kind == "dstring":  # MLflow's "double-quoted" strings, a quote inside doubled
            tokens.append(_Token("string", raw, raw[1:-1].replace('""', '"'), position))
        elif kind == "number":
            tokens.append(_Token("number", raw, number_literal(raw, text, position), position))
        elif kind == "op":
            tokens.append(_Token("op", raw, {"<>": "!=", "==": "="}.get(raw, raw), position))
        elif kind == "field":
            if raw.upper() in _KEYWORDS:
                tokens.append(_Token("keyword", raw, raw.upper(), position))
            else:
                name = _QUOTED_PART.sub(lambda m: "." + (m.group(1) or m.group(2)), raw)
                tokens.append(_Token("field", raw, name, position))
        elif kind == "punct":
            tokens.append(_Token("punct", raw, raw, position))
        position = match.end()
    tokens.append(_Token("end", "", None, len(text)))
    return tokens


# -- parser -----------------------------------------------------------------------------------


#: Limits that keep a hostile filter from exhausting the parser's stack or the database's
#: expression limits (SQLite refuses expression trees deeper than 1,000).
MAX_DEPTH: Final = 50
MAX_COMPARISONS: Final = 200
MAX_IN_VALUES: Final = 1000


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0
        self.comparisons = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, expected: str) -> FilterError:
        token = self.token
        got = "the end of the filter" if token.kind == "end" else repr(token.text)
        return FilterError(f"expected {expected}, got {got}", self.text, token.position)

    def keyword(self, *words: str) -> bool:
        token = self.token
        if token.kind == "keyword" and token.value in words:
            self.index += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        if self.token.kind == "punct" and self.token.value == char:
            self.index += 1
            return True
        return False

    def parse(self) -> Expr:
        expr = self.parse_or()
        if self.token.kind != "end":
            raise self.fail("AND, OR or the end of the filter")
        return expr

    def parse_or(self) -> Expr:
        items = [self.parse_and()]
        while self.keyword("OR"):
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Expr:
        items = [self.parse_unary()]
        while self.keyword("AND"):
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self) -> Expr:
        token = self.token
        if self.keyword("NOT"):
            self.nest(token)
            expr: Expr = Not(self.parse_unary())
        elif self.punct("("):
            self.nest(token)
            expr = self.parse_or()
            if not self.punct(")"):
                raise self.fail("')'")
        else:
            return self.parse_comparison()
        self.depth -= 1
        return expr

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(
                f"the filter nests NOT and parentheses more than {MAX_DEPTH} deep",
                self.text,
                token.position,
            )

    def literal(self, field: Field, *, exact: bool = True) -> Value:
        """The next literal, of the field's kind; ``exact`` values must name a known status."""
        token = self.token
        if token.kind not in ("string", "number"):
            raise self.fail("a quoted string or a number")
        if field.kind == "num" and token.kind != "number":
            raise FilterError(
                f"{field.name} takes a number, got the string {token.text}",
                self.text,
                token.position,
            )
        if field.kind == "str" and token.kind != "string":
            raise FilterError(
                f"{field.name} takes a quoted string, got {token.text} (quote it: '{token.text}')",
                self.text,
                token.position,
            )
        self.index += 1
        value = token.value
        if field.name in _STATUS_FIELDS and isinstance(value, str):
            value = value.upper()
        assert isinstance(value, (str, int, float))
        if exact:
            _check_value(field, value, self.text, token.position)
        return value

    def parse_comparison(self) -> Comparison:
        token = self.token
        if token.kind != "field":
            raise self.fail("a field name, NOT or '('")
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterError(
                f"the filter has more than {MAX_COMPARISONS} comparisons",
                self.text,
                token.position,
            )
        field = field_named(str(token.value), self.text, token.position)
        self.index += 1
        if self.keyword("IS"):
            negated = self.keyword("NOT")
            if not self.keyword("NULL"):
                raise self.fail("NULL")
            return Comparison(field, "IS NOT NULL" if negated else "IS NULL", None)
        negated = self.keyword("NOT")
        if self.keyword("IN"):
            if not self.punct("("):
                raise self.fail("'(' after IN")
            values = [self.literal(field)]
            while self.punct(","):
                if len(values) == MAX_IN_VALUES:
                    raise FilterError(
                        f"IN takes at most {MAX_IN_VALUES} values",
                        self.text,
                        self.token.position,
                    )
                values.append(self.literal(field))
            if not self.punct(")"):
                raise self.fail("',' or ')'")
            if len({isinstance(v, str) for v in values}) > 1:
                raise FilterError(
                    f"IN on {field.name} takes all strings or all numbers",
                    self.text,
                    token.position,
                )
            return Comparison(field, "NOT IN" if negated else "IN", tuple(values))
        if self.keyword("LIKE", "ILIKE", "RLIKE"):
            op = str(self.tokens[self.index - 1].value)
            if field.kind == "num":
                raise FilterError(
                    f"{op} needs a text field, not {field.name}",
                    self.text,
                    self.tokens[self.index - 1].position,
                )
            start = self.token
            value = self.literal(field, exact=False)
            if not isinstance(value, str):
                raise FilterError(f"{op} takes a quoted pattern", self.text, start.position)
            if op == "RLIKE":
                value = str(start.value)  # a regex is taken as written (no upper-casing)
                check_regex(value, self.text, start.position)
            return Comparison(field, f"NOT {op}" if negated else op, value)
        if negated:
            raise self.fail("IN, LIKE, ILIKE or RLIKE after NOT")
        if self.token.kind != "op":
            raise self.fail("an operator (= != < <= > >= LIKE ILIKE RLIKE IN IS)")
        op = str(self.token.value)
        self.index += 1
        return Comparison(field, op, self.literal(field, exact=op in ("=", "!=")))


def parse_filter(text: str | None) -> Expr | None:
    """The AST of a filter string (None or blank: no filter)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise FilterError(f"filter must be a str, got {type(text).__name__}")
    if not text.strip():
        return None
    return _Parser(text).parse()
