"""
A real headless Chromium for the dashboard's tests and ``bench/dashboard.py``.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them), driven by
selenium with both paths given, so nothing is downloaded. Screenshots go under
``$SHOAL_ARTIFACTS/screenshots`` (default ``./artifacts/screenshots``).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from tests.processes import ROOT

CHROMIUM = os.environ.get("SHOAL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SHOAL_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing() -> str | None:
    """Why no browser can be started here, or ``None`` when one can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(path) is None:
            return f"needs {path} (Debian's {package}; .ci/run installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[test]')"
    return None


def start_browser(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium under chromedriver (quit it when done)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def screenshots_dir() -> str:
    """Where screenshots are kept (created if needed)."""
    base = os.environ.get("SHOAL_ARTIFACTS") or os.path.join(ROOT, "artifacts")
    path = os.path.join(base, "screenshots")
    os.makedirs(path, exist_ok=True)
    return path


def screenshot(driver: Any, name: str) -> str:
    """Save a full-window screenshot as ``<name>.png``; returns its path."""
    path = os.path.join(screenshots_dir(), f"{name}.png")
    driver.save_screenshot(path)
    return path
