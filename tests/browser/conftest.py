"""Fixtures of the browser tests (see harness.py): the local stack with data, and Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from browser.harness import (
    PHONE_WINDOW,
    WINDOW,
    ViewerStack,
    start_chrome,
    start_viewer_stack,
    stop_chrome,
    stop_viewer_stack,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is marked `browser` (`pytest -m browser` runs them, `-m "not browser"` skips them)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def viewer_stack() -> Iterator[ViewerStack]:
    """`chargelog local` in this process with the simulators' data collected, for every browser test. Package
    scope: it is stopped, and the environment it set put back, before the tests of other folders run."""
    stack, restore = start_viewer_stack()
    try:
        yield stack
    finally:
        stop_viewer_stack(stack.runner, restore)


@pytest.fixture
def open_chrome() -> Iterator[Callable[..., WebDriver]]:
    """Starts Chromium (a fresh profile each: nothing stored carries over), window=(width, height); all are quit
    after the test."""
    started = []

    def start(window: tuple[int, int] = WINDOW) -> WebDriver:
        driver, profile = start_chrome(window)
        started.append((driver, profile))
        return driver

    yield start
    for driver, profile in started:
        stop_chrome(driver, profile)


@pytest.fixture
def chrome(open_chrome: Callable[..., WebDriver]) -> WebDriver:
    """Chromium at 1280x800."""
    return open_chrome()


@pytest.fixture
def phone_chrome(open_chrome: Callable[..., WebDriver]) -> WebDriver:
    """Chromium at a phone's width."""
    return open_chrome(PHONE_WINDOW)
