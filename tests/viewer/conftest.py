"""Fixtures of the viewer tests: one headless Chromium for the session, a tab per test, and
a folder for the screenshots they save."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _browser import Browser, Page


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium, shared by every test of the session."""
    chromium = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab."""
    tab = browser.new_page()
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the tests save screenshots: a new folder under the system's temp directory
    (outside pytest's, which keeps only its last few runs), printed so a person can look."""
    root = Path(tempfile.gettempdir()) / "trackmux-screenshots"
    root.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))
    print(f"\nviewer screenshots: {folder}")
    return folder
