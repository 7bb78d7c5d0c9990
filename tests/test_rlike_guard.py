"""RLIKE patterns that would hold the GIL for seconds to hours in Python's ``re`` are
refused when the filter is parsed; the everyday patterns still pass."""

from __future__ import annotations

import pytest

from lowtrace._query.filter import check_regex, parse_filter
from lowtrace.errors import FilterError


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a*a)*b",  # nested quantifier hidden behind a literal before ')'
        r"(.*a){12}$",  # O(n**12) on 'aaa...b'
        r"(a|(?:a))*b",  # quantified alternation whose branch is a group
        r"(x+x+(?:))+y",  # an empty group between the quantifiers
        r"(a{1,}a){1,}b",
        r"(?:(?:a?){30})",  # bounded, but 2**30 ways
        r".*.*.*.*.*x",  # O(n**6): over 10 s on 200 characters
        r".*.*x",  # O(n**3): about two minutes on 8000 characters
        r"(?=.*a)(?=.*b).*c",
        r"(a)(?(1)a|b)",  # a conditional group refers back too
    ],
)
def test_slow_regex_shapes_are_refused(pattern: str) -> None:
    with pytest.raises(FilterError, match="RLIKE"):
        check_regex(pattern)
    with pytest.raises(FilterError):
        parse_filter(f"name RLIKE '{pattern}'")


@pytest.mark.parametrize(
    "pattern",
    [
        r"^chat",
        r"error|fail|timeout",
        r"^gpt-4(o|-turbo)?$",
        r"^s[a-z]+$",
        r"it.s",
        r"\d{3}-\d{4}",
        r"(?i)^agent",
        r"a{1000000}",  # long, but one fixed count: linear
        r"^\w+@example\.com$",
        r"(ab){2,5}",
        r"x.{0,20}y",
    ],
)
def test_everyday_patterns_pass(pattern: str) -> None:
    check_regex(pattern)
    assert parse_filter(f"name RLIKE '{pattern}'") is not None
