"""The list page's "Filter language" help names every field and operator the parser reads."""

from __future__ import annotations

import html
import re

import pytest
from starlette.testclient import TestClient

from lowtrace._query.filter import FIELDS, parse_filter

#: Keyed fields, as the help spells them, with a filter that uses each one.
KEYED = {
    "tags.<key>": "tags.env = 'prod'",
    "metadata.<key>": "metadata.prompt = 'v7'",
    "feedback.<name>": "feedback.correct = 'true'",
    "expectation.<name>": "expectation.answer = '42'",
}
OPERATORS = ["LIKE", "ILIKE", "RLIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"]


def filter_help(page: str) -> str:
    match = re.search(r'<details class="ui-help">(.*?)</details>', page, re.S)
    assert match is not None, "the list page has no filter help"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_help_names_every_field(http: TestClient, name: str) -> None:
    assert re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", filter_help(http.get("/").text))


@pytest.mark.parametrize(("spelling", "example"), sorted(KEYED.items()))
def test_help_names_every_keyed_field(http: TestClient, spelling: str, example: str) -> None:
    assert parse_filter(example) is not None  # a field the parser reads
    assert spelling in filter_help(http.get("/").text)


@pytest.mark.parametrize("operator", OPERATORS)
def test_help_names_every_operator(http: TestClient, operator: str) -> None:
    assert re.search(rf"\b{operator}\b", filter_help(http.get("/").text))
