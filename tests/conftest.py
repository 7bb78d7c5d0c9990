"""Shared fixtures: a fresh in-memory client per test, closed afterwards."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest

from lowtrace import TracingClient


@pytest.fixture
def client() -> Iterator[TracingClient]:
    """A strict client on its own in-memory store."""
    with TracingClient("memory://") as client:
        yield client


@pytest.fixture
def lenient() -> Iterator[TracingClient]:
    """A non-strict client: rule violations are logged and counted, never raised."""
    with TracingClient("memory://", strict=False) as client:
        yield client


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL server for the whole session (started on first use)."""
    import os

    from tests.postgres_server import postgres_server

    try:
        server = postgres_server()
        dsn = server.__enter__()
    except (FileNotFoundError, OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("LOWTRACE_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL tests must run here but the server did not start: {exc}")
        pytest.skip(f"PostgreSQL tests did NOT run: no server could be started ({exc})")
    try:
        yield dsn
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def postgres_uri(postgres_dsn: str) -> str:
    """The URI of a new, empty database on the test server."""
    import uuid

    import psycopg

    name = f"lt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return postgres_dsn.rsplit("/", 1)[0] + "/" + name


class BrowserSession:
    """One Chromium for the whole run, and the mark that Playwright's loop is running.

    Playwright's sync API runs its asyncio loop in a greenlet of the main thread and, between
    its calls, marks that loop as the thread's running loop. Left set, it makes every later
    ``asyncio.run()`` in the main thread fail ("cannot be called from a running event
    loop"), so the suite's result would depend on test order. The mark is therefore set only
    while a test that asked for ``browser`` runs, and parked in between.
    """

    def __init__(self, browser: object) -> None:
        self.browser = browser
        self.loop: asyncio.AbstractEventLoop | None = None

    def park(self) -> None:
        """Take Playwright's running-loop mark off this thread (kept for ``resume``)."""
        self.loop = asyncio._get_running_loop()
        asyncio._set_running_loop(None)

    def resume(self) -> None:
        """Put the mark back: Playwright's next call continues its suspended loop."""
        asyncio._set_running_loop(self.loop)


@pytest.fixture(scope="session")
def browser_session() -> Iterator[BrowserSession]:
    """Headless Chromium from the system package, driven by Playwright (nothing downloaded)."""
    import os
    import shutil

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (Debian package 'chromium')")
        pytest.skip("Chromium is not installed: the browser tests did NOT run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        session = BrowserSession(
            playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
        )
        session.park()
        try:
            yield session
        finally:
            session.resume()
            session.browser.close()  # type: ignore[attr-defined]


@pytest.fixture
def browser(browser_session: BrowserSession) -> Iterator[object]:
    """The session's Chromium, usable during this test only (see ``BrowserSession``)."""
    browser_session.resume()
    try:
        yield browser_session.browser
    finally:
        browser_session.park()
