"""Hostile filters: LIKE patterns built to backtrack, literals no database can hold, forged
page tokens. Each answers quickly, and every failure is a ``lowtrace.errors`` error."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowtrace import FilterError, InvalidArgumentError, LowtraceError, Trace
from lowtrace._query.evaluate import like_match
from lowtrace._query.paging import _fingerprint, parse_order_by
from lowtrace._stores.base import TraceStore
from lowtrace._stores.jsonl import JsonlStore
from tests.test_store_search import ids, make_trace, open_kind

HOSTILE = "%a%a%a%a%a%a%a%a%a%b"


def reference_like(value: str, pattern: str, insensitive: bool) -> bool:
    """LIKE by a backtracking regex: right, but exponential on hostile patterns."""
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "%_":
            out.append(".*" if char == "%" else ".")
        else:
            out.append(re.escape(char))
    if escaped:
        out.append(re.escape("\\"))
    flags = re.DOTALL | (re.IGNORECASE if insensitive else 0)
    return re.fullmatch("".join(out), value, flags) is not None


@pytest.mark.timeout(20)
def test_like_with_many_wildcards_answers_a_long_value_at_once() -> None:
    assert like_match("a" * 20_000, HOSTILE, False) is False
    assert like_match("a" * 20_000 + "b", HOSTILE, False) is True
    assert like_match("A" * 20_000 + "B", HOSTILE, True) is True
    assert like_match("a" * 20_000, "%a_a_a_a_a_a_a_a_b%", False) is False


@given(
    st.text(alphabet="ab%_\\\nAB", max_size=10),
    st.text(alphabet="ab%_\\\nAB", max_size=12),
    st.booleans(),
)
def test_like_means_what_it_always_meant(pattern: str, value: str, insensitive: bool) -> None:
    assert like_match(value, pattern, insensitive) == reference_like(value, pattern, insensitive)


@pytest.fixture(params=["memory", "sqlite", "jsonl", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    store = open_kind(request.param, request, tmp_path)
    yield store
    store.shutdown()


@pytest.fixture
def sample(store: TraceStore) -> list[Trace]:
    data = [make_trace(0, name="a" * 5000), make_trace(1, name="a" * 5000 + "b")]
    store.export(data)
    return data


@pytest.mark.timeout(30)
def test_every_store_answers_hostile_like_at_once(store: TraceStore, sample: list[Trace]) -> None:
    assert ids(store.search_traces(f"name LIKE '{HOSTILE}'")) == [1]
    assert ids(store.search_traces(f"name ILIKE '{HOSTILE.upper()}'")) == [1]
    assert ids(store.search_traces(f"name NOT LIKE '{HOSTILE}'")) == [0]
    assert store.count(f"span.name LIKE '{HOSTILE}'") == 1


def test_a_pattern_ending_in_the_escape_character_matches_a_backslash(
    store: TraceStore, sample: list[Trace]
) -> None:
    store.export([make_trace(2, name="back\\")])
    assert ids(store.search_traces("name LIKE 'back\\'")) == [2]
    assert ids(store.search_traces("name LIKE '%\\\\'")) == [2]


@pytest.mark.parametrize(
    "filter",
    [
        "duration_ms > 1e400",
        "duration_ms > -1e400",
        f"span_count = {2**64}",
        f"total_tokens < {-(2**70)}",
        f"start_time_ms IN (1, {2**80})",
    ],
)
def test_numbers_no_database_can_hold_are_a_filter_error(
    store: TraceStore, sample: list[Trace], filter: str
) -> None:
    with pytest.raises(FilterError, match="number"):
        store.search_traces(filter)
    with pytest.raises(FilterError):
        store.count(filter)


@pytest.mark.parametrize(
    "filter",
    [
        "name = '\ud800'",
        "name LIKE '%\udfff%'",
        "tags.env IN ('prod', '\ud83d')",
        "tags.`\ud800` = 'x'",
        "span.name != 'x\udc00y'",
    ],
)
def test_lone_surrogates_in_a_filter_are_a_filter_error(
    store: TraceStore, sample: list[Trace], filter: str
) -> None:
    with pytest.raises(FilterError, match="surrogate"):
        store.search_traces(filter)


def _token(values: list[object]) -> str:
    """A page token of the default order holding whatever sort key an attacker likes."""
    data = json.dumps({"v": 1, "q": _fingerprint(None, parse_order_by(None)), "k": values})
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        _token([2**63, "x"]),
        _token([2**64 - 1, "x"]),
        _token([True, "x"]),
        _token(["1", "x"]),
        _token([1, 2]),
        "!!!",
        "",
    ],
)
def test_forged_page_tokens_are_invalid_argument_errors(
    store: TraceStore, sample: list[Trace], token: str
) -> None:
    with pytest.raises(InvalidArgumentError):
        store.search_traces(max_results=1, page_token=token)


def test_errors_of_hostile_input_stay_in_the_tree(store: TraceStore, sample: list[Trace]) -> None:
    for filter in [f"duration_ms = {10**400}", "name = '\udfff'", f"span_count IN ({2**63})"]:
        with pytest.raises(LowtraceError):
            store.search_traces(filter)


@pytest.mark.parametrize("trace_id", ["\ud800" * 32, 2**70, None])
def test_ids_no_store_can_hold_match_nothing(
    store: TraceStore, sample: list[Trace], trace_id: object
) -> None:
    assert store.get_trace(trace_id) is None  # type: ignore[arg-type]
    if not isinstance(store, JsonlStore):
        assert store.delete_traces([trace_id]) == 0  # type: ignore[list-item]
    assert store.count() == 2
