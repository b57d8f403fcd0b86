"""The kiosk's main flows, played at the screen against a simulated site: a courier deposits,
a resident picks up, in portrait and landscape."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from edge.demo.site import COURIER_CREDENTIAL, COURIER_ID
from tests.web.browser import LANDSCAPE, PORTRAIT, ServedSite
from tests.web.kiosk_support import Kiosk, deposit_by_api, open_kiosk

Screenshot = Callable[[Any, str], Awaitable[Path]]
DOOR_OPEN = re.compile(r"^柜门 (\S+) 已打开$")


async def sign_in_by_typing(kiosk: Kiosk) -> None:
    page = kiosk.page
    await page.get_by_role("button", name="快递员投递").click()
    await expect(page.get_by_role("heading", name="快递员登录")).to_be_visible()
    await page.get_by_role("button", name="输入工号和密码").click()
    await kiosk.type_on("工号", COURIER_ID)
    await expect(page.get_by_role("textbox", name="工号")).to_have_value(COURIER_ID)
    await page.get_by_role("button", name="下一步").click()
    await kiosk.type_on("密码", COURIER_CREDENTIAL)
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("heading", name="请扫描包裹条码")).to_be_visible()


async def deposit(
    kiosk: Kiosk, served: ServedSite, parcel: str, screenshot: Screenshot, prefix: str
) -> str:
    """From the parcel screen: type the code, choose S, see the door, close it. Returns the
    compartment and leaves the page on the deposited screen."""
    page = kiosk.page
    await screenshot(page, f"{prefix}-2-parcel")
    await kiosk.type_on("运单号", parcel)
    await expect(page.get_by_role("textbox", name="运单号")).to_have_value(parcel)
    await page.get_by_role("button", name="下一步").click()
    await expect(page.get_by_role("heading", name="请选择格口尺寸")).to_be_visible()
    size_s = page.get_by_role("button", name=re.compile(r"^S 常温"))
    await expect(size_s).to_be_enabled()
    await screenshot(page, f"{prefix}-3-sizes")
    await size_s.click()
    door = page.get_by_role("heading", name=DOOR_OPEN)
    await expect(door).to_be_visible()
    match = DOOR_OPEN.match(await door.inner_text())
    assert match is not None
    compartment = match.group(1)
    assert compartment in {"A01", "A02", "A03", "A04"}  # the S compartments of the site
    await expect(page.locator("[data-compartment]")).to_have_text(compartment)
    await expect(page.get_by_text("请放入包裹，然后关好柜门")).to_be_visible()
    await screenshot(page, f"{prefix}-4-door-open")
    served.site.close_door(compartment)
    await expect(page.get_by_role("heading", name=f"已存入 {compartment}")).to_be_visible()
    await expect(page.locator("[data-pickup-code]")).to_have_text(re.compile(r"^\d{6,12}$"))
    await screenshot(page, f"{prefix}-5-deposited")
    return compartment


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
