"""Helpers of the report suite (a unique module name: ``conftest`` is not importable as one).

Headless Chromium through selenium, offline: Debian's ``chromium`` and ``chromium-driver``.
``make test`` installs both (the Makefile's ``browser`` step); a machine without them fails
the report tests with the command to run, it does not skip them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "workspaces" / "designer-autoprice"
CONDA_ENV = (
    "azureml/ExperimentRun/dcid.a79bd916-2790-4202-89ed-fbdede3ccf1d/trained_model_outputs/"
    "conda_env.yaml"
)
SHOTS = ROOT / "build" / "report"  # screenshots for people to look at
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver (make test does this)"
WIDTH, HEIGHT = 1400, 1000


def find_chromium() -> tuple[str, str]:
    """The browser and its driver, or an AssertionError naming what to install."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None]
    assert not missing, f"headless Chromium is needed for the report tests: {INSTALL}"
    assert browser is not None and driver is not None
    return browser, driver


def start_chromium(profile: Path) -> Any:
    """A headless Chromium with no network: every request goes to a closed local port."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
        "--proxy-server=http://127.0.0.1:9",  # offline: nothing can be fetched
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
