"""A default client that cannot be made (a typo in LOWTRACE_URI, a missing extra) never
breaks the application: the fluent API and every integration run the code untraced, and
the reason is logged once, so the user learns why no traces appear."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import openai
import pytest

import lowtrace
from lowtrace.integrations import openai as lt_openai
from lowtrace.integrations.langchain import LowtraceCallbackHandler
from tests.integrations.openai_server import REPLY, FakeOpenAIServer

TYPO = "sqlite:/traces.db"  # one slash short of sqlite:///traces.db


@pytest.fixture(autouse=True)
def broken_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOWTRACE_URI", TYPO)
    lowtrace.set_default_client(None)  # made from the environment on next use
    yield
    lowtrace.set_default_client(None)


def warnings_about_the_uri(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "lowtrace" and r.levelno == logging.WARNING and TYPO in r.getMessage()
    ]


def test_the_fluent_api_runs_untraced_and_says_why_once(caplog: pytest.LogCaptureFixture) -> None:
    @lowtrace.trace
    def answer(question: str) -> str:
        with lowtrace.start_span("search"):
            return "42"

    with caplog.at_level(logging.WARNING, logger="lowtrace"):
        assert answer("6 x 7?") == "42"
        assert answer("6 x 7?") == "42"
    (message,) = warnings_about_the_uri(caplog)
    assert "not traced" in message and "LOWTRACE_URI" in message


def test_an_autologged_openai_call_still_answers(
    openai_server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    oai = openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)
    lt_openai.autolog()
    try:
        with caplog.at_level(logging.WARNING, logger="lowtrace"):
            reply = oai.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "Hi"}]
            )
    finally:
        lt_openai.disable()
    assert reply.choices[0].message.content == REPLY
    assert len(warnings_about_the_uri(caplog)) == 1


def test_the_langchain_handler_does_not_raise_into_langchain() -> None:
    handler = LowtraceCallbackHandler()
    run_id = uuid.uuid4()
    handler.on_chain_start({"name": "chain"}, {"question": "?"}, run_id=run_id)
    handler.on_chain_end({"answer": "42"}, run_id=run_id)
