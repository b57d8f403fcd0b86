"""One parcel's whole journey on screens: a courier deposits it at the kiosk, the resident
collects it there, and the operator console, open all along, shows each state as it happens."""

# The kiosk speaks Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.web.browser import PORTRAIT, Screenshot, ServedSite, accessibility_violations
from tests.web.console_support import console_page, signed_in
from tests.web.kiosk_support import deposit, open_kiosk, sign_in_by_typing


async def test_a_parcel_deposited_and_collected_at_the_kiosk_shows_on_the_console(
    served_site: ServedSite, browser: Any, screenshot: Screenshot
) -> None:
    async with console_page(browser) as console:
        await signed_in(console, served_site)
        kiosk = await open_kiosk(browser, served_site, PORTRAIT)
        page = kiosk.page

        # The courier, at the kiosk.
        await sign_in_by_typing(kiosk)
        compartment = await deposit(kiosk, served_site, "SF-JOURNEY-1", screenshot, "kiosk")
        code = await page.locator("[data-pickup-code]").inner_text()
        await page.get_by_role("button", name="退出登录").click()

        # The operator sees the parcel in its compartment, without reloading.
        tile = console.tile(compartment)
        await expect(tile).to_have_attribute("data-state", "occupied")
        deposited = console.events().locator("li[data-type='parcel.deposited']")
        await expect(deposited).to_contain_text("SF-JOURNEY-1")
        await screenshot(console.page, "console-1-deposited")

        # The resident, at the kiosk.
        await page.get_by_role("button", name="取件").click()
        await kiosk.type_on("取件码", code)
        await page.get_by_role("button", name="开门取件").click()
        await expect(page.get_by_role("heading", name=f"柜门 {compartment} 已打开")).to_be_visible()
        await expect(tile).to_contain_text("Door open")  # the console sees the door too
        served_site.site.close_door(compartment)
        await expect(page.get_by_role("heading", name="谢谢！")).to_be_visible()

        # The compartment is free again and the pickup is in the recent events.
        await expect(tile).to_have_attribute("data-state", "free")
        picked = console.events().locator("li[data-type='parcel.picked_up']")
        await expect(picked).to_contain_text("SF-JOURNEY-1")
        await screenshot(console.page, "console-2-picked-up")
        assert await accessibility_violations(console.page) == []
        assert kiosk.errors == [] and console.errors == []
