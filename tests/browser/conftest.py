"""The real service in a subprocess and headless Chromium driven by Playwright.

Debian's ``chromium`` package is used (``make test-browser`` installs it): ``playwright
install`` would download a browser, which this project's machines cannot do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import uvicorn_process, wait_until_ready

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT_S = 90
VIEWPORT = {"width": 1040, "height": 760}


@pytest.fixture(scope="session")
def service_url(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of ``uvicorn app.main:app`` serving the fixture model, once it is ready."""
    log = tmp_path_factory.mktemp("service") / "uvicorn.log"
    quiet = {"LOG_FORMAT": "text", "LOG_LEVEL": "WARNING", "ACCESS_LOG": "false"}
    with uvicorn_process(model_root, log, quiet) as service:
        wait_until_ready(service, STARTUP_TIMEOUT_S)
        yield service.url


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium, "
            "as `make test-browser` does) or point $CHROMIUM at one"
        )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class PageWatch:
    """What a page did that a test should fail on: script errors and requests elsewhere."""

    origin: str
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_request(self, request) -> None:
        url = request.url
        if not url.startswith((self.origin + "/", "data:", "blob:")):
            self.foreign_requests.append(url)


@pytest.fixture
def page_watch(service_url: str) -> PageWatch:
    return PageWatch(origin=service_url)


@pytest.fixture
def page(browser, service_url: str, page_watch: PageWatch):
    """The page at ``/`` with the footer filled in, in a fresh browser context."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("pageerror", lambda error: page_watch.errors.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            page_watch.errors.append(f"console.error: {message.text}")
            if message.type == "error" and "status of 4" not in message.text
            else None
        ),
    )
    page.on("request", page_watch.on_request)
    page.goto(service_url + "/")
    page.wait_for_selector("#model-info[data-version]")
    yield page
    context.close()
    assert not page_watch.errors, page_watch.errors
    assert not page_watch.foreign_requests, page_watch.foreign_requests


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/`` (gitignored): screenshots a person can look at after a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
