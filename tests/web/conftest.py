"""Browser tests: Debian's Chromium, driven by Playwright, against the controller's own pages.

The controller runs on a simulated site (real drivers on pseudo-terminals) and serves HTTP on a
free port; the test plays the courier or shopper at the screen and the simulated hardware
(closing a door). Screenshots go to ``test-artifacts/screenshots/<test>/`` (override with
``EDGE_TEST_ARTIFACTS``), kept for a person to look at after the run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.app import EdgeApp
from edge.demo.site import SimulatedSite
from tests.web.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ServedSite
from tests.web.console_support import Console, api_client, console_page

playwright_api = pytest.importorskip("playwright.async_api")

if not Path(CHROMIUM).exists():
    pytest.skip(
        "Chromium is not installed (as root: apt-get install chromium); browser tests skipped",
        allow_module_level=True,
    )


@pytest.fixture
async def served_site(tmp_path: Path) -> AsyncIterator[ServedSite]:
    """A simulated locker site with a cabinet, and the controller serving its pages."""
    site = SimulatedSite(tmp_path / "site", with_cabinet=True)
    await site.start()
    site.stock_cabinet(5)
    app = EdgeApp(site.config(http_port=0))
    try:
        await app.start()
        await app.wait_checked()
        yield ServedSite(site, app, f"http://127.0.0.1:{app.http_port}")
    finally:
        await app.stop()
        await site.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Any, str], Awaitable[Path]]:
    """``await screenshot(page, "door-open")``: saved under the test's own folder."""
    folder = ARTIFACTS / "screenshots" / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)

    async def take(page: Any, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
async def console(served_site: ServedSite, browser: Any) -> AsyncIterator[Console]:
    async with console_page(browser) as page:
        yield page


@pytest.fixture
async def http(served_site: ServedSite) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(served_site) as client:
        yield client
