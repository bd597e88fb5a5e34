"""Playwright driving Debian's chromium (headless, --no-sandbox) against a real server process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer, start_server
from tests.support import copy_sqlite_template

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser test password"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have /usr/bin/chromium (.ci/run installs it)")
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("browser")
    live = start_server(workdir, copy_sqlite_template(sqlite_template, workdir), self_registration="true")
    live.oco("user", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    yield live
    live.stop()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where a test saves its screenshots (under its own output directory)."""
    directory = tmp_path / "screenshots"
    directory.mkdir()
    return directory
