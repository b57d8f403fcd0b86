"""A screen left alone returns to the start (in Chinese), but never while a door is open.

The page's clock is Playwright's: a minute passes at once, without waiting for it."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.web.browser import PORTRAIT, ServedSite
from tests.web.kiosk_support import deposit_by_api, open_kiosk

IDLE_MS = 61_000


async def test_an_idle_screen_returns_to_the_start_in_chinese(
    served_site: ServedSite, browser: Any
) -> None:
    kiosk = await open_kiosk(browser, served_site, PORTRAIT, fake_clock=True)
    page = kiosk.page
    await page.get_by_role("button", name="English").click()
    await page.get_by_role("button", name="Pick up").click()
    await expect(page.get_by_role("heading", name="Enter your pickup code")).to_be_visible()
    await page.clock.run_for(30_000)
    await expect(page.get_by_role("heading", name="Enter your pickup code")).to_be_visible()
    await page.clock.run_for(IDLE_MS - 30_000)
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert kiosk.errors == []


async def test_an_open_door_screen_stays_until_the_door_is_closed(
    served_site: ServedSite, browser: Any
) -> None:
    compartment, code = await deposit_by_api(served_site, "IDLE-1")
    kiosk = await open_kiosk(browser, served_site, PORTRAIT, fake_clock=True)
    page = kiosk.page
    await page.get_by_role("button", name="取件").click()
    await kiosk.type_on("取件码", code)
    await page.get_by_role("button", name="开门取件").click()
    door = page.get_by_role("heading", name=f"柜门 {compartment} 已打开")
    await expect(door).to_be_visible()
    await page.clock.run_for(IDLE_MS * 2)
    await expect(door).to_be_visible()
    served_site.site.close_door(compartment)
    await expect(page.get_by_role("heading", name="谢谢！")).to_be_visible()
    assert kiosk.errors == []
