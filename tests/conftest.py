"""Shared fixtures: a fresh in-memory client per test, closed afterwards."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
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
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()
