"""What the console browser tests share (no tests of its own): the console page, signing in,
the HTTP side."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from playwright.async_api import expect

from tests.web.browser import CONSOLE, OPERATOR_TOKEN, ServedSite


class Console:
    """One browser page on /console/, with the errors it logs."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def sign_in(self, served: ServedSite, token: str = OPERATOR_TOKEN) -> None:
        await self.page.goto(served.console_url)
        await self.page.get_by_label("Operator token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()

    def tile(self, compartment: str) -> Any:
        return self.page.locator(f".tile[data-id='{compartment}']")

    def events(self) -> Any:
        return self.page.get_by_role("list", name="Recent events")

    def alarms(self) -> Any:
        return self.page.get_by_role("region", name="Alarms")


@contextlib.asynccontextmanager
async def console_page(browser: Any) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport=CONSOLE)
    try:
        page = await context.new_page()
        page.set_default_timeout(15000)
        yield Console(page)
    finally:
        await context.close()


@contextlib.asynccontextmanager
async def api_client(served: ServedSite) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as client:
        yield client


async def signed_in(console: Console, served: ServedSite) -> None:
    await console.sign_in(served)
    await expect(console.page.get_by_text("Live", exact=True)).to_be_visible()
    await expect(console.tile("A01")).to_have_attribute("data-state", "free")
