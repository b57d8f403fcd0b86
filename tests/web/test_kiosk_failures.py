"""What the kiosk says when a pickup goes wrong, or the screen is not set up: each failure as a
sentence with what to do next."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.web.browser import PORTRAIT, ServedSite
from tests.web.kiosk_support import open_kiosk


async def test_a_wrong_pickup_code_is_refused_with_the_tries_left(
    served_site: ServedSite, browser: Any
) -> None:
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await page.get_by_role("button", name="取件").click()
    await kiosk.type_on("取件码", "00000000")
    await page.get_by_role("button", name="开门取件").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_have_text("取件码不正确。 还可以尝试 4 次。")
    # The field is cleared for the next try, and the screen stays.
    await expect(page.get_by_role("textbox", name="取件码")).to_have_value("")
    await expect(page.get_by_role("heading", name="请输入取件码")).to_be_visible()
    assert kiosk.errors == []


async def test_too_many_wrong_codes_lock_the_keypad_for_minutes(
    served_site: ServedSite, browser: Any
) -> None:
    # lockers.code_attempts: 5 wrong codes are allowed within the window; the next one locks
    # input for 60 s.
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await page.get_by_role("button", name="取件").click()
    alert = page.get_by_role("alert")
    for attempt in range(1, 7):
        await kiosk.type_on("取件码", "11111111")
        await page.get_by_role("button", name="开门取件").click()
        if attempt < 5:
            await expect(alert).to_have_text(f"取件码不正确。 还可以尝试 {5 - attempt} 次。")
        elif attempt == 5:
            await expect(alert).to_have_text("取件码不正确。")
    await expect(alert).to_have_text("输入错误次数过多，请 1 分钟后再试。")
    assert kiosk.errors == []


async def test_a_screen_without_its_token_says_it_is_not_set_up(
    served_site: ServedSite, browser: Any
) -> None:
    page = await browser.new_page(viewport=PORTRAIT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{served_site.base_url}/kiosk/")
    await expect(page.get_by_role("heading", name="此屏幕尚未设置")).to_be_visible()
    await expect(page.get_by_text("/kiosk/#token=")).to_be_visible()
    # A token the controller does not know (401 not_a_kiosk) says the same.
    await page.goto(f"{served_site.base_url}/kiosk/#token=not-this-one")
    await page.reload()
    await expect(page.get_by_role("heading", name="此屏幕尚未设置")).to_be_visible()
    assert errors == []
