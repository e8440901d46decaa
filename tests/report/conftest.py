"""A headless Debian chromium driven by selenium: one browser per test module.

The browser is the system's (``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, from
Debian's ``chromium`` and ``chromium-driver`` packages: ``make peers`` installs them);
nothing is downloaded at run time. Without them the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GENOFORMER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("GENOFORMER_CHROMEDRIVER")
    or shutil.which("chromedriver")
    or "/usr/bin/chromedriver"
)


def _missing(what: str) -> None:
    message = f"{what} (apt-get install chromium chromium-driver, or make peers)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def start_chromium():
    """A headless chromium (1400 x 1000) that keeps its console log (the bench uses it too)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        _missing(f"no chromium at {CHROMIUM} or chromedriver at {CHROMEDRIVER}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        # WebGL (plotly's scattergl) through SwiftShader, the software renderer chromium ships.
        "--enable-unsafe-swiftshader",
        "--use-angle=swiftshader",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(300)
    return driver


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the test module."""
    driver = start_chromium()
    yield driver
    driver.quit()
