"""Headless Chromium for the demo-page tests (Debian's ``chromium`` and ``chromium-driver``).

`make test` installs both when ``chromedriver`` is missing; a plain ``pytest`` without them fails the
browser tests with the command that installs them (nothing is skipped).  Selenium is pointed at the system binaries, so it
never downloads a browser or a driver.  Screenshots go to ``runs/screenshots`` (ignored by git), or to ``$SERVE_SCREENSHOT_DIR`` when set:
``SERVE_SCREENSHOT_DIR=docs/img`` refreshes the ones the README shows.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "make browser (apt-get install -y chromium chromium-driver)"
WAIT_SECONDS = 30


def system_binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if found:
            return found
    return None


def start_chromium(width: int = 1360, height: int = 1000) -> Any:
    """A headless Chromium WebDriver session; the test fails naming the install command without one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = system_binary("chromedriver")
    browser_path = system_binary("chromium", "chromium-browser")
    if driver_path is None or browser_path is None:
        pytest.fail(f"headless Chromium is missing: {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1",
                 "--disable-extensions", "--no-first-run", "--disable-background-networking"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def wait_for(condition: Callable[[], Any], timeout: float = WAIT_SECONDS, what: str = "the page") -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # noqa: BLE001  elements may be replaced while the page updates
            last_error = err
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} ({last_error})")


def message(driver: Any) -> tuple[str, str]:
    """(kind, text) of the page's status box (kind: info | ok | busy | error, '' when hidden)."""
    box = driver.find_element("id", "message")
    return box.get_attribute("data-kind") or "", box.text


def wait_message(driver: Any, kinds: tuple[str, ...]) -> tuple[str, str]:
    return wait_for(lambda: (lambda m: m if m[0] in kinds else None)(message(driver)),
                    what=f"a message of kind {'/'.join(kinds)}")


def screenshot(driver: Any, name: str) -> Path:
    """A full-page PNG of the current page as ``runs/screenshots/<name>`` (or under $SERVE_SCREENSHOT_DIR)."""
    folder = Path(os.environ.get("SERVE_SCREENSHOT_DIR") or ROOT / "runs" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    driver.set_window_size(size["width"], min(max(height + 120, 600), 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    path = folder / name
    tmp = path.with_suffix(".tmp.png")
    assert driver.save_screenshot(str(tmp)), "the browser did not save a screenshot"
    os.replace(tmp, path)
    driver.set_window_size(size["width"], size["height"])
    return path
