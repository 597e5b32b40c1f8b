"""Fixtures for tests that drive a real headless Chromium against Django's live server.

Chromium is not optional here: when it is missing the tests fail and say how to install
it, because a skipped browser test is a test nobody notices is not running.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


def chromium_executable() -> str:
    """$CHROMIUM_EXECUTABLE, else the first Chromium or Chrome on PATH; fails if none."""
    configured = os.environ.get("CHROMIUM_EXECUTABLE")
    if configured:
        if not Path(configured).is_file():
            pytest.fail(f"CHROMIUM_EXECUTABLE={configured!r} is not a file.", pytrace=False)
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "The browser tests need Chromium and none was found: install it "
        "(Debian/Ubuntu: `apt-get install chromium`) or set CHROMIUM_EXECUTABLE to its path.",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium per test module; each test gets its own context.

    Playwright's sync API keeps an asyncio loop on this thread while it runs, and Django's
    ORM refuses to run on a thread with a loop unless told it is safe (it is: the live
    server answers the browser from its own thread). The browser is closed, and the
    switch restored, when the module ends, so other tests keep Django's guard.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "The browser tests need the `playwright` Python package: "
            "pip install -r requirements-dev.txt.",
            pytrace=False,
        )
    executable = chromium_executable()
    with pytest.MonkeyPatch.context() as mp, sync_playwright() as playwright:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        try:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as error:
            pytest.fail(f"Chromium at {executable} did not start: {error}", pytrace=False)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh page (own cookies) at 1280x800; script errors are collected in
    ``page.js_errors``, and a test whose page broke the Content-Security-Policy fails."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    refused: list[str] = []  # what the Content-Security-Policy blocked (Chromium logs it)

    def on_console(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", on_console)
    yield page
    context.close()
    assert not refused, f"the page broke its Content-Security-Policy: {refused}"
