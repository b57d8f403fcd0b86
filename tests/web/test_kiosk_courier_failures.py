"""What the kiosk tells a courier when a step goes wrong, and what it offers instead."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import expect

from tests.web.browser import PORTRAIT, ServedSite
from tests.web.kiosk_support import disable, open_kiosk, type_courier_sign_in


async def test_a_deposit_with_no_free_compartment_of_the_size_asks_for_another(
    served_site: ServedSite, browser: Any
) -> None:
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await type_courier_sign_in(kiosk)
    await kiosk.type_on("运单号", "SF000111")
    await page.get_by_role("button", name="下一步").click()
    size_s = page.get_by_role("button", name=re.compile(r"^S 常温"))
    await expect(size_s).to_be_enabled()
    # Meanwhile every ambient compartment is taken out of service.
    await disable(served_site, [f"A{n:02d}" for n in range(1, 13)])
    await size_s.click()
    await expect(page.get_by_role("alert")).to_have_text("没有空闲的 S 格口：请选择其他尺寸。")
    # The sizes are read again: S is shown full, a chilled size is still offered.
    await expect(size_s).to_be_disabled()
    await expect(size_s).to_contain_text("已满")
    await expect(page.get_by_role("button", name=re.compile(r"^S 冷藏"))).to_be_enabled()
    assert kiosk.errors == []


async def test_a_courier_with_a_wrong_pin_is_told_and_stays_at_sign_in(
    served_site: ServedSite, browser: Any
) -> None:
    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await type_courier_sign_in(kiosk, pin="0000")
    await expect(page.get_by_role("alert")).to_have_text("工号或密码不正确。 还可以尝试 4 次。")
    await expect(page.get_by_role("heading", name="请输入密码")).to_be_visible()
    await expect(page.get_by_role("textbox", name="密码")).to_have_value("")
    assert kiosk.errors == []
