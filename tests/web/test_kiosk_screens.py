"""The kiosk in English, its accessibility (axe-core), and the shopping screens on a site
without face payment."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.web.browser import LANDSCAPE, PORTRAIT, Screenshot, ServedSite, accessibility_violations
from tests.web.kiosk_support import deposit_by_api, open_kiosk


async def test_one_tap_switches_the_screen_to_english_and_back(
    served_site: ServedSite, browser: Any
) -> None:
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "zh-CN"
    await page.get_by_role("button", name="English").click()
    await expect(
        page.get_by_role("heading", name="Hello — what would you like to do?")
    ).to_be_visible()
    assert await page.get_attribute("html", "lang") == "en"
    await expect(page.get_by_role("button", name="Pick up")).to_be_visible()
    await expect(page.get_by_role("button", name="Courier drop-off")).to_be_visible()
    # The language holds from screen to screen.
    await page.get_by_role("button", name="Pick up").click()
    await expect(page.get_by_role("heading", name="Enter your pickup code")).to_be_visible()
    await expect(page.get_by_role("button", name="Open the door")).to_be_disabled()
    await page.get_by_role("button", name="中文").click()
    await expect(page.get_by_role("heading", name="请输入取件码")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert kiosk.errors == []


async def test_home_keypad_and_open_door_have_no_serious_accessibility_problems(
    served_site: ServedSite, browser: Any
) -> None:
    _, first_code = await deposit_by_api(served_site, "A11Y-ZH")
    _, second_code = await deposit_by_api(served_site, "A11Y-EN")
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    for language, code in (("zh", first_code), ("en", second_code)):
        if language == "en":
            await page.get_by_role("button", name="English").click()
        home = page.get_by_role("heading", level=1)
        await expect(home).to_have_text(
            "您好，请选择服务" if language == "zh" else "Hello — what would you like to do?"
        )
        assert await accessibility_violations(page) == [], f"home ({language})"
        await page.get_by_role("button", name="取件" if language == "zh" else "Pick up").click()
        field = "取件码" if language == "zh" else "Pickup code"
        await kiosk.type_on(field, code)
        assert await accessibility_violations(page) == [], f"keypad ({language})"
        await page.get_by_role(
            "button", name="开门取件" if language == "zh" else "Open the door"
        ).click()
        door = page.locator("[data-compartment]")
        await expect(door).to_be_visible()
        assert await accessibility_violations(page) == [], f"door open ({language})"
        served_site.site.close_door(await door.inner_text())
        await expect(home).to_have_text("谢谢！" if language == "zh" else "Thank you!")
        await page.get_by_role(
            "button", name="回到首页" if language == "zh" else "Back to start"
        ).click()
    assert kiosk.errors == []


async def test_shopping_without_face_payment_offers_the_member_qr_code(
    served_site: ServedSite, browser: Any, screenshot: Screenshot
) -> None:
    kiosk = await open_kiosk(browser, served_site, LANDSCAPE)
    page = kiosk.page
    await page.get_by_role("button", name="购物").click()
    await expect(page.get_by_role("heading", name="请选择货柜")).to_be_visible()
    cabinet = page.get_by_role("button", name="Snacks and drinks")
    await expect(cabinet).to_be_enabled()
    await expect(cabinet).to_contain_text("件商品")
    await screenshot(page, "1-cabinets")
    await cabinet.click()
    # This site has no face payment (503 facepay_disabled): said so, with the QR code offered.
    await expect(page.get_by_role("heading", name="本机暂不支持刷脸支付。")).to_be_visible()
    await screenshot(page, "2-no-face-payment")
    assert await accessibility_violations(page) == []
    await page.get_by_role("button", name="改用会员码").click()
    await expect(page.get_by_role("heading", name="请出示会员码")).to_be_visible()
    await screenshot(page, "3-member-qr")
    await page.get_by_role("button", name="取消").click()
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    assert kiosk.errors == []
