"""The kiosk's main flows, played at the screen against a simulated site: a courier deposits,
a resident picks up, in portrait and landscape."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.web.browser import LANDSCAPE, PORTRAIT, Screenshot, ServedSite
from tests.web.kiosk_support import deposit, deposit_by_api, open_kiosk, sign_in_by_typing


async def test_a_courier_deposits_a_parcel_at_the_screen(
    served_site: ServedSite, browser: Any, screenshot: Screenshot
) -> None:
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    assert "#token" not in page.url  # the token left the address bar
    await expect(page.get_by_role("button", name="购物")).to_be_visible()  # the site has a cabinet
    await screenshot(page, "portrait-1-home")
    await sign_in_by_typing(kiosk)
    first = await deposit(kiosk, served_site, "SF1234567890", screenshot, "portrait")

    # The same screens once more in landscape, for the next parcel.
    await page.set_viewport_size(LANDSCAPE)
    await page.get_by_role("button", name="投递下一件").click()
    await expect(page.get_by_role("heading", name="请扫描包裹条码")).to_be_visible()
    second = await deposit(kiosk, served_site, "YT99887766", screenshot, "landscape")
    assert second != first
    await page.get_by_role("button", name="退出登录").click()
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    await screenshot(page, "landscape-1-home")
    assert kiosk.errors == []


async def test_a_resident_picks_up_with_the_code(
    served_site: ServedSite, browser: Any, screenshot: Screenshot
) -> None:
    compartment, code = await deposit_by_api(served_site, "ZT5550001")
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await page.get_by_role("button", name="取件").click()
    await expect(page.get_by_role("heading", name="请输入取件码")).to_be_visible()
    submit = page.get_by_role("button", name="开门取件")
    await expect(submit).to_be_disabled()  # no code typed yet
    await kiosk.type_on("取件码", code)
    await expect(page.get_by_role("textbox", name="取件码")).to_have_value(code)
    await screenshot(page, "1-keypad")
    await submit.click()
    await expect(page.get_by_role("heading", name=f"柜门 {compartment} 已打开")).to_be_visible()
    await expect(page.get_by_text("请取出包裹，然后关好柜门")).to_be_visible()
    await screenshot(page, "2-door-open")
    served_site.site.close_door(compartment)
    await expect(page.get_by_role("heading", name="谢谢！")).to_be_visible()
    await screenshot(page, "3-thank-you")
    # Back at the start on its own after a few seconds.
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible(timeout=10_000)
    assert kiosk.errors == []
