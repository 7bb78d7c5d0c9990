"""Browser tests leave no asyncio loop marked running: code after them may use asyncio.run.

Playwright's sync API marks its loop as the main thread's running loop between its calls;
``tests/conftest.py`` keeps that mark only while a test that asked for ``browser`` runs.
The two tests run in file order: the second is any test that happens to follow a browser test.
"""

from __future__ import annotations

import asyncio
from typing import Any


def test_a_browser_test_runs(browser: Any) -> None:
    page = browser.new_page()
    try:
        page.set_content("<p id=greeting>hello</p>")
        assert page.inner_text("#greeting") == "hello"
    finally:
        page.close()


def test_asyncio_run_works_in_the_next_test() -> None:
    async def answer() -> str:
        await asyncio.sleep(0)
        return "ran"

    assert asyncio.run(answer()) == "ran"
